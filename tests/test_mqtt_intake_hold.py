"""What a cluster deploy's drain asks of an MQTT connection (nodes/mqtt/mqtt_connection.py), against a real
Mosquitto with a persistent session: while the intake is held, what arrives is kept, neither handed to the
subscribers nor acknowledged, and goes to them once let go of; `forsake()` gives up the messages in hand
unacknowledged and connects again, and Mosquitto sends them again (with their DUP flag)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import paho.mqtt.publish as publish
import pytest

from sofiaflow.nodes.mqtt import mqtt_connection
from sofiaflow.nodes.mqtt.mqtt_options import ConnectOptions
from sofiaflow.runtime.mqtt.acks import current_receipt
from tests.test_node_mqtt import Mosquitto

pytestmark = pytest.mark.servers


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


async def until(check: Callable[[], Any], what: str, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def send(port: int, topic: str, payloads: list[str]) -> None:
    msgs = [{"topic": topic, "payload": p, "qos": 1} for p in payloads]
    await asyncio.to_thread(publish.multiple, msgs, hostname="127.0.0.1", port=port)


def connection(port: int, on_message: Any, states: list[str]) -> mqtt_connection.MqttConnection:
    options = ConnectOptions("127.0.0.1", port, client_id="drained", clean_session=False)
    conn = mqtt_connection.MqttConnection(
        options,
        on_message=on_message,
        on_state=lambda s, _e: states.append(s),
        spawn=asyncio.ensure_future,
        sleep=asyncio.sleep,
        warn=print,
    )
    conn.subscriptions["h/#"] = (1, {})
    return conn


async def test_held_messages_reach_the_subscribers_once_let_go_of(mosquitto, monkeypatch) -> None:
    monkeypatch.setattr(mqtt_connection, "CLIENT", "lean")
    got: list[bytes] = []
    states: list[str] = []
    conn = connection(mosquitto.port, lambda _t, payload, *_a: got.append(payload), states)
    conn.connect()
    try:
        await until(lambda: conn.connected, "connected")
        conn.hold_intake(True)
        await send(mosquitto.port, "h/1", [f"m{i}" for i in range(5)])
        await until(lambda: len(conn._kept) == 5, "five kept")
        assert got == [] and conn.unfinished == 0  # not handed on, nothing waits for an acknowledgement
        conn.hold_intake(False)
        assert got == [f"m{i}".encode() for i in range(5)]  # in the order received
        assert conn.unfinished == 0  # each acknowledged once its subscribers were done
    finally:
        await conn.close()


async def test_forsaken_messages_come_again_after_the_reconnect(mosquitto, monkeypatch) -> None:
    monkeypatch.setattr(mqtt_connection, "CLIENT", "lean")
    monkeypatch.setattr(mqtt_connection, "BACKOFF_START", 0.05)
    got: list[bytes] = []
    held: list[Any] = []
    states: list[str] = []

    def on_message(_topic: str, payload: bytes, *_rest: Any) -> None:
        if payload not in got:  # the first delivery stays in the flows (its receipt held); a second is done
            held.append(current_receipt().hold())
        got.append(payload)

    conn = connection(mosquitto.port, on_message, states)
    conn.connect()
    try:
        await until(lambda: conn.connected, "connected")
        await send(mosquitto.port, "h/2", ["a", "b", "c"])
        await until(lambda: len(got) == 3, "three in the flows")
        assert conn.unfinished == 3
        conn.hold_intake(True)
        ups = states.count("connected")
        conn.forsake()
        await until(lambda: states.count("connected") > ups, "connected again")
        await until(lambda: len(conn._kept) == 3, "the three sent again, kept")
        for release in held:  # the old revision lets go late: no acknowledgement of the old connection
            release()
        conn.hold_intake(False)
        assert got == [b"a", b"b", b"c", b"a", b"b", b"c"]
        assert conn.unfinished == 0
        ups = states.count("connected")
        conn.forsake()  # nothing in hand now: the broker has nothing to send again
        await until(lambda: states.count("connected") > ups, "connected again")
        await asyncio.sleep(0.3)
        assert len(got) == 6
    finally:
        await conn.close()
