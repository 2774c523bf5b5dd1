"""The embedded MQTT broker: amqtt 0.12 in-process, devices checked against the DeviceRegistry.

Devices connect with username = device name and password = a token; anything else (anonymous, unknown or
disabled device, wrong or revoked token, a will outside its topics) gets CONNACK 5 "not authorized".
`DeviceTopicPlugin` checks topics: a PUBLISH outside the device's filters is dropped (MQTT 3.1.1 has no
negative ack; QoS 1 is still acked), a SUBSCRIBE outside them gets SUBACK 0x80. Revoking a token drops the
sessions using it at once.

In-process path for flows (no TCP loopback, no device auth):
- `publish()` puts the message on amqtt's broadcast queue (`Broker.internal_message_broadcast`, the same queue
  device PUBLISHes go to) only when some MQTT session has a subscription, stores it with `Broker.retain_message`
  when `retain`, and calls in-process subscribers directly before returning.
- `subscribe()` callbacks also get every PUBLISH a device makes that passed topic checking, from the plugin
  event `on_broker_message_broadcast` (amqtt fires it once per accepted PUBLISH), and will messages, from
  `_Broker._broadcast_message`. Each message reaches each callback once. Callbacks get the publisher's QoS and
  retain=False, except retained messages replayed on subscribe (retain=True), as an MQTT 3.1.1 client would.

Direct path (while no plugin but ours listens to messages): a device's QoS 0/1 PUBLISH is handled as soon as it
is read (`_Broker._deliver_now`), not through amqtt's session queue, plugin event tasks and broadcast loop; the
same checks in the same order. `fan_out` finds the subscriptions by a topic index (topics.TopicIndex, with a
per-topic cache) instead of testing every filter, encodes a QoS 0 PUBLISH once per message and writes each
subscriber's packets once per loop turn; QoS 1/2 deliveries still go through amqtt's handler. Backpressure
instead of loss: while an in-process subscriber cannot keep up (`hold_publishers`, from `mqtt in` through
EmbeddedLink.set_reading) or an MQTT subscriber has more than OUT_HIGH bytes unsent, the devices whose messages
reach them are not read (at most acks.HOLD_MAX seconds at a time) and flows' `publish()` waits (as long at
most). A subscriber still congested after HOLD_MAX is no longer waited for; past OUT_MAX unsent bytes its QoS 0
messages are dropped (counted in `dropped`, logged), so memory stays bounded.

Tenants: devices of different owners hold no overlapping topics (runtime/security/devices.py). Every message has an
origin tenant (runtime/mqtt/origin.py): its device's owner, ANONYMOUS for an anonymous client, the `origin`
given to `publish()` (a flow's tenant; None: administrators' flows, the platform). In-process subscribers opened
with a `tenant` (a developer's flow: its tab's owner) get only messages of that origin, retained ones included;
without a tenant (administrators' flows, the SSAP gateway) they get all (rule: runtime/security/tenant.py).
During a callback, `origin` is the message's origin, `sender` and `sender_owner` name the publishing device and
its owner, and `sender_client` the MQTT client id that published (anonymous clients included; None for flows and
wills).

Anonymous clients (admitted only while an SSAP-over-MQTT gateway sets `anonymous_topics`) are fenced to what
the gateway gives their client id: separate publish and subscribe filters. They must use a clean session and
a client id no session holds: an anonymous CONNECT never takes over or kicks another client (CONNACK 2).
Neither does a device: a CONNECT whose client id a connected session of another device (or an anonymous
client) holds is refused with CONNACK 2; a device reconnecting with its own client id takes over its session.

Sockets and sizes are bounded: a connection must send CONNECT within `connect_timeout` seconds, a connected
client must send something within 1.5 x its keepalive (MQTT 3.1.1 3.1.2.10), and every connection that fails or
ends before or at CONNECT is closed at once. A packet larger than `max_packet_size` bytes (fixed header included)
closes the connection before its body is read (3.1.1 has no reason code); it is logged and audited
(`mqtt.oversize`). `publish()` refuses a message whose PUBLISH packet would be larger.

MQTT 3.1.1 only: a CONNECT of another protocol level (an MQTT 5 client) is answered with a CONNACK the client can
read, in its own version's shape (MQTT 5: reason code 0x84 "Unsupported Protocol Version" with a reason string;
3.1: code 1 "unacceptable protocol version"), then the connection is closed; the log gets one line, no traceback.

`_Broker` also fixes amqtt 0.12.1, which touches the session of a CONNECT's client id (deletes it, takes it
over, overwrites its credentials and will) before authenticating: here a refused CONNECT changes nothing, and a
client id held by another device's session starts a fresh session instead of inheriting its subscriptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from amqtt.adapters import ReaderAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import AMQTTError, BrokerError, MQTTError, NoDataError
from amqtt.mqtt.connack import IDENTIFIER_REJECTED, NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.constants import QOS_0, QOS_1, QOS_2
from amqtt.mqtt.packet import MQTTFixedHeader
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins import manager as amqtt_manager
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.plugins.manager import BrokerEvents
from amqtt.session import Session
from amqtt.utils import gen_client_id

from sofiaflow.runtime.errors import AuthError, ServiceUnavailable, ValidationError
from sofiaflow.runtime.mqtt import topics as mt
from sofiaflow.runtime.mqtt.acks import HOLD_MAX, AckingHandler, handing_over, receipt_of
from sofiaflow.runtime.mqtt.origin import ANONYMOUS, Origin, RetainedOrigins, hears
from sofiaflow.runtime.security.devices import Device, DeviceRegistry, may_publish, may_subscribe, split_token

log = logging.getLogger("sofiaflow.broker")

Callback = Callable[[str, bytes, int, bool], None]
DEVICE, TOKEN, EPOCH, AUTHORIZED = "sofiaflow.device", "sofiaflow.token_id", "sofiaflow.epoch", "sofiaflow.ok"
SESSION_EXPIRY = 24 * 3600  # seconds a disconnected persistent session is kept
MAX_BACKLOG = 1000  # messages on amqtt's broadcast queue before publish() waits (at most 1 s) for it to drain
READS = (
    "sofiaflow.reads"  # an anonymous client's subscribe filters (a Device), when they differ from DEVICE's
)
DEFAULT_MAX_PACKET_SIZE = 1024 * 1024  # bytes; Mosquitto allows 256 MB, far more than devices send
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds from TCP accept to CONNECT
KEEPALIVE_GRACE = 1.5  # MQTT 3.1.1 3.1.2.10: a client silent for 1.5 x its keepalive is disconnected
OUT_HIGH = 1024 * 1024  # bytes unsent to a subscriber above which publishers are held back until it reads
OUT_MAX = 32 * 1024 * 1024  # bytes unsent to a subscriber above which QoS 0 messages to it are dropped
MATCH_CACHE = 10_000  # topics whose matching subscription filters are remembered
TOPIC_CHECKS = "sofiaflow.topic_checks"  # a session's attribute: its topic checks remembered (_may_publish)
TOPIC_CHECK_CACHE = 256  # topics a session's checks are remembered for


class _Owned:
    owner: EmbeddedBroker | None = None


class DeviceAuthPlugin(_Owned, BaseAuthPlugin):
    """CONNECT: username = device name, password = token, via DeviceRegistry.authenticate."""

    async def authenticate(self, *, session: Session) -> bool | None:
        owner = self.owner
        if (
            owner is not None
            and not session.username
            and session.password is None
            and owner.anonymous_topics is not None
        ):
            return owner.admit_anonymous(session)
        if owner is None or not session.username or session.password is None:
            return False
        session.attributes[EPOCH] = owner.epoch
        try:
            device = owner.devices.authenticate(session.username, session.password)
            session.attributes[TOKEN] = split_token(session.password)[0]
        except AuthError as exc:
            log.info("MQTT CONNECT refused for %r from %s: %s", session.username, session.remote_address, exc)
            return False
        except Exception:
            log.exception("MQTT CONNECT of %r: the device registry failed", session.username)
            return False
        if session.will_flag and not may_publish(device, session.will_topic or ""):
            # amqtt publishes wills without topic checks: refuse them at CONNECT, as Mosquitto does
            log.info(
                "MQTT CONNECT refused for %r: will topic %r is outside its topics",
                device.name,
                session.will_topic,
            )
            return False
        session.attributes[DEVICE] = device
        return True


class DeviceTopicPlugin(_Owned, BaseTopicPlugin):
    """PUBLISH / SUBSCRIBE (and each delivery) within the device's topic filters."""

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        return self.check(session, topic, action)

    @staticmethod
    def check(session: Session | None, topic: str | None, action: Action | None) -> bool:
        device = session.attributes.get(DEVICE) if session is not None else None
        if device is None or not topic:
            return False
        attributes = session.attributes  # type: ignore[union-attr]
        if action == Action.PUBLISH:
            return _may_publish(attributes, device, topic, True)
        reads = attributes.get(READS, device)
        if action == Action.SUBSCRIBE:
            return may_subscribe(reads, topic)
        return _may_publish(attributes, reads, topic, False)  # RECEIVE: the topic is still within its filters


