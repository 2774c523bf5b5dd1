"""The lean MQTT 3.1.1 client (mqtt_protocol.py, mqtt_packets.py): packets, mosquitto (free 127.0.0.1 port,
stopped by pid), and scripted fake brokers (asyncio servers here) for refusals, silence, duplicate QoS 2
deliveries and kept sessions. Reconnects after a broker restart: test_node_mqtt_resilience.py (both clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.nodes.mqtt import mqtt_connection
from sofiaflow.nodes.mqtt import mqtt_packets as pk
from sofiaflow.nodes.mqtt.mqtt_client import FastClient
from sofiaflow.nodes.mqtt.mqtt_options import ConnectOptions, Outgoing
from sofiaflow.nodes.mqtt.mqtt_protocol import LeanClient, MqttError
from tests.conftest import require_binary
from tests.test_node_mqtt import Mosquitto, free_port

# ----- packets ---------------------------------------------------------------------------------------------------


@given(st.integers(0, pk.MAX_REMAINING))
def test_remaining_length_round_trip(n):
    encoded = pk.encode_length(n)
    assert 1 <= len(encoded) <= 4 and pk.decode_length(b"\x30" + encoded + b"rest", 1) == (
        n,
        1 + len(encoded),
    )
    assert pk.decode_length(b"\x30" + encoded[:-1], 1) is None  # incomplete


def test_remaining_length_limits():
    assert pk.encode_length(127) == b"\x7f" and pk.encode_length(128) == b"\x80\x01"
    with pytest.raises(ValueError):
        pk.encode_length(pk.MAX_REMAINING + 1)
    with pytest.raises(ValueError, match="malformed"):
        pk.decode_length(b"\xff\xff\xff\xff\x01", 0)


def split_packet(packet: bytes) -> tuple[int, bytes]:
    length, start = pk.decode_length(packet, 1)
    assert start + length == len(packet)
    return packet[0], packet[start:]


topics = st.text(
    st.characters(blacklist_characters="+#\0", blacklist_categories=("Cs",)), min_size=1, max_size=80
)


@given(
    topics, st.binary(max_size=300), st.integers(0, 2), st.booleans(), st.booleans(), st.integers(1, 65535)
)
def test_publish_round_trip(topic, payload, qos, retain, dup, mid):
    packet = pk.encode_publish(topic, payload, qos, retain, dup, mid)
    got = pk.decode_publish(*split_packet(packet))
    assert got == pk.Publish(topic, payload, qos, retain, dup, mid if qos else 0)


@pytest.mark.parametrize("topic", ["", "a/+", "a/#", "a\0b"])
def test_invalid_publish_topics_are_refused(topic):
    with pytest.raises(ValueError, match="Invalid topic"):
        pk.encode_publish(topic, b"x")


def test_connect_and_control_packets():
    packet = pk.encode_connect(
        "cid", level=4, clean=False, keepalive=30, username="u", password="p", will=("w/t", b"gone", 1, True)
    )
    first, body = split_packet(packet)
    assert first == 0x10 and body[:7] == b"\x00\x04MQTT\x04"
    assert body[7] == 0x80 | 0x40 | 0x20 | 0x08 | 0x04 and body[8:10] == b"\x00\x1e"
    assert body[10:] == b"\x00\x03cid\x00\x03w/t\x00\x04gone\x00\x01u\x00\x01p"
    assert split_packet(pk.encode_connect("c", level=3))[1][:10] == b"\x00\x06MQIsdp\x03\x02"
    assert (
        pk.encode_ack(pk.PUBREL, 258) == b"\x62\x02\x01\x02"
        and pk.encode_ack(pk.PUBACK, 1) == b"\x40\x02\x00\x01"
    )
    assert pk.encode_subscribe(5, [("a/#", 1)]) == b"\x82\x08\x00\x05\x00\x03a/#\x01"
    assert pk.encode_unsubscribe(5, ["a"]) == b"\xa2\x05\x00\x05\x00\x01a"
    assert pk.with_dup(pk.encode_publish("t", b"x", 1, mid=3))[0] == 0x3A


# ----- helpers -------------------------------------------------------------------------------------------------


class Recorder:
    """Hooks for a LeanClient: collects messages (acknowledging them) and acknowledged packet ids."""

    def __init__(self, ack: bool = True) -> None:
        self.messages, self.acked, self.changed, self.auto_ack = [], [], asyncio.Event(), ack

    def hooks(self) -> dict:
        return {"on_message": self.on_message, "on_ack": self.on_ack, "on_drained": lambda: None}

    def on_message(self, client: LeanClient, message) -> None:
        self.messages.append(message)
        if message.qos and self.auto_ack:
            client.ack(message.mid, message.qos)
        self.changed.set()

    def on_ack(self, mid: int) -> None:
        self.acked.append(mid)
        self.changed.set()

    async def until(self, condition, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def lean(port: int, rec: Recorder, **kwargs) -> LeanClient:
    return LeanClient(
        host="127.0.0.1", port=port, client_id=kwargs.pop("client_id", "lean-test"), **rec.hooks(), **kwargs
    )


CONNACK_OK = b"\x20\x02\x00\x00"


class FakeBroker:
    """A scripted broker: `script(reader, writer, broker)` runs per connection; packets read are recorded."""

    def __init__(self, script) -> None:
        self.script = script
        self.packets: list[tuple[int, bytes]] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeBroker:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    async def read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readexactly(2)
        raw = bytearray(head)
        while raw[-1] & 0x80:
            raw += await reader.readexactly(1)
        length, _ = pk.decode_length(raw, 1)
        packet = (raw[0], await reader.readexactly(length))
        self.packets.append(packet)
        return packet

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await self.script(reader, writer, self)
        writer.close()


# ----- against scripted brokers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, words",
    [
        (1, "protocol version"),
        (2, "identifier rejected"),
        (4, "bad user name or password"),
        (5, "not authorised"),
    ],
)
async def test_connack_refusals_are_clear_errors(code, words):
    async def script(reader, writer, broker):
        await broker.read(reader)
        writer.write(bytes((0x20, 2, 0, code)))
        await writer.drain()
        await reader.read()

    with pytest.raises(MqttError, match=words):
        async with FakeBroker(script) as fake, lean(fake.port, Recorder()):
            pass


async def test_silent_broker_is_dropped_after_a_keepalive_without_answer():
    async def script(reader, writer, broker):
        await broker.read(reader)
        writer.write(CONNACK_OK)
        while True:
            await broker.read(reader)  # never answers PINGREQ

    async with FakeBroker(script) as fake:
        async with lean(fake.port, Recorder(), keepalive=1) as client:
            async with asyncio.timeout(4):
                with pytest.raises(MqttError, match="PINGRESP"):
                    await client.lost
        assert any(first == 0xC0 for first, _ in fake.packets)


async def test_inbound_qos2_is_delivered_once_per_packet_id():
    publish = pk.encode_publish("q2/t", b"once", 2, mid=7)

    async def script(reader, writer, broker):
        await broker.read(reader)
        writer.write(CONNACK_OK + publish + pk.with_dup(publish))
        await broker.read(reader)  # PUBREC
        await broker.read(reader)  # PUBREC again, for the duplicate
        writer.write(pk.encode_ack(pk.PUBREL, 7) + publish)  # after PUBREL, id 7 is a new message
        await broker.read(reader)  # PUBCOMP
        while True:
            await broker.read(reader)  # PUBREC, DISCONNECT

    rec = Recorder()
    async with FakeBroker(script) as fake:
        async with lean(fake.port, rec):
            await rec.until(lambda: len(rec.messages) == 2)
            await asyncio.sleep(0.1)
    assert [(m.payload, m.qos, m.mid) for m in rec.messages] == [(b"once", 2, 7)] * 2
    assert [first for first, _ in fake.packets[1:]] == [0x50, 0x50, 0x70, 0x50, 0xE0]


async def test_unacknowledged_publishes_are_resent_with_dup_to_a_kept_session():
    sessions: list[bool] = []

    async def script(reader, writer, broker):
        await broker.read(reader)
        kept = bool(sessions)
        writer.write(bytes((0x20, 2, int(kept), 0)))
        sessions.append(True)
        while True:
            first, body = await broker.read(reader)
            if first & 0xF0 == 0x30 and first & 0x08:  # a DUP resend: acknowledge it now
                writer.write(pk.encode_ack(pk.PUBACK, pk.decode_publish(first, body).mid))
            elif first == 0x62 and kept:
                writer.write(pk.encode_ack(pk.PUBCOMP, (body[0] << 8) | body[1]))
            elif first == 0x34:  # QoS 2: PUBREC, then the connection drops before PUBCOMP
                writer.write(pk.encode_ack(pk.PUBREC, pk.decode_publish(first, body).mid))

    rec = Recorder()
    async with FakeBroker(script) as fake:
        async with lean(fake.port, rec, clean=False) as first_client:
            mid1 = first_client.publish_nowait(Outgoing("keep/t", b"a", 1)).mid
            mid2 = first_client.publish_nowait(Outgoing("keep/t", b"b", 2)).mid
            async with asyncio.timeout(5):
                while first_client.unacknowledged().get(mid2) is not None:
                    await asyncio.sleep(0.01)  # PUBREC came: PUBREL, not the PUBLISH, is what remains
            pending = first_client.unacknowledged()
        assert rec.acked == [] and set(pending) == {mid1, mid2} and pending[mid2] is None
        async with lean(fake.port, rec, clean=False) as second:
            assert second.session_present
            second.resend(pending)
            await rec.until(lambda: sorted(rec.acked) == sorted([mid1, mid2]))
            assert second.unacknowledged() == {}
    resent = [pk.decode_publish(f, b) for f, b in fake.packets if f & 0xF8 == 0x38]
    assert [(p.topic, p.payload, p.mid, p.dup) for p in resent] == [("keep/t", b"a", mid1, True)]


@pytest.mark.parametrize("kept", [True, False])
async def test_connection_resends_unacknowledged_after_a_reconnect(kept, monkeypatch):
    """Through mqtt_connection (clean session off): the broker drops the connection before its PUBACK;
    a kept session gets the PUBLISH again with DUP and its packet id, a lost one a fresh PUBLISH."""
    monkeypatch.setattr(mqtt_connection, "CLIENT", "lean")
    monkeypatch.setattr(mqtt_connection, "BACKOFF_START", 0.05)
    sessions: list[bool] = []

    async def script(reader, writer, broker):
        await broker.read(reader)
        second = bool(sessions)
        sessions.append(True)
        writer.write(bytes((0x20, 2, int(kept and second), 0)))
        while True:
            first, body = await broker.read(reader)
            if first & 0xF0 == 0x30:
                if not second:
                    return  # the connection drops: no PUBACK
                writer.write(pk.encode_ack(pk.PUBACK, pk.decode_publish(first, body).mid))

    states: list[str] = []
    async with FakeBroker(script) as fake:
        options = ConnectOptions("127.0.0.1", fake.port, client_id="keep", clean_session=False)
        conn = mqtt_connection.MqttConnection(
            options,
            on_message=lambda *a: None,
            on_state=lambda s, e: states.append(s),
            spawn=asyncio.ensure_future,
            sleep=asyncio.sleep,
            warn=print,
        )
        conn.connect()
        try:
            async with asyncio.timeout(5):
                while not conn.connected:
                    await asyncio.sleep(0.01)
                conn.publish(Outgoing("keep/t", b"once", 1))
                while len(sessions) < 2 or conn.buffered:
                    await asyncio.sleep(0.01)
        finally:
            await conn.close()
    sent = [pk.decode_publish(f, b) for f, b in fake.packets if f & 0xF0 == 0x30]
    assert [(p.payload, p.dup) for p in sent] == [(b"once", False), (b"once", kept)]
    assert (sent[0].mid == sent[1].mid or not kept) and states.count("connected") == 2


async def test_refused_subscription_raises():
    async def script(reader, writer, broker):
        await broker.read(reader)
        writer.write(CONNACK_OK)
        _, body = await broker.read(reader)
        writer.write(b"\x90\x03" + body[:2] + b"\x80")
        await reader.read()

    async with FakeBroker(script) as fake, lean(fake.port, Recorder()) as client:
        with pytest.raises(MqttError, match="refused the subscription"):
            await client.subscribe("no/#", qos=1)


async def test_packets_split_anywhere_and_reading_paused_mid_chunk():
    """A stream cut at random points parses the same; a consumer pausing keeps the rest for later."""
    packets = [pk.encode_publish(f"s/{i}", bytes(i * 37 % 300), i % 2, mid=i + 1) for i in range(200)]
    stream = b"".join(packets)
    rng = random.Random(7)
    for _ in range(20):
        rec = Recorder(ack=False)
        client = lean(1, rec)
        pos = 0
        while pos < len(stream):
            step = rng.choice([1, 2, 3, 50, 700, 5000])
            client.data_received(stream[pos : pos + step])
            pos += step
        assert [m.topic for m in rec.messages] == [f"s/{i}" for i in range(200)]
        assert [m.payload for m in rec.messages] == [bytes(i * 37 % 300) for i in range(200)]
    rec = Recorder(ack=False)
    rec.on_message = lambda c, m: (rec.messages.append(m), len(rec.messages) == 10 and c.reading(False))
    client = lean(1, rec)
    client._transport = SimpleNamespace(
        is_closing=lambda: False, pause_reading=lambda: None, resume_reading=lambda: None
    )
    client.data_received(stream)
    assert len(rec.messages) == 10
    client.reading(True)
    await asyncio.sleep(0)
    assert len(rec.messages) == 200


def test_connection_picks_the_client_by_protocol_transport_and_switch(monkeypatch):
    async def pick(protocol: int, transport: str) -> type:
        conn = mqtt_connection.MqttConnection(
            ConnectOptions("127.0.0.1", 1, transport=transport, protocol=protocol),
            on_message=None,
            on_state=None,
            spawn=None,
            sleep=None,
            warn=None,
        )
        return type(conn._new_client())

    monkeypatch.setattr(mqtt_connection, "CLIENT", "lean")
    assert asyncio.run(pick(4, "tcp")) is LeanClient and asyncio.run(pick(3, "tcp")) is LeanClient
    assert asyncio.run(pick(5, "tcp")) is FastClient and asyncio.run(pick(4, "websockets")) is FastClient
    monkeypatch.setattr(mqtt_connection, "CLIENT", "paho")
    assert asyncio.run(pick(4, "tcp")) is FastClient


# ----- against mosquitto ---------------------------------------------------------------------------------------


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


@pytest.mark.servers
async def test_publish_subscribe_round_trip_at_every_qos(mosquitto):
    rec = Recorder()
    async with lean(mosquitto.port, rec) as client:
        assert await client.subscribe("rt/#", qos=2) == (2,)
        mids = [
            client.publish_nowait(Outgoing(f"rt/{q}", f"m{q}".encode() * 1000, q, False)).mid
            for q in (0, 1, 2)
        ]
        await rec.until(lambda: len(rec.messages) == 3 and len(rec.acked) == 2)
        await client.unsubscribe("rt/#")
        client.publish_nowait(Outgoing("rt/after", b"x", 1))
        await rec.until(lambda: len(rec.acked) == 3)
        await asyncio.sleep(0.1)
    assert [(m.topic, m.payload, m.qos) for m in rec.messages] == [
        (f"rt/{q}", f"m{q}".encode() * 1000, q) for q in (0, 1, 2)
    ]
    assert mids[0] == 0 and sorted(rec.acked[:2]) == mids[1:]
    assert client.lost.done() and client.lost.exception() is None


@pytest.mark.servers
async def test_many_messages_in_few_reads(mosquitto):
    rec = Recorder()
    async with lean(mosquitto.port, rec) as client:
        await client.subscribe("many/t", qos=1)
        for i in range(5000):
            client.publish_nowait(Outgoing("many/t", str(i).encode(), 1))
        await rec.until(lambda: len(rec.messages) == 5000, timeout=10)
    assert [int(m.payload) for m in rec.messages] == list(range(5000))


@pytest.mark.servers
async def test_keepalive_pings_keep_the_connection(mosquitto):
    async with lean(mosquitto.port, Recorder(), keepalive=1) as client:
        await asyncio.sleep(2.5)
        assert client.pings >= 2 and not client.lost.done()


@pytest.mark.servers
async def test_bad_credentials_are_a_clear_error(tmp_path):
    passwd = require_binary("mosquitto_passwd")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(pwfile), "u", "p"], check=True, capture_output=True)
    pwfile.chmod(0o600)
    server = Mosquitto(tmp_path, password_file=pwfile).start()
    try:
        with pytest.raises(MqttError, match="not authorised|bad user name or password"):
            async with lean(server.port, Recorder(), username="u", password="wrong"):
                pass
        async with lean(server.port, Recorder(), username="u", password="p") as client:
            assert await client.subscribe("ok/#", qos=1) == (1,)
    finally:
        server.stop()


async def test_nothing_listening_is_a_connection_error():
    with pytest.raises(MqttError, match="refused"):
        await lean(free_port(), Recorder()).__aenter__()
