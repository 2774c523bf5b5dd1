"""The IoT broker end to end through a real `sofiaflow run`: a device registered over the admin API
publishes to the embedded broker with its token, the example flow answers with a command, the device
posts over HTTP with the same token, and a revoked token drops its open connection."""

from __future__ import annotations

import json
import os
import queue
import sys
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import onesait_server  # noqa: E402

FLOW = json.loads((Path(__file__).resolve().parents[1] / "flows" / "device-telemetry.json").read_text())
PASSWORD = "e2e-admin-password"


@pytest.fixture
def server(tmp_path):
    srv = onesait_server.start(tmp_path, default_flows="", password=PASSWORD)
    yield srv.admin, srv.mqtt_port
    srv.stop()


def _device(port: int, name: str, token: str, inbox: queue.Queue) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-test")
    client.username_pw_set(name, token)
    connected, dropped = queue.Queue(), queue.Queue()
    client.on_connect = lambda c, u, f, rc, p: connected.put(rc)
    client.on_disconnect = lambda c, u, f, rc, p: dropped.put(rc)
    client.on_message = lambda c, u, m: inbox.put((m.topic, json.loads(m.payload)))
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    rc = connected.get(timeout=10)
    client.dropped = dropped  # type: ignore[attr-defined]
    if rc.is_failure:
        client.loop_stop()
        raise PermissionError(str(rc))
    return client


def test_device_round_trip_through_the_example_flow(server):
    admin, mqtt_port = server
    flow = [dict(n, port=str(mqtt_port)) if n["type"] == "mqtt-broker" else n for n in FLOW]
    assert admin.post("/flows", json=flow).status_code == 204
    created = admin.post(
        "/devices", json={"name": "sensor-1", "topics": ["sensors/{device}/#"], "ontologies": {}}
    )
    assert created.status_code == 201, created.text
    token, token_id = created.json()["token"], created.json()["token_id"]

    with pytest.raises(PermissionError):
        _device(mqtt_port, "sensor-1", "wrong." + token.split(".")[1], queue.Queue())

    inbox: queue.Queue = queue.Queue()
    device = _device(mqtt_port, "sensor-1", token, inbox)
    try:
        device.subscribe("sensors/sensor-1/commands", qos=1)
        time.sleep(0.5)
        for temperature in (21, 35):
            device.publish("sensors/sensor-1/telemetry", json.dumps({"temperature": temperature}), qos=1)
        topic, command = inbox.get(timeout=10)
        assert topic == "sensors/sensor-1/commands"
        assert command == {"cmd": "cool", "reading": {"temperature": 35}}
        assert inbox.empty()

        url = "/api/readings"
        assert httpx.post(f"{admin.base_url}{url}", json={"temperature": 20}).status_code == 401
        posted = httpx.post(
            f"{admin.base_url}{url}", json={"temperature": 20}, headers={"Authorization": f"Bearer {token}"}
        )
        assert posted.status_code == 201 and posted.json() == {"stored": True}

        assert admin.delete(f"/devices/sensor-1/tokens/{token_id}").status_code == 204
        device.dropped.get(timeout=5)  # the open connection is dropped at once
        assert (
            httpx.post(
                f"{admin.base_url}{url}", json={}, headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 401
        )
    finally:
        device.loop_stop()
        device.disconnect()
