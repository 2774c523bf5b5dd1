"""One MQTT client connection that stays up by itself.

It reconnects with exponential backoff (0.5 s doubling to 15 s), subscribes again after each
(re)connect, and keeps QoS 1/2 publishes made while disconnected in a bounded buffer (oldest
dropped, counted) to send in order once connected; QoS 0 ones are dropped, as Node-RED does.
Unacknowledged publishes are sent again first after a reconnect (with the lean client and a kept
session as DUP resends), so QoS 1/2 messages survive a broker restart (at least once, in order).
Flow control: publishes go out without awaiting their acks, within a window (capped by Receive
Maximum); past HIGH_WATER queued, `congested` is true and publishers `await writable()`; a slow
consumer calls `set_reading(False)` (socket not read, QoS 1/2 acks held, the broker slows down).
A received QoS 1/2 message is acknowledged once its subscribers are done with it (they hold
`broker_acks.current_receipt()` during `on_message`), in the order received (MQTT 3.1.1 4.6); the broker's
inflight window (Mosquitto: max_inflight_messages) bounds how many wait.
While a cluster deploy drains (`hold_intake(True)`), messages read are kept, neither handed to the subscribers nor
acknowledged, and acknowledgements held for backpressure go out; `hold_intake(False)` hands the kept ones to the
subscribers of then (the new revision's), and a connection that goes down meanwhile drops them (the broker sends
them again). `forsake()` gives up every message in hand unacknowledged and connects again, so the broker sends
them again.
MQTT 3.1/3.1.1 over TCP/TLS uses mqtt_protocol.LeanClient, MQTT 5 and websockets aiomqtt's
(mqtt_client.FastClient); the environment variable SOFIAFLOW_MQTT_CLIENT=paho uses FastClient for all.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiomqtt
import paho.mqtt.client as paho

from sofiaflow.nodes.mqtt.mqtt_options import ConnectOptions, Outgoing
from sofiaflow.nodes.mqtt.mqtt_protocol import LeanClient
from sofiaflow.nodes.mqtt.mqtt_subscriptions import SubscriptionTable
from sofiaflow.runtime.api import OrderedAcks, Receipt, handing_over

if TYPE_CHECKING:  # imported by _new_client: aiomqtt and paho load with the first client that needs them
    from sofiaflow.nodes.mqtt.mqtt_client import FastClient

BACKOFF_START = 0.5
BACKOFF_MAX = 15.0
GOODBYE_TIMEOUT = 2.0
HIGH_WATER = 2000
LOW_WATER = 500
CLIENT = os.environ.get("SOFIAFLOW_MQTT_CLIENT", "lean")

OnMessage = Callable[[str, bytes, int, bool, Any, Any], None]
"""on_message(topic, payload, qos, retain, v5 properties or None, matched filters or None = match all)."""


class MqttConnection:
    """See the module docstring. Owned by an `mqtt-broker` config node."""

    def __init__(
        self,
        options: ConnectOptions,
        *,
        on_message: OnMessage,
        on_state: Callable[[str, str | None], None],
        spawn: Callable[[Awaitable], asyncio.Task],
        sleep: Callable[[float], Awaitable[None]],
        warn: Callable[[str], None],
        max_buffer: int = 10_000,
        window: int = 1000,
        gate: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.options, self.state, self.max_buffer, self.dropped = options, "disconnected", max_buffer, 0
        self.last_error: str | None = None
        self.subscriptions = SubscriptionTable()
        self._on_message, self._on_state, self._spawn, self._sleep, self._warn = (
            on_message,
            on_state,
            spawn,
            sleep,
            warn,
        )
        self._window = self._limit = window
        self._backlog: deque[Outgoing] = deque()
        self._inflight: dict[int, Outgoing] = {}
        self._client: FastClient | None = None
        self._carried: dict[int, bytes | None] | None = None  # lean client, kept session: unacked packets
        self._live = False
        self._wanted = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._leave: asyncio.Future | None = None
        self._wake: asyncio.Future | None = None
        self._flushed: asyncio.Future | None = None
        self._task: asyncio.Task | None = None
        self._pump_scheduled = self._paused = False
        self._held: list[tuple[FastClient, int, int]] = []
        self._acks: OrderedAcks | None = None  # this connection's received QoS 1/2 messages, in order
        self._writable: asyncio.Future | None = None
        self._gate = gate
        """Awaited before every connect: e.g. until this worker holds the lease on its client id (a cluster)."""
        self._holding = False
        self._kept: list[tuple[FastClient, paho.MQTTMessage]] = []
        """Messages of the current session read while the intake is held (`hold_intake`), with their client."""

    # ----- control --------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._live and self.state == "connected"

    @property
    def buffered(self) -> int:
        return len(self._backlog) + len(self._inflight)

    def connect(self) -> None:
        """Start connecting (and keep reconnecting) until `disconnect`."""
        self._wanted.set()
        if self._task is None or self._task.done():
            self._idle.clear()
            self._task = self._spawn(self._run())

    async def disconnect(self) -> None:
        """Send the close message, wait (bounded) for unacknowledged publishes, then disconnect."""
        self._wanted.clear()
        _settle(self._leave)
        _settle(self._wake)
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOODBYE_TIMEOUT + 3):
                    await self._idle.wait()

    async def close(self) -> None:
        """Final stop (the node closes): graceful goodbye, then the task ends."""
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            self._wanted.clear()
            _settle(self._leave)
            if (
                not task.cancelling()
            ):  # the engine may have cancelled it already: do not interrupt the goodbye
                task.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOODBYE_TIMEOUT + 3):
                    await asyncio.wait({task})
        if self.buffered:
            self._warn(f"{self.buffered} unsent message(s) dropped at close")

    def take_backlog(self) -> list[Outgoing]:
        """Unsent messages (unacknowledged first), removed from this connection."""
        items = list(self._inflight.values()) + list(self._backlog)
        self._inflight.clear()
        self._backlog.clear()
        return items

    # ----- flow control ----------------------------------------------------------------------------------------
    @property
    def congested(self) -> bool:
        """Connected, but more is waiting to be sent than HIGH_WATER: publishers should wait (`writable`)."""
        client = self._client
        return (
            self._live
            and client is not None
            and (len(self._backlog) > HIGH_WATER or client.out_queue() > HIGH_WATER)
        )

    async def writable(self) -> None:
        """Wait until the backlog is down to LOW_WATER (or the connection drops)."""
        if self.congested:
            if self._writable is None or self._writable.done():
                self._writable = asyncio.get_running_loop().create_future()
            await self._writable

    def _maybe_writable(self) -> None:
        client = self._client
        if (
            client is None
            or not self._live
            or (len(self._backlog) <= LOW_WATER and client.out_queue() <= LOW_WATER)
        ):
            _settle(self._writable)

    def set_reading(self, on: bool) -> None:
        """Pause (False) or resume (True) taking messages in: the socket is not read unless our own acks are
        due; messages read meanwhile are delivered, their QoS 1/2 acks held (the broker's window fills)."""
        if self._paused == (not on):
            return
        self._paused = not on
        self._update_reader()
        if on:
            held, self._held = self._held, []
            client = self._client
            for owner, mid, qos in held:
                if owner is client:  # acks of an earlier connection mean nothing to this one
                    owner.ack(mid, qos)

    def hold_intake(self, on: bool) -> None:
        """Hold (True) or let go (False) of what arrives: see the module docstring."""
        if on == self._holding:
            return
        self._holding = on
        if on:
            held, self._held = self._held, []
            client = self._client
            for owner, mid, qos in held:  # processed: acknowledged now, whatever backpressure says
                if owner is client:
                    owner.ack(mid, qos)
            return
        kept, self._kept = self._kept, []
        if self._acks is None:
            return  # no session (`_went_down` dropped what it kept): the broker sends them again
        for client, message in kept:  # of this session (`_went_down` drops what an earlier one kept), even
            self._received(client, message)  # when it is still coming up: the broker sends no message twice

    @property
    def unfinished(self) -> int:
        """Received QoS 1/2 messages not acknowledged yet (in the flows, or behind one that is)."""
        return len(self._acks) if self._acks is not None else 0

    def forsake(self) -> None:
        """Give up every message in hand: none of them is acknowledged, and the connection is made again (the
        broker sends them again, with a persistent session)."""
        self._acks = None
        self._kept.clear()
        self._held.clear()
        if self._live:
            _settle(self._leave)  # the session ends; `_run` connects again (still wanted)

    def _update_reader(self) -> None:
        client = self._client
        if client is not None:
            client.reading(not self._paused or bool(self._inflight))

    # ----- publishing ------------------------------------------------------------------------------------------
    def publish(self, item: Outgoing) -> None:
        if self._live:
            if not self._backlog and len(self._inflight) < self._limit:
                self._send(item)
                return
        elif item.qos == 0:
            return  # as Node-RED: QoS 0 while disconnected is dropped
        self._buffer(item)

    def _buffer(self, item: Outgoing) -> None:
        if len(self._backlog) >= self.max_buffer:
            self._backlog.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self._warn(
                    f"publish buffer full ({self.max_buffer} messages): dropped the oldest, "
                    f"{self.dropped} dropped so far"
                )
        self._backlog.append(item)

    def _send(self, item: Outgoing) -> None:
        client = self._client
        if item.qos:
            info = client.publish_nowait(item)  # ValueError for a bad topic or payload goes to the caller
            if not self._inflight:
                client.watch_acks(True)
                self._inflight[info.mid] = item
                if self._paused:
                    client.reading(True)  # the acknowledgement must be read
            else:
                self._inflight[info.mid] = item
        else:
            client.publish_nowait(item)

    def _acked(self, mid: int) -> None:
        if self._inflight.pop(mid, None) is not None:
            if not self._inflight and self._client is not None:
                self._client.watch_acks(False)
                if self._paused:
                    self._client.reading(False)
            if self._backlog:
                if not self._pump_scheduled:
                    self._pump_scheduled = True
                    asyncio.get_running_loop().call_soon(self._pump)
            elif not self._inflight:
                _settle(self._flushed)

    def _pump(self) -> None:
        self._pump_scheduled = False
        backlog, inflight, limit = self._backlog, self._inflight, self._limit
        while backlog and self._live and len(inflight) < limit:
            item = backlog.popleft()
            try:
                self._send(item)
            except ValueError as exc:
                self._warn(f"dropped a buffered message for {item.topic!r}: {exc}")
        if self._writable is not None:
            self._maybe_writable()

    # ----- subscriptions ---------------------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, qos: int, options: dict[str, Any]) -> Awaitable | None:
        """Record (or update) a subscription; when connected, send it. Returns what to await for its SUBACK."""
        self.subscriptions[topic_filter] = (qos, options)
        if self._live and self._client is not None:
            return self._spawn(self._subscribe_safe(self._client, topic_filter))
        return None

    async def _subscribe_safe(self, client: FastClient, topic_filter: str) -> None:
        try:
            await self._subscribe_now(client, topic_filter)
        except (aiomqtt.MqttError, ValueError) as exc:
            self._warn(f"subscribe to {topic_filter!r} failed: {_describe(exc)}")

    def unsubscribe(self, topic_filter: str) -> None:
        if self.subscriptions.pop(topic_filter, None) is None:
            return
        if self._live and self._client is not None:
            self._spawn(self._unsubscribe_now(self._client, topic_filter))

    async def _unsubscribe_now(self, client: FastClient, topic_filter: str) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await client.unsubscribe(topic_filter)

    async def _subscribe_now(self, client: FastClient, topic_filter: str) -> None:
        ids = getattr(client.connack_properties, "SubscriptionIdentifierAvailable", 1) == 1
        await client.subscribe(
            topic_filter, **self.subscriptions.subscribe_args(topic_filter, self.options.protocol == 5, ids)
        )

    def _received(self, client: FastClient, message: paho.MQTTMessage) -> None:
        if self._holding:
            self._kept.append((client, message))
            return
        props = message.properties if self.options.protocol == 5 else None
        filters = self.subscriptions.matched(props)
        qos = message.qos
        acks = self._acks
        receipt = acks.add(message.mid, qos) if qos and acks is not None else None
        previous = handing_over(receipt)
        try:
            self._on_message(message.topic, message.payload, qos, bool(message.retain), props, filters)
        finally:
            handing_over(previous)
            if receipt is not None:
                receipt.release()  # acknowledged now, or once the flows let go of it

    def _ack_when_processed(self, client: FastClient, acks: OrderedAcks, receipt: Receipt) -> None:
        if acks is not self._acks:
            return  # the connection it came on is gone: the broker sends it again
        if self._paused and not self._holding:
            self._held.append((client, receipt.packet_id, receipt.kind))
        else:
            client.ack(receipt.packet_id, receipt.kind)

    # ----- the connection loop ---------------------------------------------------------------------------------
    def _set_state(self, state: str, error: str | None = None) -> None:
        self.state = state
        self.last_error = error
        self._on_state(state, error)

    async def _run(self) -> None:
        failures = 0
        try:
            while True:
                if not self._wanted.is_set():
                    if self.state != "disconnected":
                        self._set_state("disconnected")
                    self._idle.set()
                    await self._wanted.wait()
                    self._idle.clear()
                    failures = 0
                self._set_state("connecting")
                try:
                    was_up = await self._session()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - any failure to connect: report, back off, retry
                    was_up = False
                    self._set_state("disconnected", _describe(exc))
                if was_up:
                    failures = 0
                if not self._wanted.is_set():
                    continue
                delay = min(BACKOFF_START * 2**failures, BACKOFF_MAX)
                failures = min(failures + 1, 16)
                self._wake = asyncio.get_running_loop().create_future()
                sleeper = asyncio.ensure_future(self._sleep(delay))
                try:
                    await asyncio.wait({sleeper, self._wake}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()
        finally:
            self._live = False
            self._idle.set()

    def _new_client(self) -> FastClient:
        o = self.options
        lean = CLIENT == "lean" and o.protocol in (3, 4) and o.transport == "tcp"
        if not lean:
            from sofiaflow.nodes.mqtt.mqtt_client import FastClient
        return (LeanClient if lean else FastClient).from_options(
            o, on_message=self._received, on_ack=self._acked, on_drained=self._maybe_writable
        )

    async def _session(self) -> bool:
        """Connect, serve until the connection ends or `disconnect`; True if it was up."""
        if self._gate is not None:
            await self._gate()
        client = self._new_client()
        acks = self._acks = OrderedAcks(lambda receipt: self._ack_when_processed(client, acks, receipt))
        self._leave = asyncio.get_running_loop().create_future()
        up = False
        try:
            async with client:
                up = True
                try:
                    await self._came_up(client)
                    await asyncio.wait({client.lost, self._leave}, return_when=asyncio.FIRST_COMPLETED)
                    if self._leave.done() and not client.lost.done():
                        await self._goodbye(client)
                except asyncio.CancelledError:
                    if self._live and not client.lost.done():
                        await self._goodbye(client)
                    raise
                finally:
                    self._went_down(client)
        except aiomqtt.MqttError:
            if not up:
                raise  # could not connect
        return up

    async def _came_up(self, client: FastClient) -> None:
        receive_max = getattr(client.connack_properties, "ReceiveMaximum", None)
        self._limit = min(self._window, receive_max) if receive_max else self._window
        self._client = client
        self._live = True
        carried, self._carried = self._carried, None
        if carried is not None:  # kept by the broker: resend as DUP, else from the backlog with new ids
            if client.session_present:
                client.resend({mid: p for mid, p in carried.items() if mid in self._inflight})
            else:
                self._requeue()
        subs = [asyncio.ensure_future(self._subscribe_now(client, f)) for f in list(self.subscriptions)]
        self._pump()
        if subs:
            gathered = asyncio.gather(*subs, return_exceptions=True)
            try:
                await asyncio.wait(
                    {gathered, client.lost}, timeout=client.timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                if not gathered.done():
                    gathered.cancel()
            for result in gathered.result() if gathered.done() and not gathered.cancelled() else ():
                if isinstance(result, BaseException):
                    self._warn(f"subscribe failed: {_describe(result)}")
        if client.lost.done():
            return
        self._update_reader()
        self._set_state("connected")
        if self.options.birth is not None:
            self.publish(self.options.birth)

    async def _goodbye(self, client: FastClient) -> None:
        """Publish the close message and wait (bounded) until nothing is left unacknowledged."""
        if self.options.close is not None:
            with contextlib.suppress(ValueError):
                self.publish(self.options.close)
        if self._inflight or self._backlog:
            self._flushed = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(GOODBYE_TIMEOUT):
                    await asyncio.wait({self._flushed, client.lost}, return_when=asyncio.FIRST_COMPLETED)
            self._flushed = None

    def _went_down(self, client: FastClient) -> None:
        self._live = False
        self._acks = None
        self._kept.clear()  # never acknowledged: the broker sends them again
        self._client = None
        if self._inflight and isinstance(client, LeanClient) and not self.options.clean_session:
            self._carried = client.unacknowledged()
        else:
            self._requeue()
        self._maybe_writable()
        error = None
        if client.lost.done() and not client.lost.cancelled() and client.lost.exception() is not None:
            error = _describe(client.lost.exception())
        self._set_state("disconnected", error)

    def _requeue(self) -> None:  # unacknowledged publishes first in the backlog
        self._backlog.extendleft(reversed(list(self._inflight.values())))
        self._inflight.clear()
        while len(self._backlog) > self.max_buffer:
            self._backlog.popleft()
            self.dropped += 1


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _settle(fut: asyncio.Future | None) -> None:
    if fut is not None and not fut.done():
        fut.set_result(None)
