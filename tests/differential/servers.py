"""Real Node-RED and a real `sofiaflow run`, side by side on loopback ports, with the same flows.

Node-RED is found and started by `bench.nodered` (throw-away user dir, no credentials).
sofiaflow runs as a subprocess with its own data dir and deploys the same flow file at start.
Both are stopped by pid.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.nodered import NodeRed, free_port

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "differential-tests"
RESPONSE_TIMEOUT = 3
"""Seconds sofiaflow waits for a flow's `http response` before it answers 504 (clients wait twice as long)."""


@dataclass(frozen=True)
class Answer:
    """One HTTP answer: status (0: no answer in time), headers (lower-case name -> values, in order), body."""

    status: int
    headers: dict[str, tuple[str, ...]]
    body: bytes

    def header(self, name: str) -> str:
        return ", ".join(self.headers.get(name.lower(), ()))


NO_ANSWER = Answer(0, {}, b"(no answer in time)")


def request(
    base: str, method: str, path: str, body=None, timeout: float = 6.0, headers: dict | None = None
) -> Answer:
    """One HTTP request (redirects are not followed); JSON-encodes `body`. No answer in `timeout`: NO_ANSWER."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json"} if data is not None else {}
    sent.update(headers or {})
    url = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    try:
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        received: dict[str, list[str]] = {}
        for name, value in resp.getheaders():
            received.setdefault(name.lower(), []).append(value)
        return Answer(resp.status, {k: tuple(v) for k, v in received.items()}, resp.read())
    except TimeoutError:
        return NO_ANSWER
    finally:
        conn.close()


class Sofiaflow:
    """`sofiaflow run --flows FILE` on 127.0.0.1 (no MQTT broker), stopped by pid."""

    START_TIMEOUT = 60.0

    def __init__(self, flows: list[dict]) -> None:
        self.flows = flows
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.data_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Sofiaflow:
        self.data_dir = Path(tempfile.mkdtemp(prefix="sofiaflow-diff-"))
        flow_file = self.data_dir / "flows.json"
        flow_file.write_text(json.dumps(self.flows))
        self._log = open(self.data_dir / "sofiaflow.log", "wb")
        env = {
            **os.environ,
            "SOFIAFLOW_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SOFIAFLOW_HTTP_RESPONSE_TIMEOUT": str(RESPONSE_TIMEOUT),
        }
        args = [
            sys.executable,
            "-m",
            "sofiaflow.runtime.cli",
            "run",
            "--flows",
            str(flow_file),
            "--data-dir",
            str(self.data_dir / "data"),
            "--port",
            str(self.port),
            "--mqtt-port",
            "0",
            "--host",
            "127.0.0.1",
        ]
        self.proc = subprocess.Popen(
            args,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait(self, probe: str) -> None:
        """Wait (bounded) until `probe` answers 200."""
        deadline = time.monotonic() + self.START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sofiaflow exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if request(self.url, "GET", probe, timeout=2).status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"sofiaflow did not answer {probe} in time:\n{self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        try:
            return (self.data_dir / "sofiaflow.log").read_text(errors="replace")[-n:]
        except (OSError, TypeError):
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None


class Pair:
    """Node-RED and sofiaflow running the same flows; `ask` sends one request to both.

    `extra(runtime)` may add flows per runtime ("node-red" or "sofiaflow"), such as an MQTT tab
    pointing at that runtime's own broker.
    """

    def __init__(self, flows: list[dict], probe: str, extra=None) -> None:
        extra = extra or (lambda runtime: [])
        self.node_red = NodeRed(flows + extra("node-red"))
        self.sofiaflow = Sofiaflow(flows + extra("sofiaflow"))
        self.probe = probe

    def start(self) -> Pair:
        self.sofiaflow.start()  # starts in the background while Node-RED boots
        try:
            self.node_red.start()
            self.sofiaflow.wait(self.probe)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.node_red.stop()
        self.sofiaflow.stop()

    def ask(self, method: str, path: str, value=None, headers: dict | None = None) -> tuple[Answer, Answer]:
        """Send `{"v": value}` to both at the same time; (Node-RED's answer, sofiaflow's answer)."""
        body = {"v": value}
        with ThreadPoolExecutor(2) as pool:
            node_red = pool.submit(request, self.node_red.url, method, path, body, headers=headers)
            sofiaflow = pool.submit(request, self.sofiaflow.url, method, path, body, headers=headers)
            return node_red.result(), sofiaflow.result()


def sofiaflow_token(base: str) -> str:
    """A bearer token for sofiaflow's admin API and /comms (the admin user, its password set at start)."""
    got = request(
        base,
        "POST",
        "/auth/token",
        {
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": "admin",
            "password": ADMIN_PASSWORD,
        },
    )
    if got.status != 200:
        raise RuntimeError(f"no token from sofiaflow: {got.status} {got.body[:300]!r}")
    return json.loads(got.body)["access_token"]