def _may_publish(attributes: dict[str, Any], device: Device, topic: str, publishing: bool) -> bool:
    """`may_publish(device, topic)`, remembered per session and topic (checked for each message both ways) for as
    long as the device record, its filters and its enabled flag stay the same."""
    cache = attributes.get(TOPIC_CHECKS)
    if cache is None:
        cache = attributes[TOPIC_CHECKS] = {}
    key = (publishing, topic)
    seen = cache.get(key)
    if seen is not None and seen[0] is device and seen[1] is device.filters and seen[2] == device.enabled:
        return seen[3]
    allowed = may_publish(device, topic)
    if len(cache) >= TOPIC_CHECK_CACHE:
        cache.clear()
    cache[key] = (device, device.filters, device.enabled, allowed)
    return allowed


class InProcessPlugin(_Owned, BasePlugin):
    """Feeds in-process subscribers with the PUBLISHes amqtt accepted from clients."""

    async def on_broker_message_broadcast(self, *, client_id: str, message: Any) -> None:
        if self.owner is not None:
            device = self.owner.device_record(client_id)
            self.owner.sender_client = client_id
            try:
                self.owner.dispatch(
                    message.topic,
                    bytes(message.data),
                    message.qos or 0,
                    False,
                    sender=device.name if device else None,
                    sender_owner=device.owner if device else None,
                    receipt=receipt_of(message),
                    origin=device.owner if device else ANONYMOUS,
                )
            finally:
                self.owner.sender_client = None


