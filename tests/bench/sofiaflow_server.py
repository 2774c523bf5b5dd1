"""Run a real `sofiaflow run` server for benchmarks: its own data dir, 127.0.0.1, a free port.

with SofiaflowServer(flows) as sf:
    sf.url  # http://127.0.0.1:<port>
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from nodered import free_port

PASSWORD = "bench-password"


class SofiaflowServer:
    """Starts `sofiaflow run`, deploys `flows` through the admin API, stops it by pid."""

    START_TIMEOUT = 60.0

    def __init__(self, flows: list[dict], mqtt_port: int = 0, env: dict[str, str] | None = None) -> None:
        self.flows = flows
        self.port = free_port()
        self.mqtt_port = mqtt_port
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.data_dir: Path | None = None
        self.token = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SofiaflowServer:
        self.data_dir = Path(tempfile.mkdtemp(prefix="sofiaflow-bench-"))
        env = {**os.environ, "SOFIAFLOW_ADMIN_PASSWORD": PASSWORD, **self.env}
        args = [
            sys.executable,
            "-m",
            "sofiaflow.runtime.cli",
            "run",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--mqtt-port",
            str(self.mqtt_port),
        ]
        # run from the repo root: this folder's http.py must not shadow the standard library's http
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sofiaflow exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                self.token = self._token()
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        else:
            self.__exit__()
            raise RuntimeError("sofiaflow did not start in time")
        status, body = self.request("POST", "/flows", self.flows)
        if status not in (200, 204):
            self.__exit__()
            raise RuntimeError(f"deploy failed: {status} {body}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _token(self) -> str:
        data = urllib.parse.urlencode(
            {
                "client_id": "node-red-admin",
                "grant_type": "password",
                "scope": "*",
                "username": "admin",
                "password": PASSWORD,
            }
        ).encode()
        with urllib.request.urlopen(f"{self.url}/auth/token", data, timeout=5) as resp:
            return json.loads(resp.read())["access_token"]

    def request(self, method: str, path: str, body: object = None) -> tuple[int, str]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")
