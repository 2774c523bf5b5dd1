"""A device publishing numbered QoS 1 readings into a real `sofiaflow run` (`mqtt in -> ontology-insert`), and what
it takes to kill that server with SIGKILL mid-stream, start it again on the same ports and count what was stored.

Used by tests/test_mqtt_ack_after_processing.py and tests/bench/mqtt_ack.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

sys.path.insert(0, os.path.dirname(__file__))
import onesait_server  # noqa: E402

PASSWORD = "ack-admin-password"
ONTOLOGY = "BasicSensor"
TOPIC = "sensors/{device}/telemetry"


def launch(data_dir: Path, port: int, mqtt_port: int) -> subprocess.Popen:
    """`sofiaflow run` on fixed loopback ports; returns once its API answers."""
    env = {**os.environ, "SOFIAFLOW_ADMIN_PASSWORD": PASSWORD, "SOFIAFLOW_DEFAULT_FLOWS": ""}
    env.pop("SOFIAFLOW_ONTOLOGIES_DIR", None)
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
        cwd=onesait_server.REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 90  # generous: other tests (a parallel run's other worker) share the cores
    while True:
        assert proc.poll() is None, f"the server exited with {proc.returncode}"
        try:
            httpx.get(f"http://127.0.0.1:{port}/auth/token", timeout=1)
            return proc
        except httpx.TransportError:
            if time.monotonic() >= deadline:
                stop(proc)  # not left running behind the failure
                raise AssertionError("the server did not start") from None
            time.sleep(0.1)


def admin_client(port: int) -> httpx.Client:
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(
        f"{base}/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": "admin",
            "password": PASSWORD,
        },
        timeout=5,
    ).json()["access_token"]
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def kill9(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def insert_flow(
    broker_host: str, broker_port: int, qos: str = "1", user: str = "", password: str = ""
) -> list:
    """mqtt in (sensors/+/telemetry, JSON) -> ontology-insert BasicSensor, plus a catch counting failures."""
    broker = {
        "id": "ack-broker",
        "type": "mqtt-broker",
        "name": "broker",
        "broker": broker_host,
        "port": str(broker_port),
        "clientid": "",
        "autoConnect": True,
        "usetls": False,
        "protocolVersion": "4",
        "keepalive": "60",
        "cleansession": True,
    }
    if user:
        broker["credentials"] = {"user": user, "password": password}
    return [
        {"id": "ack-tab", "type": "tab", "label": "acks"},
        broker,
        {
            "id": "ack-in",
            "type": "mqtt in",
            "z": "ack-tab",
            "topic": "sensors/+/telemetry",
            "qos": qos,
            "datatype": "json",
            "broker": "ack-broker",
            "wires": [["ack-insert"]],
        },
        {"id": "ack-insert", "type": "ontology-insert", "z": "ack-tab", "ontology": ONTOLOGY, "wires": [[]]},
    ]


def stored_sequences(admin: httpx.Client) -> list[int]:
    """Every `measure` (the device's sequence numbers) stored in BasicSensor, duplicates included."""
    found: list[int] = []
    skip = 0
    while True:
        page = admin.get(
            f"/ontologies/{ONTOLOGY}/data",
            params={
                "projection": json.dumps({f"{ONTOLOGY}.measure": 1}),
                "skip": skip,
                "limit": 1000,
                "sort": json.dumps({"_id": 1}),
            },
        )
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        found += [int(doc[ONTOLOGY]["measure"]) for doc in items]
        if len(items) < 1000:
            return found
        skip += 1000


@dataclass
class Device:
    """A paho client with a persistent session (clean_session=False, fixed client id) that records which sequence
    numbers the broker acknowledged (PUBACK seen by paho's on_publish)."""

    port: int
    name: str
    password: str | None
    client_id: str = "ack-device"
    inflight: int = 100
    sent: int = 0

    def __post_init__(self) -> None:
        # no lock of ours around paho calls: paho holds its own while calling on_publish (lock order)
        self._seq_of: dict[
            int, int
        ] = {}  # packet id -> sequence number (fewer than 65535 messages: no reuse)
        self._acked_mids: deque[int] = deque()
        self.connects = 0
        self.session_present: list[bool] = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=False)
        if self.password is not None:
            self.c.username_pw_set(self.name, self.password)
        self.c.max_inflight_messages_set(self.inflight)
        self.c.max_queued_messages_set(0)
        self.c.reconnect_delay_set(0.1, 0.5)
        self.c.on_publish = self._on_publish
        self.c.on_connect = self._on_connect
        self.connected = threading.Event()

    def _on_connect(self, _c, _u, flags, rc, _p) -> None:
        if not rc.is_failure:
            self.connects += 1
            self.session_present.append(bool(flags.session_present))
            self.connected.set()

    def _on_publish(self, _c, _u, mid, _rc, _p) -> None:
        self._acked_mids.append(mid)

    @property
    def acked(self) -> set[int]:
        """The sequence numbers whose PUBACK paho has seen."""
        seq_of = self._seq_of
        return {seq_of[mid] for mid in list(self._acked_mids) if mid in seq_of}

    def start(self) -> None:
        self.c.connect("127.0.0.1", self.port, keepalive=10)
        self.c.loop_start()
        assert self.connected.wait(10), "the device could not connect"

    def publish(self, seq: int) -> None:
        payload = json.dumps({ONTOLOGY: {"assetId": self.name, "measure": seq}})
        info = self.c.publish(TOPIC.format(device=self.name), payload, qos=1)
        self._seq_of[info.mid] = seq
        self.sent += 1

    def publish_paced(self, count: int, rate: float, stop: threading.Event | None = None) -> None:
        """Publish sequence numbers 0..count-1 at about `rate` a second (in steps of 10 ms)."""
        started = time.monotonic()
        for seq in range(count):
            if stop is not None and stop.is_set():
                return
            self.publish(seq)
            ahead = started + (seq + 1) / rate - time.monotonic()
            if ahead > 0.01:
                time.sleep(ahead)

    def acked_count(self) -> int:
        return len(self.acked)

    def wait_acked(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.acked_count() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.acked_count() >= count

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
