"""A real `sofiaflow run` for end-to-end tests: free loopback ports, by default the shipped IoT Broker flow
deployed on first start (the onesait tests), an admin client; stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from ports import free_port

PASSWORD = "onesait-admin-password"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Server:
    port: int
    mqtt_port: int
    admin: httpx.Client
    proc: subprocess.Popen

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def device(self, name: str, ontologies: dict[str, str]) -> str:
        """Create a digital client; its token."""
        answer = self.admin.post("/devices", json={"name": name, "ontologies": ontologies})
        assert answer.status_code == 201, answer.text
        return answer.json()["token"]

    def stop(self) -> None:
        self.admin.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


IOT_BROKER_FLOW = str(REPO / "flows" / "iot-broker.json")


def start(data_dir: Path, default_flows: str = IOT_BROKER_FLOW, password: str = PASSWORD) -> Server:
    """`sofiaflow run` on `data_dir` with the bundled ontologies; `default_flows` "" deploys nothing at start."""
    port, mqtt_port = free_port(), free_port()
    env = {**os.environ, "SOFIAFLOW_ADMIN_PASSWORD": password, "SOFIAFLOW_DEFAULT_FLOWS": default_flows}
    env.pop("SOFIAFLOW_ONTOLOGIES_DIR", None)  # the bundled ontologies (BasicSensor...)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sofiaflow.runtime.cli",
            "run",
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--mqtt-port",
            str(mqtt_port),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            try:
                token = httpx.post(
                    f"{base}/auth/token",
                    data={
                        "client_id": "node-red-admin",
                        "grant_type": "password",
                        "scope": "*",
                        "username": "admin",
                        "password": password,
                    },
                    timeout=2,
                ).json()["access_token"]
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
    except BaseException:
        proc.kill()
        proc.wait(5)
        raise
    admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
    return Server(port, mqtt_port, admin, proc)
