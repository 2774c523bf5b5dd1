"""A lean asyncio MQTT 3.1 / 3.1.1 client on `asyncio.Protocol`, without paho (used by mqtt_connection.py).

`LeanClient` offers what mqtt_connection expects of mqtt_client.FastClient: `from_options`, `async with`
to connect (raises MqttError with the CONNACK reason) and say goodbye, `lost`, `publish_nowait`, `ack`,
`watch_acks`, `out_queue`, `reading`, `subscribe`, `unsubscribe`, `timeout`, `connack_properties`, and the
hooks on_message(client, message), on_ack(mid), on_drained().

Design, for thousands of messages a second: each `data_received` parses every complete packet it
holds (a partial one waits in a bytearray until its length has arrived; once the consumer pauses
reading, the rest waits until it resumes); packets written in one loop turn go out in one
`transport.write`; PUBLISH topics are encoded once (mqtt_packets.py);
QoS 1/2 messages received are acknowledged by the caller (`ack`) once the flow has them, and
inbound QoS 2 is delivered once per packet id until its PUBREL. `reading(False)` pauses the
transport; the transport's write-buffer limits drive `out_queue` and `on_drained`. Keepalive sends
PINGREQ every `keepalive` seconds; a period without anything received drops the connection.
Unacknowledged QoS 1/2 publishes can be resent with DUP set after a reconnect (`resend`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiomqtt.exceptions import MqttError as AiomqttError

from sofiaflow.nodes.mqtt import mqtt_packets as pk
from sofiaflow.nodes.mqtt.mqtt_options import ConnectOptions, Outgoing
from sofiaflow.nodes.mqtt.mqtt_packets import Message, PublishInfo
from sofiaflow.runtime.api import ServiceUnavailable

WRITE_HIGH = 512 * 1024
WRITE_LOW = 128 * 1024
BLOCKED = 1_000_000  # out_queue() while the transport's write buffer is over WRITE_HIGH


class MqttError(ServiceUnavailable, AiomqttError):
    """A connection, protocol or broker refusal error (an aiomqtt.MqttError, as mqtt_connection expects)."""


_QOS0 = PublishInfo(0)


class LeanClient(asyncio.Protocol):
    """See the module docstring."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: str,
        on_message: Callable[[Any, Message], None],
        on_ack: Callable[[int], None],
        on_drained: Callable[[], None],
        level: int = 4,
        clean: bool = True,
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
        will: tuple[str, bytes, int, bool] | None = None,
        ssl: Any = None,
        timeout: float = 10.0,
    ) -> None:
        self.host, self.port, self.ssl, self.timeout = host, port, ssl, timeout
        self.keepalive = keepalive
        self._connect_packet = pk.encode_connect(
            client_id,
            level=level,
            clean=clean,
            keepalive=keepalive,
            username=username,
            password=password,
            will=will,
        )
        self._on_message, self._on_ack, self._on_drained = on_message, on_ack, on_drained
        self.connack_properties: Any = None
        self.session_present = False
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._lost: asyncio.Future = self._loop.create_future()
        self._connack: asyncio.Future = self._loop.create_future()
        self._buf = bytearray()
        self._held: tuple[bytes, int] | None = None
        self._need = 0
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._write_paused = False
        self._reading = True
        self._closing = False
        self._last_mid = 0
        self._outgoing: dict[int, bytes | None] = {}  # mid -> PUBLISH sent (None: PUBREL sent), awaiting ack
        self._waiters: dict[int, asyncio.Future] = {}  # mid -> SUBACK / UNSUBACK
        self._received_qos2: set[int] = set()
        self._silent = False
        self._ping_timer: asyncio.TimerHandle | None = None
        self.pings = 0

    @classmethod
    def from_options(cls, o: ConnectOptions, **hooks: Any) -> LeanClient:
        will = None
        if o.will is not None:
            will = (o.will.topic, o.will.payload, o.will.qos, o.will.retain)
        return cls(
            host=o.host,
            port=o.port,
            client_id=o.client_id,
            level=o.protocol,
            clean=o.clean_session,
            keepalive=o.keepalive,
            username=o.username,
            password=o.password,
            will=will,
            ssl=o.tls if o.use_tls else None,
            **hooks,
        )

    # ----- connection ------------------------------------------------------------------------------------------
    async def __aenter__(self) -> LeanClient:
        try:
            async with asyncio.timeout(self.timeout):
                await self._loop.create_connection(lambda: self, self.host, self.port, ssl=self.ssl)
                self._write(self._connect_packet)
                await asyncio.shield(self._connack)
        except TimeoutError:
            self._abort()
            raise MqttError(f"no answer from {self.host}:{self.port} within {self.timeout:g} s") from None
        except OSError as exc:
            self._abort()
            refused = isinstance(exc, ConnectionRefusedError)
            raise MqttError("Connection refused" if refused else str(exc) or type(exc).__name__) from exc
        except BaseException:
            self._abort()
            raise
        if self.keepalive:
            self._ping_timer = self._loop.call_later(self.keepalive, self._keepalive)
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Send DISCONNECT (if still connected) and close."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            self._closing = True
            self._out.append(pk.DISCONNECT_PACKET)
            self._flush()
            transport.close()
            try:
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(self._lost)
            except (TimeoutError, MqttError):
                transport.abort()
        self._settle_lost(None)

    @property
    def lost(self) -> asyncio.Future:
        """Resolves when the connection ends (with the error, if it broke)."""
        return self._lost

    @property
    def _client(self) -> LeanClient:  # the tests reach the socket as aiomqtt's `_client.socket()`
        return self

    def socket(self) -> Any:
        return self._transport.get_extra_info("socket") if self._transport is not None else None

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, error: BaseException) -> None:
        self._settle_lost(error)
        self._abort()

    def _settle_lost(self, error: BaseException | None) -> None:
        if not self._lost.done():
            if error is None:
                self._lost.set_result(None)
            else:
                self._lost.set_exception(error)
                self._lost.exception()  # retrieved: the caller reads it if it cares

    # ----- asyncio.Protocol ------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(WRITE_HIGH, WRITE_LOW)  # type: ignore[attr-defined]
        if not self._reading:
            transport.pause_reading()  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        error = MqttError(f"Connection lost: {exc}" if exc else "Connection lost")
        for fut in (self._connack, *self._waiters.values()):
            if not fut.done():
                fut.set_exception(error)
                fut.exception()
        self._waiters.clear()
        self._settle_lost(None if self._closing else error)
        self._transport = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._on_drained()

    def data_received(self, data: bytes) -> None:
        self._silent = False
        if self._held is not None:  # complete packets kept back while paused come first
            (held, at), self._held = self._held, None
            data = held[at:] + data
        if self._buf:
            self._buf += data
            if len(self._buf) < self._need:
                return
            data = bytes(self._buf)
            self._buf.clear()
        self._parse(data, 0)

    def _parse(self, data: bytes, pos: int) -> None:
        end = len(data)
        on_message, received_qos2 = self._on_message, self._received_qos2
        try:
            while end - pos >= 2:
                first = data[pos]
                length = data[pos + 1]
                start = pos + 2
                if length & 0x80:
                    decoded = pk.decode_length(data, pos + 1)
                    if decoded is None:
                        break
                    length, start = decoded
                stop = start + length
                if stop > end:
                    break
                if first & 0xF0 == 0x30:  # PUBLISH, inline: the hot path
                    size = (data[start] << 8) | data[start + 1]
                    body = start + 2 + size
                    qos = (first >> 1) & 3
                    mid = 0
                    if qos:
                        mid = (data[body] << 8) | data[body + 1]
                        if qos == 2:
                            if mid in received_qos2:  # a resend of one delivered already: acknowledge only
                                self._write(pk.encode_ack(pk.PUBREC, mid))
                                pos = stop
                                continue
                            received_qos2.add(mid)
                        body += 2
                    message = Message(
                        data[start + 2 : start + 2 + size].decode(),
                        data[body:stop],
                        qos,
                        first & 1,
                        mid,
                        bool(first & 8),
                    )
                    try:
                        on_message(self, message)
                    except Exception as exc:  # noqa: BLE001 - a failing consumer must not end the connection
                        self._loop.call_exception_handler(
                            {"message": "MQTT message handler failed", "exception": exc, "protocol": self}
                        )
                else:
                    self._control(first, data[start:stop])
                pos = stop
                if not self._reading:  # paused by the consumer: the rest waits (uncopied) until resumed
                    if pos < end:
                        self._held = (data, pos)
                    return
        except (ValueError, IndexError) as exc:  # malformed (UnicodeDecodeError is a ValueError)
            self._fail(MqttError(f"protocol error from the broker: {exc}"))
            return
        if pos < end:
            self._buf += data[pos:]
            self._need = 0
            if end - pos >= 2:
                decoded = pk.decode_length(data, pos + 1)
                self._need = decoded[0] + decoded[1] - pos if decoded else 0

    def _control(self, first: int, body: bytes) -> None:
        kind = first >> 4
        if kind == pk.CONNACK:
            if not self._connack.done():
                if body[1]:
                    code = body[1]
                    self._connack.set_exception(
                        MqttError(pk.CONNACK_ERRORS.get(code, f"Connection refused: code {code}"))
                    )
                    self._connack.exception()
                    self._closing = True
                    self._abort()
                else:
                    self.session_present = bool(body[0] & 1)
                    self._connack.set_result(None)
            return
        if kind == pk.PINGRESP:
            return
        mid = (body[0] << 8) | body[1]
        if kind == pk.PUBACK or kind == pk.PUBCOMP:
            if self._outgoing.pop(mid, 0) != 0:
                self._on_ack(mid)
        elif kind == pk.PUBREC:
            if mid in self._outgoing:
                self._outgoing[mid] = None
            self._write(pk.encode_ack(pk.PUBREL, mid))
        elif kind == pk.PUBREL:
            self._received_qos2.discard(mid)
            self._write(pk.encode_ack(pk.PUBCOMP, mid))
        elif kind == pk.SUBACK or kind == pk.UNSUBACK:
            fut = self._waiters.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(tuple(body[2:]))
        else:
            raise ValueError(f"unexpected packet type {kind}")

    # ----- writing ---------------------------------------------------------------------------------------------
    def _write(self, packet: bytes) -> None:
        self._out.append(packet)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        if not self._write_paused:
            self._on_drained()

    def out_queue(self) -> int:
        """Packets not yet handed to the transport (BLOCKED while its write buffer is full)."""
        return BLOCKED if self._write_paused else len(self._out)

    def _next_mid(self) -> int:
        mid = self._last_mid
        for _ in range(65535):
            mid = mid % 65535 + 1
            if mid not in self._outgoing and mid not in self._waiters:
                self._last_mid = mid
                return mid
        raise MqttError("no free packet id: 65535 messages await their acknowledgement")

    # ----- the client interface --------------------------------------------------------------------------------
    def publish_nowait(self, item: Outgoing) -> PublishInfo:
        """Queue a PUBLISH (written at the end of this loop turn); a QoS 1/2 ack comes through `on_ack`."""
        payload = item.payload
        if not isinstance(payload, bytes):
            payload = pk.payload_bytes(payload)
        qos = item.qos
        if not qos:
            self._write(pk.encode_publish(item.topic, payload, 0, item.retain))
            return _QOS0
        mid = self._next_mid()
        packet = pk.encode_publish(item.topic, payload, qos, item.retain, False, mid)
        self._outgoing[mid] = packet
        self._write(packet)
        return PublishInfo(mid)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received QoS 1 (PUBACK) or QoS 2 (PUBREC) message."""
        if self._transport is not None:
            self._write(pk.encode_ack(pk.PUBACK if qos == 1 else pk.PUBREC, mid))

    def watch_acks(self, on: bool) -> None:
        """Nothing to do: acknowledgements cost nothing here when nobody waits."""

    def reading(self, on: bool) -> None:
        """Read the socket, or stop (TCP flow control then holds the broker back)."""
        if on == self._reading:
            return
        self._reading = on
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if on:
                transport.resume_reading()
                if self._held is not None:  # packets kept back when reading stopped
                    self._loop.call_soon(self._parse_held)
            else:
                transport.pause_reading()

    def _parse_held(self) -> None:
        if self._held is not None and self._reading:
            (data, pos), self._held = self._held, None
            self._parse(data, pos)

    def unacknowledged(self) -> dict[int, bytes | None]:
        """Our QoS 1/2 publishes not yet acknowledged: mid -> PUBLISH (None once PUBREC came)."""
        return dict(self._outgoing)

    def resend(self, pending: dict[int, bytes | None]) -> None:
        """After a reconnect to a kept session: send `pending` again (PUBLISH with DUP set, or PUBREL)."""
        for mid, packet in pending.items():
            self._outgoing[mid] = packet
            self._write(pk.encode_ack(pk.PUBREL, mid) if packet is None else pk.with_dup(packet))

    async def subscribe(self, topic_filter: str, qos: int = 0, **_: Any) -> tuple[int, ...]:
        """Subscribe and wait for the SUBACK; its granted QoS list (MqttError if the broker refused)."""
        granted = await self._request(pk.encode_subscribe, [(topic_filter, qos)])
        if any(code >= 0x80 for code in granted):
            raise MqttError(f"the broker refused the subscription to {topic_filter!r}")
        return granted

    async def unsubscribe(self, topic_filter: str, **_: Any) -> None:
        await self._request(pk.encode_unsubscribe, [topic_filter])

    async def _request(self, encode: Callable[[int, list], bytes], items: list) -> tuple[int, ...]:
        if self._transport is None or self._lost.done():
            raise MqttError("not connected")
        mid = self._next_mid()
        fut = self._waiters[mid] = self._loop.create_future()
        self._write(encode(mid, items))
        try:
            async with asyncio.timeout(self.timeout):
                return await fut
        except TimeoutError:
            raise MqttError(f"no answer from the broker within {self.timeout:g} s") from None
        finally:
            self._waiters.pop(mid, None)

    def _keepalive(self) -> None:
        if self._transport is None:
            return
        if self._silent and self._reading:
            self._fail(MqttError(f"no PINGRESP within {self.keepalive} s: the connection is dead"))
            return
        self._silent = True
        self.pings += 1
        self._write(pk.PINGREQ_PACKET)
        self._ping_timer = self._loop.call_later(self.keepalive, self._keepalive)
