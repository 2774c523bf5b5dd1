"""No acknowledged MQTT message is lost: a QoS 1 PUBLISH is PUBACKed only once `mqtt in -> ontology-insert` has
stored it, so a server killed with SIGKILL mid-stream loses nothing the device saw acknowledged; the device
(paho, persistent session) sends its unacknowledged messages again once the server is back."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import mqtt_ack_harness as h  # noqa: E402
from onesait_server import free_port  # noqa: E402
from test_device_client import start_mosquitto, stop  # noqa: E402

COUNT = 6000
RATE = 2000.0


def _kill_mid_stream_then_restart(tmp_path, flow_for, device_for, kill_after: int):
    """Run the device against a server, SIGKILL it once `kill_after` messages were acknowledged, start it
    again on the same ports; (acknowledged before the kill, the device, stored sequence numbers)."""
    port, mqtt_port = free_port(), free_port()
    proc = h.launch(tmp_path, port, mqtt_port)
    device = None
    try:
        admin = h.admin_client(port)
        answer = admin.post("/flows", json=flow_for(mqtt_port))
        assert answer.status_code == 204, answer.text
        device = device_for(admin, mqtt_port)
        device.start()
        stopping = threading.Event()
        publisher = threading.Thread(target=device.publish_paced, args=(COUNT, RATE, stopping), daemon=True)
        publisher.start()
        assert device.wait_acked(kill_after, 60), f"only {device.acked_count()} acknowledged"
        h.kill9(proc)
        acked_before_kill = set(device.acked)
        proc = h.launch(tmp_path, port, mqtt_port)
        publisher.join(60)
        assert device.wait_acked(COUNT, 45), (
            f"{device.acked_count()} of {COUNT} acknowledged after the restart"
        )
        admin = h.admin_client(port)
        deadline = time.monotonic() + 45
        stored = h.stored_sequences(admin)
        while (
            len(set(stored)) < COUNT and time.monotonic() < deadline
        ):  # what brokers send again, then drained
            time.sleep(0.5)
            stored = h.stored_sequences(admin)
        return acked_before_kill, device, stored
    finally:
        if device is not None:
            device.close()
        h.stop(proc)


def _embedded_device(admin, mqtt_port: int) -> h.Device:
    created = admin.post(
        "/devices",
        json={"name": "dev1", "topics": ["sensors/{device}/#"], "ontologies": {h.ONTOLOGY: "INSERT"}},
    )
    assert created.status_code == 201, created.text
    return h.Device(mqtt_port, "dev1", created.json()["token"])


@pytest.mark.parametrize("kill_after", [1500, 3500])
def test_embedded_broker_acknowledged_messages_survive_kill_9(tmp_path, kill_after):
    acked_before_kill, device, stored = _kill_mid_stream_then_restart(
        tmp_path, lambda mqtt_port: h.insert_flow("127.0.0.1", mqtt_port), _embedded_device, kill_after
    )
    distinct = set(stored)
    lost = acked_before_kill - distinct
    assert not lost, (
        f"{len(lost)} messages PUBACKed before the kill were never stored, e.g. {sorted(lost)[:10]}"
    )
    assert distinct == set(range(COUNT))  # after the restart every message got through, at least once
    assert device.connects >= 2


def test_external_broker_acknowledged_messages_survive_kill_9(tmp_path):
    """`mqtt in` on Mosquitto: it PUBACKs Mosquitto once stored, so Mosquitto (persistent session of the flow's
    client) sends again what was in the flow when the server died."""
    mosquitto, broker_port = start_mosquitto(
        tmp_path, ["allow_anonymous true", "max_inflight_messages 100", "max_queued_messages 100000"]
    )
    try:

        def flow_for(_mqtt_port: int) -> list:
            flow = h.insert_flow("127.0.0.1", broker_port)
            broker = next(n for n in flow if n["type"] == "mqtt-broker")
            broker.update(clientid="sofiaflow-acks", cleansession=False)
            return flow

        def device_for(_admin, _mqtt_port: int) -> h.Device:
            return h.Device(broker_port, "dev1", None, client_id="ack-device-ext")

        data = tmp_path / "data"
        _acked, _device, stored = _kill_mid_stream_then_restart(data, flow_for, device_for, kill_after=2000)
    finally:
        stop(mosquitto)
    missing = set(range(COUNT)) - set(stored)
    assert not missing, f"{len(missing)} messages Mosquitto handed to the flow were never stored"
