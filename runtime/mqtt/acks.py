"""Acknowledge a QoS 1/2 PUBLISH only once the flows are done with it.

A `Receipt` stands for one received QoS 1/2 message. Whoever takes the message on (an `mqtt in` node, for
the flow it starts) `hold()`s the receipt and calls the returned release when done; the receipt's own first
hold is let go by the transport once the message has been handed to every subscriber. When the last hold is
released the message is processed and its acknowledgement may go out.

`OrderedAcks` sends those acknowledgements in the order the PUBLISHes arrived (MQTT 3.1.1 section 4.6:
PUBACK / PUBREC in the order received), whatever order the flows finish them in.

`AckingHandler` is amqtt's BrokerProtocolHandler with that behaviour for the embedded broker: PUBACK (QoS 1)
and PUBREC (QoS 2) wait for the receipt; QoS 2 messages reach the flows on PUBLISH (a resent PUBLISH with the
same packet id is not delivered twice) and PUBCOMP answers the PUBREL. While MAX_UNACKED messages of one
connection await their acknowledgement, its socket is not read: a slow flow holds the device back instead of
buffering without bound.

The broker may set `deliver` (its direct path for QoS 0/1 PUBLISHes, see broker.py) and `held` (a future: the
socket is not read until it is done, HOLD_MAX seconds at most) on a handler.

`current_receipt()` is the receipt of the message being handed to subscribers right now (set by the broker or
client for the duration of that synchronous call), so subscribers need no extra parameter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from amqtt.errors import MQTTError, NoDataError
from amqtt.events import MQTTEvents
from amqtt.mqtt import packet_class
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.packet import (
    CONNACK,
    CONNECT,
    DISCONNECT,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBCOMP,
    PUBLISH,
    PUBREC,
    PUBREL,
    RESERVED_0,
    RESERVED_15,
    SUBACK,
    SUBSCRIBE,
    UNSUBACK,
    UNSUBSCRIBE,
    MQTTFixedHeader,
)
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.pubcomp import PubcompPacket
from amqtt.mqtt.publish import PublishPacket, PublishPayload, PublishVariableHeader
from amqtt.mqtt.pubrec import PubrecPacket
from amqtt.session import INCOMING, IncomingApplicationMessage

log = logging.getLogger("sofiaflow.broker")

MAX_UNACKED = 1000  # messages of one connection awaiting their acknowledgement before its socket is not read
HOLD_MAX = 5.0  # seconds a held publisher's socket is left unread at most (then it is read again)


class Receipt:
    """One received QoS 1/2 message awaiting processing; `on_done(receipt)` once every hold is released."""

    __slots__ = ("holds", "kind", "on_done", "packet_id", "processed")

    def __init__(self, on_done: Callable[[Receipt], None], packet_id: int = 0, kind: int = 1) -> None:
        self.holds = 1
        self.on_done = on_done
        self.packet_id = packet_id
        self.kind = kind
        self.processed = False

    def hold(self) -> Callable[[], None]:
        """Take the message on; call the returned function (once) when done with it."""
        self.holds += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.release()

        return release

    def release(self) -> None:
        self.holds -= 1
        if self.holds == 0 and not self.processed:
            self.processed = True
            self.on_done(self)


_current: Receipt | None = None


def current_receipt() -> Receipt | None:
    """The receipt of the message being handed to subscribers now (None: nothing to acknowledge)."""
    return _current


def handing_over(receipt: Receipt | None) -> Receipt | None:
    """Make `receipt` current for a synchronous hand-over; returns the previous one (to restore)."""
    global _current
    previous, _current = _current, receipt
    return previous


class OrderedAcks:
    """Receipts in arrival order; `send(receipt)` for each once it and all before it are processed."""

    __slots__ = ("_pending", "_send")

    def __init__(self, send: Callable[[Receipt], None]) -> None:
        self._pending: deque[Receipt] = deque()
        self._send = send

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, packet_id: int, kind: int = 1) -> Receipt:
        receipt = Receipt(self._processed, packet_id, kind)
        self._pending.append(receipt)
        return receipt

    def adopt(self, receipt: Receipt) -> None:
        """Take over a receipt from an earlier connection (a QoS 2 PUBLISH sent again after a reconnect)."""
        receipt.on_done = self._processed
        self._pending.append(receipt)
        if receipt.processed:
            self._processed(receipt)

    def _processed(self, _receipt: Receipt) -> None:
        pending, send = self._pending, self._send
        while pending and pending[0].processed:
            send(pending.popleft())

    def clear(self) -> None:
        self._pending.clear()


class _TrackedIncoming(IncomingApplicationMessage):
    __slots__ = ("receipt",)


class _GatedReader:
    """The connection's reader, waiting before each read while too many acknowledgements are due."""

    def __init__(self, inner: Any, handler: AckingHandler) -> None:
        self._inner, self._handler = inner, handler

    async def wait_turn(self) -> None:
        """Wait while too many acknowledgements are due, or while the broker holds this publisher back."""
        handler = self._handler
        gate = handler._gate
        if gate is not None:
            await gate
        held = handler.held
        if held is not None:  # the broker holds this publisher back (bounded: HOLD_MAX)
            handler.held = None
            if not held.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(held), HOLD_MAX)

    async def read(self, n: int = -1) -> bytes:
        await self.wait_turn()
        return await self._inner.read(n)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class AckingHandler(BrokerProtocolHandler):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acks = OrderedAcks(self._ready)
        self._outbox: deque[Any] = deque()
        self._sender: asyncio.Task | None = None
        self._gate: asyncio.Future | None = None
        self.deliver: Callable[[AckingHandler, Any], Awaitable[None]] | None = None
        """Set by the broker: hands an accepted QoS 0/1 PUBLISH over at once (no queue, no session loop)."""
        self.held: asyncio.Future | None = None
        """Set by the broker to hold this publisher back: its socket is not read until the future is done."""

    def attach(self, session: Any, reader: Any, writer: Any) -> None:
        super().attach(session, _GatedReader(reader, self), writer)

    async def handle_publish(self, publish_packet: Any) -> None:
        qos = publish_packet.qos
        deliver = self.deliver
        if not qos:
            if (
                deliver is None
                or publish_packet.topic_name is None
                or publish_packet.data is None
                or self.session is None
                or publish_packet.dup_flag
            ):
                await super().handle_publish(publish_packet)
                return
            message = IncomingApplicationMessage(
                None, publish_packet.topic_name, 0, publish_packet.data, publish_packet.retain_flag
            )
            message.publish_packet = publish_packet
            await deliver(self, message)
            return
        if publish_packet.topic_name is None or publish_packet.data is None or self.session is None:
            await super().handle_publish(publish_packet)
            return
        packet_id = publish_packet.variable_header.packet_id
        message = _TrackedIncoming(
            packet_id, publish_packet.topic_name, qos, publish_packet.data, publish_packet.retain_flag
        )
        message.publish_packet = publish_packet
        if qos == QOS_2:
            earlier = self.session.inflight_in.get(packet_id)
            if isinstance(earlier, _TrackedIncoming):  # sent again: acknowledge once processed, deliver once
                self._acks.adopt(earlier.receipt)
                self._check_gate()
                return
            self.session.inflight_in[packet_id] = message
        message.receipt = self._acks.add(packet_id, qos)
        self._check_gate()
        if deliver is not None and qos == QOS_1:
            await deliver(self, message)
            return
        self.session.delivered_message_queue.put_nowait(message)

    async def _handle_qos2_message_flow(self, app_message: Any) -> None:
        if isinstance(app_message, _TrackedIncoming):  # retried on reconnect: PUBREC once processed
            self._acks.adopt(app_message.receipt)
            self._check_gate()
            return
        await super()._handle_qos2_message_flow(app_message)

    async def handle_pubrel(self, pubrel: Any) -> None:
        packet_id = pubrel.packet_id
        session = self.session
        if session is not None and isinstance(session.inflight_in.get(packet_id), _TrackedIncoming):
            del session.inflight_in[packet_id]
            self._queue_packet(PubcompPacket.build(packet_id))
            return
        await super().handle_pubrel(pubrel)

    def _ready(self, receipt: Receipt) -> None:
        packet = (
            PubackPacket.build(receipt.packet_id)
            if receipt.kind == QOS_1
            else PubrecPacket.build(receipt.packet_id)
        )
        self._queue_packet(packet)
        self._check_gate()

    def _queue_packet(self, packet: Any) -> None:
        self._outbox.append(packet)
        if self._sender is None or self._sender.done():
            self._sender = asyncio.ensure_future(self._send_outbox())

    async def _send_outbox(self) -> None:
        outbox = self._outbox
        while outbox:
            if self.writer is None:
                outbox.clear()
                return
            try:
                writer = getattr(self.writer, "_writer", None)  # asyncio's StreamWriter under amqtt's adapter
                if writer is not None and not self.plugins_manager._event_plugin_callbacks.get(
                    MQTTEvents.PACKET_SENT
                ):  # every acknowledgement due now in one write, one drain
                    packets = b"".join(bytes(outbox.popleft().to_bytes()) for _ in range(len(outbox)))
                    async with self._write_lock:
                        writer.write(packets)
                        await writer.drain()
                else:
                    await self._send_packet(outbox.popleft())
            except Exception as exc:  # noqa: BLE001 - a closed connection: the device sends again on reconnect
                log.debug("acknowledgement not sent: %s", exc)
                outbox.clear()
                return

    async def _reader_loop(self) -> None:
        """amqtt's reader loop (0.12.1) when the broker's direct path is on: the keepalive is one idle timer per
        connection instead of a task and a timer per packet, a PUBLISH's body is read at once and handled in the
        loop (in order, no task per message); other packets are handled as amqtt does."""
        session = self.session
        if self.deliver is None or session is None or not self._reader_ready:
            await super()._reader_loop()
            return
        running: deque[asyncio.Task[None]] = deque()
        keepalive: int | None = session.keep_alive
        if keepalive is not None and keepalive <= 0:
            keepalive = None
        ready, fire = self._reader_ready, self.plugins_manager.fire_event
        gated = self.reader
        framing = getattr(
            gated, "_inner", None
        )  # the broker's size-capping reader: reads fixed headers itself
        header_of = getattr(framing, "fixed_header", None) if isinstance(gated, _GatedReader) else None
        body_of = getattr(framing, "body", None) if header_of is not None else None
        loop = asyncio.get_running_loop()
        seen = loop.time()
        watchdog: asyncio.TimerHandle | None = None

        def check_idle() -> None:  # one timer per connection, not one per packet
            nonlocal watchdog
            assert keepalive is not None
            idle = loop.time() - seen
            if idle >= keepalive:
                watchdog = None
                self.handle_read_timeout()
            else:
                watchdog = loop.call_later(keepalive - idle, check_idle)

        if keepalive is not None:
            watchdog = loop.call_later(keepalive, check_idle)
        while True:
            try:
                ready.set()
                while running and running[0].done():
                    running.popleft()
                reader = self.reader
                if reader is None:
                    break
                if header_of is not None and reader is gated:
                    await gated.wait_turn()
                    fixed_header = await header_of()
                else:
                    fixed_header = await MQTTFixedHeader.from_stream(reader)
                seen = loop.time()
                if not fixed_header:
                    break
                kind = fixed_header.packet_type
                if kind in (RESERVED_0, RESERVED_15):
                    log.warning("%s sent a reserved packet type: closing the connection", session.client_id)
                    await self.handle_connection_closed()
                    continue
                if kind == PUBLISH:
                    # after the header from the framing reader (the turn waited for), its body from it too
                    packet: Any = await _read_publish(
                        reader, fixed_header, body_of if reader is gated else None
                    )
                else:
                    packet = await packet_class(fixed_header).from_stream(reader, fixed_header=fixed_header)
                await fire(MQTTEvents.PACKET_RECEIVED, packet=packet, session=self.session)
                if kind == PUBLISH:
                    try:
                        await self.handle_publish(packet)
                    except Exception:
                        log.exception("MQTT PUBLISH from %s not handled", session.client_id)
                elif kind == CONNECT:
                    await self.handle_connect(packet)
                elif kind in _HANDLERS:
                    running.append(asyncio.create_task(getattr(self, _HANDLERS[kind])(packet)))
                else:
                    log.warning("%s sent an unhandled packet type %s", session.client_id, kind)
            except MQTTError:
                log.debug("MQTT packet discarded")
            except asyncio.CancelledError:
                break
            except NoDataError:
                log.debug("%s: no data available", session.client_id)
            except Exception as exc:  # noqa: BLE001 - as amqtt: a broken stream ends the connection
                log.warning("%s: unhandled exception in the reader loop: %r", type(self).__name__, exc)
                break
        if watchdog is not None:
            watchdog.cancel()
        while running:
            running.popleft().cancel()
        await self.handle_connection_closed()
        self._reader_stopped.set()
        await self.stop()

    def _check_gate(self) -> None:
        if len(self._acks) >= MAX_UNACKED:
            if self._gate is None:
                self._gate = asyncio.get_running_loop().create_future()
        elif self._gate is not None:
            gate, self._gate = self._gate, None
            if not gate.done():
                gate.set_result(None)

    async def stop(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None and not gate.done():
            gate.set_result(None)
        await super().stop()


_HANDLERS = {
    CONNACK: "handle_connack",
    SUBSCRIBE: "handle_subscribe",
    UNSUBSCRIBE: "handle_unsubscribe",
    SUBACK: "handle_suback",
    UNSUBACK: "handle_unsuback",
    PUBACK: "handle_puback",
    PUBREC: "handle_pubrec",
    PUBREL: "handle_pubrel",
    PUBCOMP: "handle_pubcomp",
    PINGREQ: "handle_pingreq",
    PINGRESP: "handle_pingresp",
    DISCONNECT: "handle_disconnect",
}


async def _read_publish(
    reader: Any, fixed_header: MQTTFixedHeader, read_body: Callable[[int], Awaitable[bytes]] | None = None
) -> PublishPacket:
    """A PUBLISH packet's body in one read (with `read_body` when given), parsed as amqtt's
    PublishPacket.from_stream does."""
    size = fixed_header.remaining_length
    body = (await (read_body or reader.read)(size)) if size else b""
    if len(body) < 2:
        raise MQTTError("PUBLISH without a topic name")
    end = 2 + int.from_bytes(body[:2], "big")
    if len(body) < end:
        raise MQTTError("PUBLISH shorter than its topic name")
    topic = bytes(body[2:end]).decode("utf-8")
    packet_id = None
    if (fixed_header.flags >> 1) & 0x03:
        if len(body) < end + 2:
            raise MQTTError("PUBLISH without its packet id")
        packet_id = int.from_bytes(body[end : end + 2], "big")
        end += 2
    return PublishPacket(
        fixed_header, PublishVariableHeader(topic, packet_id), PublishPayload(bytes(body[end:]))
    )


def receipt_of(message: Any) -> Receipt | None:
    """The receipt amqtt's delivery of `message` carries (None for QoS 0, wills and the broker's own)."""
    return getattr(message, "receipt", None) if getattr(message, "direction", None) == INCOMING else None
