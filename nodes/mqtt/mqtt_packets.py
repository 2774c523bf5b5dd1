"""MQTT 3.1 / 3.1.1 packets: encoding, and the decoding helpers mqtt_protocol.py uses.

Everything is plain `bytes`; PUBLISH is built with one join and its topic bytes (length prefix
included) come from a small cache, since a flow publishes to few topics many times.
"""

from __future__ import annotations

from typing import Any, NamedTuple

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 10, 11, 12, 13, 14

MAX_REMAINING = 268_435_455
PINGREQ_PACKET = b"\xc0\x00"
DISCONNECT_PACKET = b"\xe0\x00"
_BYTE = [bytes((i,)) for i in range(256)]
_TOPICS: dict[str, bytes] = {}
_TOPIC_CACHE_MAX = 4096

CONNACK_ERRORS = {
    1: "Connection refused: unacceptable protocol version",
    2: "Connection refused: identifier rejected",
    3: "Connection refused: server unavailable",
    4: "Connection refused: bad user name or password",
    5: "Connection refused: not authorised",
}


class Publish(NamedTuple):
    """A decoded PUBLISH."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    mid: int = 0


def encode_length(n: int) -> bytes:
    """The remaining-length varint (1 to 4 bytes)."""
    if n < 128:
        return _BYTE[n]
    if n > MAX_REMAINING:
        raise ValueError(f"packet too large ({n} bytes, MQTT allows {MAX_REMAINING})")
    out = bytearray()
    while n:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
    return bytes(out)


def decode_length(buf: bytes | bytearray, pos: int) -> tuple[int, int] | None:
    """(value, position after it) of the varint at `pos`; None if incomplete, ValueError if malformed."""
    value = shift = 0
    end = len(buf)
    for _ in range(4):
        if pos >= end:
            return None
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("malformed remaining length")


def encode_string(text: str | bytes) -> bytes:
    """A UTF-8 string (or binary data) with its two-byte length."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    if len(data) > 65535:
        raise ValueError("string longer than 65535 bytes")
    return len(data).to_bytes(2, "big") + data


def topic_bytes(topic: str) -> bytes:
    """A publish topic, validated and encoded with its length (cached)."""
    cached = _TOPICS.get(topic)
    if cached is not None:
        return cached
    if not isinstance(topic, str) or not topic or "+" in topic or "#" in topic or "\0" in topic:
        raise ValueError("Invalid topic.")
    encoded = encode_string(topic)
    if len(_TOPICS) >= _TOPIC_CACHE_MAX:
        _TOPICS.clear()
    _TOPICS[topic] = encoded
    return encoded


def encode_publish(
    topic: str, payload: bytes, qos: int = 0, retain: bool = False, dup: bool = False, mid: int = 0
) -> bytes:
    """A PUBLISH packet (`mid` is used for QoS 1 and 2)."""
    head = topic_bytes(topic)
    first = 0x30 | (dup << 3) | (qos << 1) | bool(retain)
    if qos:
        return b"".join(
            (_BYTE[first], encode_length(len(head) + 2 + len(payload)), head, mid.to_bytes(2, "big"), payload)
        )
    return b"".join((_BYTE[first], encode_length(len(head) + len(payload)), head, payload))


def decode_publish(first: int, body: bytes) -> Publish:
    """A PUBLISH from its first byte and its body (the bytes after the remaining length)."""
    size = (body[0] << 8) | body[1]
    pos = 2 + size
    qos = (first >> 1) & 3
    if qos == 3 or pos > len(body):
        raise ValueError("malformed PUBLISH")
    mid = 0
    if qos:
        mid = (body[pos] << 8) | body[pos + 1]
        pos += 2
    return Publish(body[2 : 2 + size].decode(), bytes(body[pos:]), qos, bool(first & 1), bool(first & 8), mid)


def encode_ack(kind: int, mid: int) -> bytes:
    """PUBACK, PUBREC, PUBREL (flags 0b0010) or PUBCOMP for packet id `mid`."""
    return bytes((kind << 4 | (2 if kind == PUBREL else 0), 2, mid >> 8, mid & 0xFF))


def encode_connect(
    client_id: str,
    *,
    level: int = 4,
    clean: bool = True,
    keepalive: int = 60,
    username: str | None = None,
    password: str | None = None,
    will: tuple[str, bytes, int, bool] | None = None,
) -> bytes:
    """A CONNECT packet; level 3 is MQTT 3.1 ("MQIsdp"), 4 is 3.1.1."""
    flags = 0x02 if clean else 0
    payload = [encode_string(client_id)]
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += [encode_string(topic), encode_string(message)]
    if username is not None:
        flags |= 0x80
        payload.append(encode_string(username))
        if password is not None:
            flags |= 0x40
            payload.append(encode_string(password))
    name = b"\x00\x06MQIsdp" if level == 3 else b"\x00\x04MQTT"
    body = b"".join([name, bytes((level, flags)), keepalive.to_bytes(2, "big"), *payload])
    return b"\x10" + encode_length(len(body)) + body


def encode_subscribe(mid: int, filters: list[tuple[str, int]]) -> bytes:
    body = mid.to_bytes(2, "big") + b"".join(encode_string(f) + _BYTE[q] for f, q in filters)
    return b"\x82" + encode_length(len(body)) + body


def encode_unsubscribe(mid: int, filters: list[str]) -> bytes:
    body = mid.to_bytes(2, "big") + b"".join(encode_string(f) for f in filters)
    return b"\xa2" + encode_length(len(body)) + body


class Message:
    """A received PUBLISH, shaped as the paho message mqtt_connection reads."""

    __slots__ = ("topic", "payload", "qos", "retain", "mid", "dup")
    properties = None

    def __init__(
        self, topic: str, payload: bytes, qos: int, retain: int, mid: int, dup: bool = False
    ) -> None:
        self.topic, self.payload, self.qos, self.retain, self.mid, self.dup = (
            topic,
            payload,
            qos,
            retain,
            mid,
            dup,
        )


class PublishInfo:
    """What `publish_nowait` returns: the packet id (0 for QoS 0)."""

    __slots__ = ("mid",)

    def __init__(self, mid: int) -> None:
        self.mid = mid


def payload_bytes(payload: Any) -> bytes:
    """A payload as bytes (str as UTF-8, numbers as text, None as empty)."""
    if payload is None:
        return b""
    if isinstance(payload, str):
        return payload.encode()
    if isinstance(payload, bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, int | float):
        return str(payload).encode()
    raise ValueError(f"payload must be bytes, not {type(payload).__name__}")


_BYTE_DUP = [bytes((i | 0x08,)) for i in range(256)]


def with_dup(packet: bytes) -> bytes:
    """A PUBLISH packet with its DUP flag set."""
    return _BYTE_DUP[packet[0]] + packet[1:]
