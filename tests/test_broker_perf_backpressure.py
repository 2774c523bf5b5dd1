"""The embedded broker's direct path under a burst: a slow in-process subscriber holds the publishing device back
instead of losing messages (bounded queue), an MQTT subscriber that stops reading has bounded unsent bytes, and
QoS 0 / QoS 1 messages reach devices and flows once each, in order."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque

import pytest

from sofiaflow.runtime.mqtt import broker as broker_module
from tests.conftest import require_binary
from tests.mqtt_helpers import broker_env, until

PAUSE_AT, RESUME_AT = 200, 50


@pytest.fixture
async def env(tmp_path):
    async with broker_env(tmp_path) as pair:
        yield pair


async def _publish_burst(port: int, device: str, token: str, count: int, qos: int) -> None:
    exe = require_binary("mosquitto_pub")
    lines = "".join(f"{i}\n" for i in range(count)).encode()
    proc = await asyncio.create_subprocess_exec(
        *[exe, "-h", "127.0.0.1", "-p", str(port), "-u", device, "-P", token],
        *["-t", f"burst/{device}", "-q", str(qos), "-l"],
        stdin=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(lines), 120)
    assert proc.returncode == 0, err.decode()


@pytest.mark.parametrize("qos", [0, 1])
async def test_a_slow_flow_holds_the_device_back_and_loses_nothing(env, qos):
    registry, broker = env
    _, token = registry.create("d1", topics=["burst/{device}"])
    inbox: deque[int] = deque()
    taken: list[int] = []
    deepest = 0
    key = object()

    def on_message(_topic: str, payload: bytes, _qos: int, _retain: bool) -> None:
        nonlocal deepest
        inbox.append(int(payload))
        deepest = max(deepest, len(inbox))
        if len(inbox) >= PAUSE_AT:
            broker.hold_publishers(key, True)

    async def slow_flow() -> None:  # takes one message per loop turn: slower than the socket brings them
        while True:
            while inbox:
                taken.append(inbox.popleft())
                if len(inbox) <= RESUME_AT:
                    broker.hold_publishers(key, False)
                await asyncio.sleep(0)
            await asyncio.sleep(0.001)

    broker.subscribe("burst/+", on_message)
    consumer = asyncio.create_task(slow_flow())
    count = 20_000
    try:
        await _publish_burst(broker.port, "d1", token, count, qos)
        await until(lambda: len(taken) >= count, timeout=120)
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    assert taken == list(range(count))  # every message, once, in order
    assert deepest < PAUSE_AT + 100, f"the flow's queue grew to {deepest}: the device was not held back"
    assert not broker.holders


async def test_qos0_fan_out_to_devices_and_flows_once_each(env):
    exe = require_binary("mosquitto_sub")
    registry, broker = env
    _, token = registry.create("d1", topics=["burst/{device}"])
    _, sub_token = registry.create("s1", topics=["burst/#"])
    flows: list[int] = []
    broker.subscribe("burst/d1", lambda _t, p, _q, _r: flows.append(int(p)))
    count = 5_000
    subs = [
        await asyncio.create_subprocess_exec(
            *[exe, "-h", "127.0.0.1", "-p", str(broker.port), "-u", "s1", "-P", sub_token],
            *["-t", topic, "-q", "0", "-C", str(count), "-W", "60", "-i", f"sub-{n}"],
            stdout=asyncio.subprocess.PIPE,
        )
        for n, topic in enumerate(["burst/d1", "burst/+"])
    ]
    try:
        await until(lambda: len(broker._broker.subscriptions) == 2, timeout=10)
        await _publish_burst(broker.port, "d1", token, count, 0)
        outs = [(await asyncio.wait_for(proc.communicate(), 60))[0] for proc in subs]
    finally:
        for proc in subs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for out in outs:
        assert [int(line) for line in out.split()] == list(range(count))
    await until(lambda: len(flows) == count)
    assert flows == list(range(count))


def _packet(first: int, body: bytes) -> bytes:
    size, length = len(body), bytearray()
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([first]) + bytes(length) + body


def _text(value: str) -> bytes:
    data = value.encode()
    return len(data).to_bytes(2, "big") + data


def _raw_subscriber(port: int, name: str, token: str, topic: str) -> socket.socket:
    """A device that subscribes at QoS 0 and then never reads its socket (MQTT 3.1.1 packets by hand)."""
    sock = socket.create_connection(("127.0.0.1", port), 5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    connect = _text("MQTT") + bytes([4, 0xC2, 0, 0]) + _text("stuck") + _text(name) + _text(token)
    sock.sendall(_packet(0x10, connect))
    sock.sendall(_packet(0x82, b"\x00\x01" + _text(topic) + b"\x00"))
    return sock


async def test_a_subscriber_that_stops_reading_has_bounded_unsent_bytes(env, monkeypatch):
    monkeypatch.setattr(broker_module, "OUT_HIGH", 64 * 1024)
    monkeypatch.setattr(broker_module, "OUT_MAX", 256 * 1024)
    monkeypatch.setattr(broker_module, "HOLD_MAX", 1.0)
    registry, broker = env
    _, token = registry.create("s1", topics=["out/#"])
    sock = await asyncio.to_thread(_raw_subscriber, broker.port, "s1", token, "out/#")
    try:
        await until(lambda: len(broker._broker.subscriptions.get("out/#", [])) == 1, timeout=10)
        _session, handler = broker._broker.sessions["stuck"]
        transport = handler.writer._writer.transport
        payload = b"x" * 10_000
        loop = asyncio.get_running_loop()
        started = loop.time()
        deepest = 0
        for _ in range(3000):  # 30 MB to a subscriber that reads nothing
            await broker.publish("out/a", payload)
            deepest = max(deepest, transport.get_write_buffer_size())
        took = loop.time() - started
        assert deepest <= broker_module.OUT_MAX + len(payload) + 100, deepest
        assert broker.dropped > 0  # past OUT_MAX, QoS 0 messages to it are not queued
        assert 1.0 <= took < 30  # the publishing flow waited for it once (HOLD_MAX), not for every message
        assert broker._stuck and not broker._congested
    finally:
        sock.close()
    await until(lambda: not broker._stuck, timeout=10)  # its connection ended: nothing is held for it
