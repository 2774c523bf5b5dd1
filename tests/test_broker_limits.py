"""The embedded broker's fences with real clients and sockets: anonymous (SSAP) clients limited to their own
SSAP topics and unable to take over a session, sockets freed and timed out, packets capped in size."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import time

import psutil
import pytest

from sofiaflow.nodes.onesait.ssap_mqtt_in import SsapMqttInNode
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.mqtt.broker import EmbeddedBroker, publish_packet_size
from sofiaflow.runtime.security.audit import AuditLog
from sofiaflow.runtime.security.devices import DeviceRegistry
from tests.mqtt_helpers import client, collector, until

MAX = 64 * 1024


@pytest.fixture
async def env(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'broker.db'}")
    registry = DeviceRegistry(db)
    audit = AuditLog(db)
    broker = EmbeddedBroker(registry, port=0, max_packet_size=MAX, connect_timeout=1.0, audit=audit)
    await broker.start()
    try:
        yield registry, broker, audit
    finally:
        await broker.stop()
        db.dispose()


def largest_payload(topic: str, qos: int) -> int:
    """The largest payload whose PUBLISH packet is exactly within MAX."""
    size = MAX
    while publish_packet_size(topic, size, qos) > MAX:
        size -= 1
    assert publish_packet_size(topic, size, qos) == MAX
    return size


def ssap_policy(indications: str = "/topic/subscription/{clientId}"):
    """The gateway's own policy (ssap-mqtt in), on its default request topic."""
    node = SsapMqttInNode.__new__(SsapMqttInNode)
    node._topic, node._indications = "/queue/message", indications
    return node._anonymous_topics


# ----- anonymous clients ------------------------------------------------------------------------------
async def test_anonymous_clients_get_only_their_own_ssap_topics(env):
    _registry, broker, _audit = env
    broker.anonymous_topics = ssap_policy()
    requests, forged = collector(broker, "/queue/message"), collector(broker, "/topic/#")
    async with client(broker.port, client_id="dev-1") as anon:
        assert await anon.connect() == "Success"
        assert await anon.subscribe("/topic/message/dev-1") == [0]
        assert await anon.subscribe("/topic/subscription/dev-1") == [0]
        for other in ("/topic/command", "/topic/subscription", "/topic/message/dev-2", "/topic/#", "#"):
            assert await anon.subscribe(other) == [0x80], other
        await anon.publish("/topic/command", b"reboot", qos=1)
        await anon.publish("/topic/subscription/dev-1", b"forged indication", qos=1)
        await anon.publish("/topic/message/dev-2", b"to another client", qos=1)
        await anon.publish("/queue/message", b"{}", qos=1)
        await until(lambda: requests)
        await anon.publish("/topic/message/dev-1", b"{}", qos=1)
        await until(lambda: len(forged) == 1)
    assert requests == [("/queue/message", b"{}", 1, False)]
    assert forged == [("/topic/message/dev-1", b"{}", 1, False)]


async def test_an_anonymous_connect_never_takes_over_a_session(env):
    registry, broker, _audit = env
    broker.anonymous_topics = ssap_policy()
    _, token = registry.create("dev-1", topics=["/topic/message/{device}", "d/#"])
    seen = collector(broker, "d/#")
    async with client(broker.port, "dev-1", token, client_id="dev-1") as device:
        assert await device.connect() == "Success"
        async with client(broker.port, client_id="dev-1") as intruder:
            assert await intruder.connect() == "Client identifier not valid"
        await device.publish("d/still-here", b"1", qos=1)  # the device's session is untouched
        await until(lambda: seen)
        assert not device.disconnected.is_set() and broker.clients_connected() == 1
    async with client(broker.port, client_id="anon-1") as first:
        assert await first.connect() == "Success"
        async with client(broker.port, client_id="anon-1") as second:
            assert await second.connect() == "Client identifier not valid"
        assert await first.subscribe("/topic/message/anon-1") == [0]
    async with client(broker.port, client_id="anon-2", clean_session=False) as persistent:
        assert await persistent.connect() == "Not authorized"


# ----- sockets --------------------------------------------------------------------------------------------
def _sockets() -> int:
    return len(psutil.Process().net_connections(kind="tcp"))