class _Broker(Broker):
    """amqtt's Broker with authentication before any session change (see the module docstring), and a direct
    path for QoS 0/1 PUBLISHes (`_deliver_now`, `fan_out`: see the module docstring)."""

    owner: EmbeddedBroker

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._index: mt.TopicIndex | None = None  # over self._subscriptions' filters; None: to rebuild
        self._match_cache: dict[str, list[str]] = {}
        self._outgoing: dict[BrokerProtocolHandler, bytearray] = {}  # QoS 0 packets to write (`_flush`)
        callbacks = self.plugins_manager._event_plugin_callbacks
        self.direct = not callbacks.get(BrokerEvents.MESSAGE_RECEIVED) and all(
            isinstance(getattr(method, "__self__", None), InProcessPlugin)
            for method in callbacks.get(BrokerEvents.MESSAGE_BROADCAST, ())
        )  # no plugin but ours listens to messages: they may skip amqtt's queues and events

    # ----- subscription index --------------------------------------------------------------------------------
    def _subscriptions_changed(self) -> None:
        self._index = None
        self._match_cache.clear()

    async def add_subscription(self, subscription: tuple[str, int], session: Session) -> int:
        try:
            return await super().add_subscription(subscription, session)
        finally:
            self._subscriptions_changed()

    async def _del_all_subscriptions(self, session: Session) -> None:
        try:
            await super()._del_all_subscriptions(session)
        finally:
            self._subscriptions_changed()

    def _del_subscription(self, a_filter: str, session: Session) -> int:
        try:
            return super()._del_subscription(a_filter, session)
        finally:
            self._subscriptions_changed()

    def matching_filters(self, topic: str) -> list[str]:
        """The subscription filters matching `topic` (amqtt tests every filter for every message)."""
        cache = self._match_cache
        found = cache.get(topic)
        if found is None:
            index = self._index
            if index is None:
                index = self._index = mt.TopicIndex(self._subscriptions)
            found = index.match(topic)
            if len(cache) >= MATCH_CACHE:
                cache.clear()
            cache[topic] = found
        return found

    # ----- direct path ---------------------------------------------------------------------------------------
    async def _deliver_now(self, handler: AckingHandler, message: Any) -> None:
        """A client's QoS 0/1 PUBLISH, as amqtt's session loop and broadcast loop would handle it, at once: topic
        checked, handed to in-process subscribers and to MQTT subscribers, retained; then its receipt let go. A
        publisher whose message reached a congested subscriber is held back (AckingHandler.held)."""
        session = handler.session
        topic = message.topic
        if session is None or not topic or "#" in topic or "+" in topic or topic.startswith("$"):
            if session is not None:  # amqtt's own checks refuse it and close the connection
                session.delivered_message_queue.put_nowait(message)
            return
        owner = self.owner
        receipt = receipt_of(message)
        try:
            if not owner.flows_ready.is_set():  # at start: no device message before the flows subscribed
                await owner.flows_ready.wait()
            if not DeviceTopicPlugin.check(session, topic, Action.PUBLISH):
                log.info("%s not allowed to publish to TOPIC %s.", session.client_id, topic)
                return
            data = bytes(message.data)
            device = _device_in(session.attributes)
            owner.sender_client = session.client_id
            try:
                heard = owner.dispatch(
                    topic,
                    data,
                    message.qos or 0,
                    False,
                    sender=device.name if device else None,
                    sender_owner=device.owner if device else None,
                    receipt=receipt,
                    origin=device.owner if device else ANONYMOUS,
                )
            finally:
                owner.sender_client = None
            congested = self.fan_out(session, topic, data)
            if message.publish_packet is not None and message.publish_packet.retain_flag:
                await self.retain_message(session, topic, message.data, message.qos)
        finally:
            if receipt is not None:
                receipt.release()
        if congested or (heard and owner.holders):
            handler.held = owner.clear_future()

    def fan_out(self, source: Session | None, topic: str, data: bytes) -> bool:
        """Send a message to the MQTT subscribers of `topic` (at their subscription QoS, as amqtt does): QoS 0
        packets encoded once and written straight to each socket, QoS 1/2 through amqtt's handler. True when a
        subscriber is congested (more than OUT_HIGH bytes unsent: publishers should wait, `clear_future`)."""
        subscriptions = self._subscriptions
        if not subscriptions:
            return False
        owner = self.owner
        congested = False
        packet: bytes | None = None
        outgoing = self._outgoing
        for topic_filter in self.matching_filters(topic):
            for target, sub_qos in subscriptions.get(topic_filter, ()):
                if not DeviceTopicPlugin.check(target, topic, Action.RECEIVE):
                    continue
                if target.transitions.state != "connected":
                    if not target.clean_session and sub_qos in (QOS_1, QOS_2) and not target.is_anonymous:
                        broadcast = {"session": source, "topic": topic, "data": data}
                        owner._spawn(self._retain_broadcast_message(broadcast, sub_qos, target))  # type: ignore[arg-type]
                    continue
                handler = self._get_handler(target)
                if handler is None:
                    continue
                if sub_qos == QOS_0:
                    transport = _transport_of(handler.writer)
                    if transport is not None:
                        if transport.is_closing():
                            continue
                        batch = outgoing.get(handler)
                        if batch is None:
                            batch = outgoing[handler] = bytearray()
                            if len(outgoing) == 1:
                                asyncio.get_running_loop().call_soon(self._flush)
                        unsent = transport.get_write_buffer_size() + len(batch)
                        if unsent > OUT_MAX:
                            owner.dropped_out(target.client_id)
                            congested = True
                            continue
                        if packet is None:
                            packet = qos0_publish(topic, data)
                        batch += packet
                        if unsent + len(packet) > OUT_HIGH:
                            owner.congest(handler)
                            congested = True
                        continue
                owner._spawn(handler.mqtt_publish(topic, data, sub_qos, retain=False))
        return congested

    def _flush(self) -> None:
        """Write the QoS 0 packets `fan_out` gathered since the last loop turn: one write per subscriber."""
        outgoing, self._outgoing = self._outgoing, {}
        for handler, batch in outgoing.items():
            transport = _transport_of(handler.writer)
            if transport is not None and not transport.is_closing():
                transport.write(batch)

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        owner = self.owner
        where = f"{remote_address}:{remote_port}"
        capped = _CappedReader(reader, owner, where)
        try:
            async with asyncio.timeout(owner.connect_timeout):
                handler, incoming = await _Handler.init_from_connect(capped, writer, self.plugins_manager)
        except TimeoutError:
            _close_now(writer)
            raise AMQTTError(f"no CONNECT from {where} within {owner.connect_timeout} s: closed") from None
        except UnsupportedProtocolVersion as exc:
            try:
                writer.write(unsupported_version_connack(exc.level))
                async with asyncio.timeout(owner.connect_timeout):
                    await writer.drain()
            except (OSError, TimeoutError):
                pass
            finally:
                _close_now(writer)
            raise AMQTTError(f"{exc}; refused with CONNACK") from None
        except (MQTTError, NoDataError, AMQTTError) as exc:
            _close_now(writer)
            raise AMQTTError(f"connection from {where} closed before or at CONNECT: {exc}") from None
        except Exception as exc:  # PacketTooLarge, a broken stream: close, never leave the socket open
            _close_now(writer)
            raise AMQTTError(f"connection from {where} closed at CONNECT: {exc!r}") from None
        if not await super()._authenticate(incoming, None):  # type: ignore[arg-type]
            await _refuse(handler, incoming, reader, writer)
            raise AMQTTError(f"CONNECT of {incoming.username!r} from {where} refused")
        if READS in incoming.attributes and incoming.client_id in self._sessions:
            log.info(
                "MQTT CONNECT refused for anonymous client %r from %s: the client id is in use",
                incoming.client_id,
                where,
            )
            await _refuse(handler, incoming, reader, writer, IDENTIFIER_REJECTED)
            raise AMQTTError(
                f"anonymous CONNECT of client id {incoming.client_id!r} from {where} refused: in use"
            )
        held = self._sessions.get(incoming.client_id) if incoming.client_id else None
        if held is not None and held[0].transitions.is_connected() and held[0].username != incoming.username:
            log.info(
                "MQTT CONNECT refused for %r from %s: client id %r is held by a connected session of "
                "another client",
                incoming.username,
                where,
                incoming.client_id,
            )
            await _refuse(handler, incoming, reader, writer, IDENTIFIER_REJECTED)
            raise AMQTTError(
                f"CONNECT of {incoming.username!r} from {where} refused: client id "
                f"{incoming.client_id!r} is held by another device's connected session"
            )
        return handler, await self._adopt(incoming)

    async def _adopt(self, incoming: Session) -> Session:
        """amqtt's choice between a new and the stored session, made after authentication."""
        client_id = incoming.client_id
        if incoming.clean_session and not client_id:
            incoming.client_id = client_id = gen_client_id()
        old = self._sessions.get(client_id) if client_id else None
        if old is not None and (incoming.clean_session or old[0].username != incoming.username):
            await self._end_session(client_id)
            old = None
        session = incoming
        if old is not None:
            session = old[0]
            for name in (
                "will_flag",
                "will_message",
                "will_topic",
                "will_qos",
                "will_retain",
                "keep_alive",
                "username",
                "password",
            ):
                setattr(session, name, getattr(incoming, name))
            session.attributes.update(incoming.attributes)
            session.parent = 1
        else:
            session.parent = 0
        if session.keep_alive > 0:  # read by amqtt's reader loop as its idle limit (see _Handler)
            session.keep_alive = math.ceil(session.keep_alive * KEEPALIVE_GRACE)
        session.attributes[AUTHORIZED] = True
        return session

    async def _end_session(self, client_id: str) -> None:
        """Drop a stored session: disconnect its client if connected, forget its subscriptions."""
        session, handler = self._sessions.pop(client_id)
        if session.transitions.is_connected():
            await _disconnect(handler)
        await self._del_all_subscriptions(session)
        session.clear_queues()

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        # DeviceTopicPlugin's check called directly: amqtt would spawn a task per check (per subscriber and
        # message for RECEIVE), which costs 30-50% of the broker's throughput.
        return DeviceTopicPlugin.check(session, topic, action)

    async def _authenticate(self, session: Session, _listener: Any) -> bool:
        return bool(session.attributes.pop(AUTHORIZED, False))  # done in _initialize_client_session

    async def _handle_client_session(
        self,
        reader: Any,
        writer: Any,
        client_session: Session,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        owner = self.owner
        if client_session.attributes.get(EPOCH) != owner.epoch and not owner.still_valid(client_session):
            client_session.attributes.pop(AUTHORIZED, None)
            await _refuse(handler, client_session, reader, writer)
            return
        owner.live[handler] = client_session
        if self.direct and isinstance(handler, AckingHandler):
            handler.deliver = self._deliver_now
        label = f"client {client_session.client_id!r} ({client_session.username or 'anonymous'})"
        try:
            await super()._handle_client_session(
                _CappedReader(reader, owner, label), writer, client_session, handler, server, listener_name
            )
        finally:
            owner.live.pop(handler, None)

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        # QoS 1/2 from a device is acknowledged once the flows are done with it (runtime/mqtt/acks.py); the
        # broker's own hold is let go after the in-process dispatch (a plugin task scheduled before it) ran
        receipt = receipt_of(wait_deliver.result())
        if not self.owner.flows_ready.is_set():  # at start: no device message before the flows subscribed
            await self.owner.flows_ready.wait()
        try:
            return await super()._handle_message_delivery(client_session, handler, wait_deliver)
        finally:
            if receipt is not None:
                asyncio.get_running_loop().call_soon(receipt.release)

    async def _broadcast_message(
        self, session: Session | None, topic: str | None, data: Any, force_qos: int | None = None
    ) -> None:
        await super()._broadcast_message(session, topic, data, force_qos)
        if (
            session is not None
            and session.will_flag
            and topic
            and data is session.will_message
            and topic == session.will_topic
        ):  # a will: amqtt fires no plugin event for it
            self.owner.dispatch(
                topic, bytes(data), session.will_qos or 0, False, origin=_origin_in(session.attributes)
            )


class PacketTooLarge(ValidationError):
    """An MQTT packet larger than the broker's maximum packet size (its body is never read)."""


class UnsupportedProtocolVersion(ValidationError):
    """A CONNECT of a protocol level other than MQTT 3.1.1's (4): `level` says which."""

    def __init__(self, level: int, label: str) -> None:
        super().__init__(
            f"MQTT CONNECT from {label} with protocol level {level} "
            f"({_PROTOCOL_NAMES.get(level, 'unknown')}): this broker speaks MQTT 3.1.1 only"
        )
        self.level = level


_PROTOCOL_NAMES = {3: "MQTT 3.1", 4: "MQTT 3.1.1", 5: "MQTT 5"}
MQTT5_REFUSAL = "this broker speaks MQTT 3.1.1 only: connect with protocol version 3.1.1"


def unsupported_version_connack(level: int) -> bytes:
    """The CONNACK refusing protocol `level`, shaped as that version's clients read it: MQTT 5's with reason code
    0x84 (Unsupported Protocol Version) and a reason string property, else 3.1's with return code 1."""
    if level == 5:
        reason = MQTT5_REFUSAL.encode()
        properties = b"\x1f" + len(reason).to_bytes(2, "big") + reason
        body = b"\x00\x84" + bytes([len(properties)]) + properties
        return b"\x20" + bytes([len(body)]) + body
    return b"\x20\x02\x00\x01"


class _CappedReader(ReaderAdapter):
    """A connection's reader that follows MQTT framing (fixed header byte, remaining length, body) and raises
    PacketTooLarge as soon as a packet's remaining length makes it larger than the owner's maximum, and
    UnsupportedProtocolVersion when the first packet is a CONNECT of a level other than 3.1.1's."""

    def __init__(self, inner: Any, owner: EmbeddedBroker, label: str) -> None:
        self._inner, self._owner, self.label = inner, owner, label
        self._state = "type"  # type -> length -> body -> type
        self._length = self._multiplier = self._header = self._left = 0
        self._first: bytearray | None = bytearray()  # the first packet's type byte and body start; None after

    async def read(self, n: int = -1) -> bytes:
        data = await self._inner.read(n)
        state = self._state
        if self._first is not None and state in ("type", "body") and data:
            self._check_connect(data)
        if state == "type" and len(data) == 1:
            self._state, self._length, self._multiplier, self._header = "length", 0, 1, 1
        elif state == "length" and len(data) == 1:
            byte = data[0]
            self._length += (byte & 0x7F) * self._multiplier
            self._multiplier *= 128
            self._header += 1
            if not byte & 0x80:
                size = self._header + self._length
                if size > self._owner.max_packet_size:
                    self._state = "closed"
                    self._owner.oversize(self.label, size)
                    raise PacketTooLarge(
                        f"MQTT packet of {size} bytes from {self.label}: the maximum is "
                        f"{self._owner.max_packet_size}"
                    )
                self._left = self._length
                self._state = "body" if self._left else "type"
        elif state == "body":
            self._left -= len(data)
            if self._left <= 0:
                self._state = "type"
        return data

    def _check_connect(self, data: bytes) -> None:
        """Protocol name (2-byte length, "MQTT" or "MQIsdp") then level: read the level of the first CONNECT."""
        first = self._first
        assert first is not None
        first.extend(data[: 8 - len(first)])
        if first[0] >> 4 != 1:
            self._first = None
            return
        name_end = 3 + int.from_bytes(first[1:3], "big") if len(first) >= 3 else 0
        if name_end and len(first) > name_end:
            self._first = None
            level = first[name_end]
            if bytes(first[3:name_end]) == b"MQTT" and level != 4:
                raise UnsupportedProtocolVersion(level, self.label)
        elif len(first) >= 8:
            self._first = None

    async def fixed_header(self) -> MQTTFixedHeader:
        """The next packet's fixed header, read straight from the socket's buffer (as `read` would, byte by byte:
        the same size check); the body is then read through `read`."""
        stream = self._inner._reader
        first = (await stream.readexactly(1))[0]
        length, multiplier, header = 0, 1, 1
        while True:
            byte = (await stream.readexactly(1))[0]
            header += 1
            length += (byte & 0x7F) * multiplier
            if not byte & 0x80:
                break
            multiplier *= 128
            if multiplier > 128**3:
                raise MQTTError(f"invalid remaining length from {self.label}")
        size = header + length
        if size > self._owner.max_packet_size:
            self._state = "closed"
            self._owner.oversize(self.label, size)
            raise PacketTooLarge(
                f"MQTT packet of {size} bytes from {self.label}: the maximum is {self._owner.max_packet_size}"
            )
        self._left = length
        self._state = "body" if length else "type"
        return MQTTFixedHeader(first >> 4, first & 0x0F, length)

    async def body(self, size: int) -> bytes:
        """The body of the packet whose header `fixed_header` just read, straight from the socket's buffer: what
        `read` gives, without a read through every adapter layer for each message."""
        if self._first is not None or self._state != "body":
            return await self.read(size)
        data = await self._inner._reader.readexactly(size)
        self._state = "type"
        return data

    def feed_eof(self) -> None:
        self._inner.feed_eof()


class _Handler(AckingHandler):  # QoS 1/2 acknowledged once processed: runtime/mqtt/acks.py
    """amqtt's broker handler, which ignores an expired keepalive: here it closes the connection (the reader
    loop then ends the session as after any abnormal disconnect, will included)."""

    def handle_read_timeout(self) -> None:
        session = self.session
        log.info(
            "MQTT client %r silent for %s s (1.5 x keepalive): disconnected",
            getattr(session, "client_id", None),
            getattr(session, "keep_alive", None),
        )
        if self.reader is not None:
            self.reader.feed_eof()
        if self.writer is not None:
            _close_now(self.writer)


def _transport_of(writer: Any) -> asyncio.WriteTransport | None:
    """The socket transport under amqtt's writer adapter (None: another kind of writer)."""
    return getattr(getattr(writer, "_writer", None), "transport", None)


def _close_now(writer: Any) -> None:
    """Close a connection's socket at once (no flush: the peer may not be reading)."""
    transport = getattr(getattr(writer, "_writer", None), "transport", None)
    if transport is not None:
        writer.is_closed = True
        transport.abort()


async def _refuse(
    handler: BrokerProtocolHandler, session: Session, reader: Any, writer: Any, code: int = NOT_AUTHORIZED
) -> None:
    """CONNACK `code` (default 5, not authorized) and close."""
    handler.attach(session, reader, writer)
    try:
        if code == NOT_AUTHORIZED:
            await handler.mqtt_connack_authorize(False)
        else:
            await handler._send_packet(ConnackPacket.build(0, code))
    finally:
        await writer.close()
        _close_now(writer)


async def _disconnect(handler: BrokerProtocolHandler) -> None:
    """End a client's connection now: its message loop cleans up, its socket is closed at once."""
    await handler.handle_connection_closed()
    transport = getattr(getattr(handler.writer, "_writer", None), "transport", None)
    if transport is not None:
        transport.abort()


class _Sub:
    __slots__ = ("active", "callback", "levels", "tenant")

    def __init__(self, levels: tuple[str, ...], callback: Callback, tenant: str | None = None) -> None:
        self.levels, self.callback, self.active, self.tenant = levels, callback, True, tenant

    def call(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if not self.active:
            return
        try:
            self.callback(topic, payload, qos, retain)
        except Exception:
            log.exception("in-process MQTT subscriber failed on %r", topic)


class EmbeddedBroker:
    """amqtt on `host:port` (port 0: a free port, read `port` after start) plus the in-process path."""

    def __init__(
        self,
        devices: DeviceRegistry,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        max_packet_size: int = DEFAULT_MAX_PACKET_SIZE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        audit: Any = None,
    ) -> None:
        if not isinstance(max_packet_size, int) or max_packet_size < 64:
            raise ValueError(
                f"mqttMaxPacketSize must be an integer of at least 64 bytes, got {max_packet_size!r}"
            )
        if not isinstance(connect_timeout, int | float) or not 0 < connect_timeout <= 3600:
            raise ValueError(f"mqttConnectTimeout must be 0 < seconds <= 3600, got {connect_timeout!r}")
        self.devices, self.host, self.port = devices, host, port
        self.max_packet_size, self.connect_timeout, self.audit = (
            max_packet_size,
            float(connect_timeout),
            audit,
        )
        self.live: dict[BrokerProtocolHandler, Session] = {}
        self.epoch = 0  # counts revocations; a CONNECT that authenticated before one is checked again
        self.sender: str | None = None  # the publishing device, while `dispatch` runs
        self.sender_owner: str | None = None  # and its owner
        self.sender_client: str | None = (
            None  # the MQTT client id, while `dispatch` runs for a client's PUBLISH
        )
        self.origin: Origin = None  # the message's origin tenant, while `dispatch` runs
        self._retained_origins = RetainedOrigins()
        self.flows_ready = asyncio.Event()  # cleared by a runtime until its flows run: device messages wait
        self.flows_ready.set()
        self._broker: _Broker | None = None
        self._exact: dict[str, tuple[_Sub, ...]] = {}
        self._wild: tuple[_Sub, ...] = ()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unlisten: Callable[[], None] | None = None
        self.anonymous_topics: Callable[[str], list[str] | None] | None = None
        """Set by an SSAP-over-MQTT gateway: the topic filters an anonymous client (by client id) may use,
        None to refuse it. Unset, anonymous CONNECTs are refused."""
        self.holders: set[object] = set()  # in-process subscribers not keeping up (`hold_publishers`)
        self._congested: set[BrokerProtocolHandler] = (
            set()
        )  # MQTT subscribers with over OUT_HIGH bytes unsent
        self._stuck: set[BrokerProtocolHandler] = set()  # congested for longer than HOLD_MAX: not waited for
        self._clear: asyncio.Future[None] | None = None
        self.dropped = 0  # QoS 0 messages not sent to a subscriber that had over OUT_MAX bytes unsent

    # ----- backpressure ------------------------------------------------------------------------------
    def hold_publishers(self, holder: object, hold: bool) -> None:
        """An in-process subscriber (`holder`) cannot keep up (hold=True) or caught up again: while any cannot,
        the clients whose messages reach in-process subscribers are not read (at most acks.HOLD_MAX seconds at
        a time), so a burst waits in the devices and the sockets instead of being dropped."""
        if hold:
            self.holders.add(holder)
        else:
            self.holders.discard(holder)
            self._maybe_clear()

    def clear_future(self) -> asyncio.Future[None]:
        """Done once no in-process subscriber holds publishers back and no MQTT subscriber is congested."""
        fut = self._clear
        if fut is None or fut.done():
            fut = self._clear = asyncio.get_running_loop().create_future()
            if not self.holders and not self._congested:
                fut.set_result(None)
        return fut

    def _maybe_clear(self) -> None:
        fut = self._clear
        if fut is not None and not fut.done() and not self.holders and not self._congested:
            fut.set_result(None)

    def congest(self, handler: BrokerProtocolHandler) -> None:
        """`handler`'s client has much unsent: congested (publishers wait) until its socket's buffer drains. One
        still congested after HOLD_MAX seconds is left behind: publishers go on, and past OUT_MAX unsent bytes its
        QoS 0 messages are dropped (as Mosquitto drops past its queue limits) until it reads again."""
        if handler in self._congested or handler in self._stuck:
            return
        self._congested.add(handler)

        async def drained() -> None:
            drain = asyncio.ensure_future(handler.writer._writer.drain())  # type: ignore[union-attr]
            try:
                try:
                    await asyncio.wait_for(asyncio.shield(drain), HOLD_MAX)
                except TimeoutError:
                    log.warning(
                        "MQTT client %r is not reading its messages: publishers no longer wait for it",
                        getattr(handler.session, "client_id", None),
                    )
                    self._stuck.add(handler)
                    self._congested.discard(handler)
                    self._maybe_clear()
                    await drain
            except Exception as exc:  # noqa: BLE001 - a closed connection is no longer congested
                log.debug("MQTT subscriber gone while congested: %s", exc)
            finally:
                drain.cancel()
                self._congested.discard(handler)
                self._stuck.discard(handler)
                self._maybe_clear()

        self._spawn(drained())

    def dropped_out(self, client_id: str | None) -> None:
        self.dropped += 1
        if self.dropped == 1 or self.dropped % 1000 == 0:
            log.warning(
                "MQTT client %r is not reading: over %s bytes unsent, %s QoS 0 message(s) not sent so far",
                client_id,
                OUT_MAX,
                self.dropped,
            )

    def admit_anonymous(self, session: Session) -> bool:
        """An anonymous CONNECT, limited to the topics `anonymous_topics` gives its client id: a pair
        (publish filters, subscribe filters), or one list for both. Refused with a persistent session."""
        policy = self.anonymous_topics
        rights = policy(session.client_id or "") if policy is not None and session.client_id else None
        if not rights or not session.clean_session:
            return False
        writes, reads = rights if isinstance(rights, tuple) else (rights, rights)
        name = f"anonymous:{session.client_id}"
        device = Device(name, True, list(writes), {}, datetime.now(UTC))
        if session.will_flag and not may_publish(device, session.will_topic or ""):
            return False
        session.attributes[EPOCH] = self.epoch
        session.attributes[DEVICE] = device
        session.attributes[READS] = Device(name, True, list(reads), {}, datetime.now(UTC))
        return True

    def oversize(self, client: str, size: int) -> None:
        """Log and audit a packet over the maximum size (its connection is being closed)."""
        log.warning(
            "MQTT packet of %s bytes from %s: over the maximum of %s bytes, connection closed",
            size,
            client,
            self.max_packet_size,
        )
        if self.audit is not None:
            try:
                self.audit.record(
                    None, "mqtt.oversize", client, "denied", {"bytes": size, "max": self.max_packet_size}
                )
            except Exception:
                log.exception("auditing an oversized MQTT packet failed")

    # ----- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._broker is not None:
            raise RuntimeError("the embedded MQTT broker is already started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{self.port}"}},
            "session_expiry_interval": SESSION_EXPIRY,
            "plugins": {
                f"{__name__}.{cls.__name__}": {}
                for cls in (DeviceAuthPlugin, DeviceTopicPlugin, InProcessPlugin)
            },
        }
        broker = _Broker(config)
        broker.owner = self
        for plugin in broker.plugins_manager.plugins:
            if isinstance(plugin, _Owned):
                plugin.owner = self
        self._loop = asyncio.get_running_loop()
        try:
            await broker.start()
        except BrokerError as err:
            reason = err.__cause__ or err
            raise ServiceUnavailable(
                f"the embedded MQTT broker cannot listen on {host}:{self.port}: {reason}"
            ) from err
        self._broker = broker
        self.port = broker._servers["default"].instance.sockets[0].getsockname()[1]
        self._unlisten = self.devices.on_revoke(self._on_revoke)
        log.info("embedded MQTT broker listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is None:
            return
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        await broker.shutdown()
        for _ in range(100):  # client loops end once their handlers are stopped
            if not self.live and not self._tasks:
                break
            await asyncio.sleep(0.01)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if amqtt_manager.plugins_manager.get("amqtt.broker.plugins") is broker.plugins_manager:
            del amqtt_manager.plugins_manager["amqtt.broker.plugins"]

    @property
    def started(self) -> bool:
        return self._broker is not None

    def clients_connected(self) -> int:
        """MQTT clients connected now."""
        return sum(1 for s in self.live.values() if s.transitions.is_connected())

    # ----- in-process path ---------------------------------------------------------------------------
    async def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, origin: Origin = None
    ) -> None:
        """Publish as the broker itself: to MQTT subscribers (at their subscription QoS, as amqtt does) and to
        in-process subscribers. A retained empty payload clears the topic's retained message. `origin`: the
        publishing flow's tenant (None: an administrator's or ownerless flow, the platform)."""
        mt.validate_topic(topic)
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos!r}")
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        data = bytes(payload)
        size = publish_packet_size(topic, len(data), qos)
        if size > self.max_packet_size:
            raise ValueError(
                f"MQTT message to {topic!r} of {len(data)} bytes: its PUBLISH packet ({size} bytes) "
                f"is larger than the broker's maximum packet size ({self.max_packet_size} bytes)"
            )
        broker = self._broker
        if broker is None:
            raise RuntimeError("the embedded MQTT broker is not started")
        if retain:
            await broker.retain_message(None, topic, data, qos)
            self._retained_origins.note(topic, broker.retained_messages.get(topic), origin)
        if broker.direct:
            if self._congested:  # an MQTT subscriber is not reading: the publishing flow waits (bounded)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.clear_future()), HOLD_MAX)
            broker.fan_out(None, topic, data)
        elif broker.subscriptions:
            queue = broker._broadcast_queue
            if queue.qsize() >= MAX_BACKLOG:  # backpressure: let amqtt's broadcast loop catch up (bounded)
                deadline = time.monotonic() + 1.0
                while queue.qsize() >= MAX_BACKLOG // 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.001)
            await broker.internal_message_broadcast(topic, data, None)
        self.dispatch(topic, data, qos, False, origin=origin)

    def subscribe(
        self, topic_filter: str, callback: Callback, tenant: str | None = None
    ) -> Callable[[], None]:
        """Call `callback(topic, payload, qos, retain)` on the loop for each message matching `topic_filter`
        (retained ones first, soon after this call); returns the unsubscribe function. With a `tenant` (a user
        name), only messages of that origin are delivered."""
        mt.validate_filter(topic_filter)
        sub = _Sub(mt.levels(topic_filter), callback, tenant)
        wild = mt.is_wild(topic_filter)
        if wild:
            self._wild = (*self._wild, sub)
        else:
            self._exact[topic_filter] = (*self._exact.get(topic_filter, ()), sub)
        if self._broker is not None and self._loop is not None:
            for topic, retained in list(self._broker.retained_messages.items()):
                if mt.match_levels(sub.levels, mt.levels(topic)):
                    source = getattr(retained, "source_session", None)
                    device = _device_in(source.attributes if source is not None else None)
                    origin = self._retained_origins.of(
                        topic, retained, None if source is None else _origin_in(source.attributes)
                    )
                    self._loop.call_soon(
                        self._replay,
                        sub,
                        topic,
                        bytes(retained.data),
                        retained.qos or 0,
                        device.name if device else None,
                        device.owner if device else None,
                        origin,
                    )

        def unsubscribe() -> None:
            if not sub.active:
                return
            sub.active = False
            if wild:
                self._wild = tuple(s for s in self._wild if s is not sub)
            else:
                rest = tuple(s for s in self._exact.get(topic_filter, ()) if s is not sub)
                if rest:
                    self._exact[topic_filter] = rest
                else:
                    self._exact.pop(topic_filter, None)

        return unsubscribe

    def dispatch(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        sender: str | None = None,
        sender_owner: str | None = None,
        receipt: Any = None,
        origin: Origin = None,
    ) -> int:
        """Hand one message of `origin` to the in-process subscribers whose filter matches and whose tenant hears
        that origin (broker_origin.hears); returns how many got it. While they run, `origin` is set, `sender` is
        the device (its name, the CONNECT username) that published it, None when the broker or a flow did;
        `sender_owner` its owner; and `broker_acks.current_receipt()` the receipt a subscriber holds to delay the
        device's PUBACK."""
        self.sender, self.sender_owner, self.origin = sender, sender_owner, origin
        previous = handing_over(receipt)
        heard = 0
        try:
            for sub in self._exact.get(topic, ()):
                if hears(sub.tenant, origin):
                    sub.call(topic, payload, qos, retain)
                    heard += 1
            if self._wild:
                topic_levels = mt.levels(topic)
                for sub in self._wild:
                    if mt.match_levels(sub.levels, topic_levels) and hears(sub.tenant, origin):
                        sub.call(topic, payload, qos, retain)
                        heard += 1
        finally:
            self.sender = self.sender_owner = self.origin = None
            handing_over(previous)
        return heard

    def _replay(
        self,
        sub: _Sub,
        topic: str,
        payload: bytes,
        qos: int,
        sender: str | None,
        sender_owner: str | None,
        origin: Origin,
    ) -> None:
        """A retained message to one new subscriber (with its publishing device and origin, as `dispatch`)."""
        if not hears(sub.tenant, origin):
            return
        self.sender, self.sender_owner, self.origin = sender, sender_owner, origin
        try:
            sub.call(topic, payload, qos, True)
        finally:
            self.sender = self.sender_owner = self.origin = None

    def device_record(self, client_id: str | None) -> Device | None:
        """The registered device a connected client authenticated as (None: anonymous or unknown)."""
        broker = self._broker
        entry = broker._sessions.get(client_id) if broker is not None and client_id else None
        return _device_in(entry[0].attributes if entry is not None else None)

    def device_of(self, client_id: str | None) -> str | None:
        """The name of the registered device a connected client authenticated as (None: anonymous or unknown)."""
        device = self.device_record(client_id)
        return device.name if device is not None else None

    # ----- revocation --------------------------------------------------------------------------------
    def still_valid(self, session: Session) -> bool:
        """Check a session's credentials again (after a revocation raced with its CONNECT)."""
        if not session.username and session.password is None:
            return self.anonymous_topics is not None
        try:
            session.attributes[DEVICE] = self.devices.authenticate(session.username, session.password)
        except AuthError:
            return False
        session.attributes[EPOCH] = self.epoch
        return True

    def _on_revoke(self, name: str, token_id: str | None) -> None:
        self.epoch += 1
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._kick(name, token_id)
        else:
            loop.call_soon_threadsafe(self._kick, name, token_id)

    def _kick(self, name: str, token_id: str | None) -> None:
        """Drop the sessions of device `name` using `token_id` (None: all of them, stored ones too)."""
        broker = self._broker
        if broker is None:
            return
        for handler, session in list(self.live.items()):
            if session.username == name and (token_id is None or session.attributes.get(TOKEN) == token_id):
                log.info("dropping MQTT client %r of device %r: credentials revoked", session.client_id, name)
                session.will_flag = False
                self._spawn(_disconnect(handler))
        if token_id is None:
            for client_id, (session, _handler) in list(broker.sessions.items()):
                if session.username == name and not session.transitions.is_connected():
                    self._spawn(broker._cleanup_session(client_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _device_in(attributes: dict[str, Any] | None) -> Device | None:
    """The registered device of a session's attributes (None: none, or an anonymous client)."""
    device = attributes.get(DEVICE) if attributes else None
    if not isinstance(device, Device) or READS in attributes or device.name.startswith("anonymous:"):
        return None
    return device


def _origin_in(attributes: dict[str, Any] | None) -> Origin:
    """The origin tenant of what a client's session publishes: its device's owner, ANONYMOUS when it is none."""
    device = _device_in(attributes)
    return device.owner if device is not None else ANONYMOUS


def qos0_publish(topic: str, payload: bytes) -> bytes:
    """The bytes of an MQTT 3.1.1 QoS 0 PUBLISH (no dup, no retain), as amqtt's PublishPacket encodes it."""
    name = topic.encode("utf-8")
    remaining = 2 + len(name) + len(payload)
    length = bytearray()
    while True:
        remaining, digit = divmod(remaining, 128)
        length.append(digit | 0x80 if remaining else digit)
        if not remaining:
            break
    return b"".join((b"\x30", length, len(name).to_bytes(2, "big"), name, payload))


def publish_packet_size(topic: str, payload_bytes: int, qos: int) -> int:
    """Bytes of an MQTT 3.1.1 PUBLISH packet: fixed header, topic, packet id (QoS > 0), payload."""
    remaining = 2 + len(topic.encode("utf-8")) + (2 if qos else 0) + payload_bytes
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining
