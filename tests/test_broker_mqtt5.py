"""The embedded broker speaks MQTT 3.1.1: an MQTT 5 client (Debian's `mosquitto_pub -V mqttv5`, paho MQTTv5) gets a
CONNACK it can read (reason code 0x84 Unsupported Protocol Version, with a reason string) at once, the log gets one
line without a traceback, and 3.1.1 clients are unaffected. The level check itself is tested on every split of a
CONNECT's bytes (hypothesis)."""

from __future__ import annotations

import asyncio
import logging
import threading

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.mqtt.broker import (
    MQTT5_REFUSAL,
    UnsupportedProtocolVersion,
    _CappedReader,
    unsupported_version_connack,
)
from tests.conftest import require_binary
from tests.mqtt_helpers import broker_env


@pytest.fixture
async def env(tmp_path):
    async with broker_env(tmp_path) as pair:
        yield pair


def no_tracebacks(caplog) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()] == []


async def run(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode, (out + err).decode()


async def test_mosquitto_pub_v5_is_refused_with_a_readable_reason(env, caplog):
    exe = require_binary("mosquitto_pub")
    registry, broker = env
    _, token = registry.create("s1", topics=["#"])
    base = [exe, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "a/b", "-m", "x", "-u", "s1", "-P", token]
    with caplog.at_level(logging.INFO):
        code, text = await run(*base, "-V", "mqttv5")
        assert code != 0
        assert "Unsupported Protocol Version" in text
        assert await run(*base, "-V", "mqttv311") == (0, "")
    assert any("protocol level 5 (MQTT 5)" in r.getMessage() for r in caplog.records)
    no_tracebacks(caplog)


async def test_paho_v5_gets_reason_code_0x84_and_the_reason_string(env, caplog):
    registry, broker = env
    _, token = registry.create("s1", topics=["#"])
    done = threading.Event()
    seen: dict = {}

    def on_connect(_client, _userdata, _flags, reason, properties):
        seen["reason"] = reason
        seen["text"] = getattr(properties, "ReasonString", None)
        done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("s1", token)
    client.on_connect = on_connect
    with caplog.at_level(logging.INFO):
        await asyncio.to_thread(client.connect, "127.0.0.1", broker.port)
        client.loop_start()
        try:
            assert await asyncio.to_thread(done.wait, 20)
        finally:
            client.disconnect()
            client.loop_stop()
    assert seen["reason"].value == 0x84
    assert str(seen["reason"]) == "Unsupported protocol version"
    assert seen["text"] == MQTT5_REFUSAL
    assert broker.clients_connected() == 0
    no_tracebacks(caplog)


def test_the_v5_connack_is_well_formed():
    packet = unsupported_version_connack(5)
    assert packet[0] == 0x20 and packet[1] == len(packet) - 2
    assert packet[2:4] == b"\x00\x84"
    assert packet[4] == len(packet) - 5 and packet[5] == 0x1F
    assert packet[8:].decode() == MQTT5_REFUSAL
    assert unsupported_version_connack(3) == b"\x20\x02\x00\x01"


class _Chunks:
    """A reader handing out given chunks in order, whatever size is asked for."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)

    async def read(self, n: int = -1) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def feed_eof(self) -> None:
        pass


class _Owner:
    max_packet_size = 1 << 20

    def oversize(self, *_args) -> None:
        raise AssertionError("not oversized")


def connect_packet(level: int, name: bytes = b"MQTT") -> list[bytes]:
    """A CONNECT's pieces as amqtt reads them: type byte, length byte, then the body."""
    body = len(name).to_bytes(2, "big") + name + bytes([level, 0x02, 0, 60]) + b"\x00\x02id"
    return [b"\x10", bytes([len(body)]), body]


@settings(max_examples=60, deadline=None)
@given(level=st.integers(0, 255), cuts=st.lists(st.integers(1, 13), max_size=6))
def test_the_level_check_sees_the_level_whatever_the_reads(level, cuts):
    type_byte, length, body = connect_packet(level)
    pieces, at = [], 0
    for cut in sorted(set(cuts)):
        if cut > at:
            pieces.append(body[at:cut])
            at = cut
    pieces.append(body[at:])
    reader = _CappedReader(_Chunks([type_byte, length, *pieces]), _Owner(), "test")

    async def read_all() -> bytes:
        got = b""
        for _ in range(2 + len(pieces)):
            got += await reader.read(1)
        return got

    if level == 4:
        assert asyncio.run(read_all()) == type_byte + length + body
    else:
        with pytest.raises(UnsupportedProtocolVersion, match=f"protocol level {level}"):
            asyncio.run(read_all())


def test_mqtt31_and_other_packets_pass_the_check():
    async def read_all(chunks: list[bytes]) -> bytes:
        reader = _CappedReader(_Chunks(chunks), _Owner(), "test")
        return b"".join([await reader.read(1) for _ in chunks])

    for chunks in (connect_packet(3, b"MQIsdp"), [b"\xc0", b"\x00"]):
        assert asyncio.run(read_all(chunks)) == b"".join(chunks)