async def test_connections_closed_before_connect_are_freed(env):
    _registry, broker, _audit = env
    await asyncio.sleep(0.1)
    before = _sockets()
    for _ in range(200):
        sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", broker.port), 5)
        sock.close()
    await until(lambda: _sockets() <= before + 2, timeout=10)


async def test_a_connection_without_connect_is_closed_at_the_deadline(env):
    _registry, broker, _audit = env
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", broker.port), 5)
    try:
        sock.settimeout(10)  # the deadline is 1 s
        assert await asyncio.to_thread(sock.recv, 16) == b""  # closed by the broker, nothing sent
    finally:
        sock.close()


def _connect_packet(client_id: str, user: str, password: str, keepalive: int) -> bytes:
    def text(value: str) -> bytes:
        raw = value.encode()
        return struct.pack("!H", len(raw)) + raw

    body = (
        text("MQTT")
        + bytes([4, 0xC2])
        + struct.pack("!H", keepalive)
        + text(client_id)
        + text(user)
        + text(password)
    )
    return bytes([0x10, len(body)]) + body


async def test_a_silent_client_is_dropped_after_one_and_a_half_keepalives(env):
    registry, broker, _audit = env
    _, token = registry.create("quiet", topics=["q/#"])
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", broker.port), 5)
    try:
        sock.sendall(_connect_packet("quiet-1", "quiet", token, keepalive=1))
        sock.settimeout(10)
        assert await asyncio.to_thread(sock.recv, 4) == b"\x20\x02\x00\x00"  # CONNACK accepted
        await until(lambda: broker.clients_connected() == 1)
        assert await asyncio.to_thread(sock.recv, 16) == b""  # then silence: the broker hangs up
        await until(lambda: broker.clients_connected() == 0)
    finally:
        sock.close()


# ----- packet size ----------------------------------------------------------------------------------------
async def test_an_oversized_publish_closes_the_connection_and_is_audited(env):
    registry, broker, audit = env
    _, token = registry.create("big", topics=["big/#"])
    seen = collector(broker, "big/#")
    fits = largest_payload("big/t", 1)
    async with client(broker.port, "big", token) as dev:
        assert await dev.connect() == "Success"
        await dev.publish("big/t", b"x" * fits, qos=1)  # exactly the maximum packet: taken
        await until(lambda: seen)
        dev.c.publish("big/t", b"x" * (fits + 1), qos=1)
        await asyncio.to_thread(dev.disconnected.wait, 5)
        assert dev.disconnected.is_set()
    await asyncio.sleep(0.2)
    assert [len(m[1]) for m in seen] == [fits]
    entries = audit.entries(action="mqtt.oversize")
    assert len(entries) == 1 and entries[0]["outcome"] == "denied"


async def test_in_process_publish_refuses_an_oversized_message(env):
    _registry, broker, _audit = env
    seen = collector(broker, "t")
    with pytest.raises(ValueError, match="maximum packet size"):
        await broker.publish("t", b"x" * MAX)
    await broker.publish("t", b"x" * largest_payload("t", 0))
    assert len(seen) == 1


async def test_a_64_mb_publish_is_refused_without_reading_it(env):
    registry, broker, _audit = env
    _, token = registry.create("huge", topics=["h/#"])
    sock = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", broker.port), 5)
    with contextlib.closing(sock):
        sock.sendall(_connect_packet("huge-1", "huge", token, keepalive=30))
        sock.settimeout(10)
        assert await asyncio.to_thread(sock.recv, 4) == b"\x20\x02\x00\x00"
        size = 64 * 1024 * 1024
        length, encoded = size, bytearray()
        while True:
            byte, length = length % 128, length // 128
            encoded.append(byte | (0x80 if length else 0))
            if not length:
                break
        sock.sendall(bytes([0x30]) + bytes(encoded) + b"\x00\x03h/x")  # announce 64 MB, send a few bytes
        started = time.monotonic()
        got = b"?"
        while got and time.monotonic() - started < 10:
            try:
                got = await asyncio.to_thread(sock.recv, 16)
            except ConnectionResetError:
                got = b""
        assert got == b""
