"""EmbeddedBroker's in-process path (publish / subscribe for flows) with real MQTT clients: paho-mqtt 2.x and
Debian's mosquitto_sub."""

from __future__ import annotations

import asyncio
import signal

import pytest

from sofiaflow.runtime.mqtt.topics import TopicError
from tests.conftest import require_binary
from tests.mqtt_helpers import broker_env, client, collector, until


@pytest.fixture
async def env(tmp_path):
    async with broker_env(tmp_path) as pair:
        yield pair


# ----- in-process path -------------------------------------------------------------------------------
async def test_in_process_publish_reaches_device_subscribers(env):
    exe = require_binary("mosquitto_sub")
    registry, broker = env
    _, token = registry.create("s1", topics=["cmd/{device}/#"])
    proc = await asyncio.create_subprocess_exec(
        exe,
        "-h",
        "127.0.0.1",
        "-p",
        str(broker.port),
        "-u",
        "s1",
        "-P",
        token,
        "-t",
        "cmd/s1/#",
        "-q",
        "1",
        "-C",
        "2",
        "-W",
        "10",
        "-v",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        async with client(broker.port, "s1", token) as dev:
            assert await dev.connect() == "Success"
            assert await dev.subscribe("cmd/s1/#", 1) == [1]
            await until(lambda: len(broker._broker.subscriptions.get("cmd/s1/#", [])) == 2)
            await broker.publish("cmd/s1/led", b"on", qos=1)
            await broker.publish("cmd/s1/led", "off")
            assert [(await dev.next())[:2] for _ in range(2)] == [
                ("cmd/s1/led", b"on"),
                ("cmd/s1/led", b"off"),
            ]
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
        assert out.decode().splitlines() == ["cmd/s1/led on", "cmd/s1/led off"]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_retained_messages_for_devices_and_in_process_subscribers(env):
    registry, broker = env
    _, token = registry.create("s1", topics=["state/{device}/#"])
    await broker.publish("state/s1/mode", b"auto", qos=1, retain=True)
    late: list = []
    broker.subscribe("state/+/mode", lambda *m: late.append(m))
    await until(lambda: late == [("state/s1/mode", b"auto", 1, True)])
    async with client(broker.port, "s1", token) as dev:
        assert await dev.connect() == "Success"
        await dev.publish("state/s1/power", b"on", qos=1, retain=True)
        await until(lambda: "state/s1/power" in broker._broker.retained_messages)
        assert await dev.subscribe("state/s1/#", 1) == [1]
        got = {(await dev.next()) for _ in range(2)}
        assert {(t, p, r) for t, p, _q, r in got} == {
            ("state/s1/mode", b"auto", True),
            ("state/s1/power", b"on", True),
        }
    await broker.publish("state/s1/mode", b"", retain=True)  # clears it
    assert "state/s1/mode" not in broker._broker.retained_messages


async def test_in_process_subscribers_see_each_message_once(env):
    registry, broker = env
    _, token = registry.create("s1", topics=["sensors/{device}/#"])
    everything, exact, plus = (
        collector(broker, "#"),
        collector(broker, "sensors/s1/t"),
        collector(broker, "+/s1/+"),
    )
    failing = broker.subscribe("sensors/s1/t", lambda *_: 1 / 0)  # a failing callback does not stop others
    async with client(broker.port, "s1", token) as dev:
        assert await dev.connect() == "Success"
        for i in range(5):
            await dev.publish("sensors/s1/t", str(i).encode(), qos=i % 2)
        await until(lambda: len(everything) == 5)
    for i in range(5, 8):
        await broker.publish("sensors/s1/t", str(i).encode(), qos=1)
    await broker.publish("other/topic", b"x")
    await asyncio.sleep(0.1)
    assert [p for _t, p, _q, _r in everything] == [str(i).encode() for i in range(8)] + [b"x"]
    assert [p for _t, p, _q, _r in exact] == [str(i).encode() for i in range(8)]
    assert len(plus) == 8
    failing()
    unsubscribe = broker.subscribe("a/b", lambda *m: everything.append(m))
    unsubscribe()
    unsubscribe()
    await broker.publish("a/b", b"gone")
    assert everything[-1][1] == b"gone" and len(everything) == 10  # only the '#' collector got it


async def test_will_message_reaches_in_process_subscribers(env):
    exe = require_binary("mosquitto_sub")
    registry, broker = env
    _, token = registry.create("s1", topics=["status/{device}"])
    seen = collector(broker, "status/#")
    proc = await asyncio.create_subprocess_exec(
        exe,
        "-h",
        "127.0.0.1",
        "-p",
        str(broker.port),
        "-u",
        "s1",
        "-P",
        token,
        "-t",
        "status/s1",
        "--will-topic",
        "status/s1",
        "--will-payload",
        "offline",
        "--will-qos",
        "1",
        "-W",
        "20",
    )
    try:
        await until(lambda: broker.clients_connected() == 1)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await until(lambda: len(seen) == 1)
        assert seen == [("status/s1", b"offline", 1, False)]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_in_process_api_validates(env):
    _registry, broker = env
    with pytest.raises(TopicError):
        broker.subscribe("a/#/b", lambda *_: None)
    with pytest.raises(TopicError):
        await broker.publish("a/+", b"x")
    with pytest.raises(ValueError, match="qos"):
        await broker.publish("a", b"x", qos=3)
