"""The in-process path to the runtime's embedded MQTT broker (service "mqtt-embedded").

When an `mqtt-broker` config node points at the embedded broker (a local address and its port),
flows publish and subscribe through the service's in-process interface instead of a TCP client:

    service.port, service.host
    await service.publish(topic, payload: bytes, qos=0, retain=False, origin=None)
    unsubscribe = service.subscribe(topic_filter, callback(topic, payload, qos, retain))
    service.sender   # during a callback: the device that published the message, or None
    service.origin   # during a callback: the message's origin tenant (runtime/mqtt/origin.py)

`EmbeddedLink` offers the same interface as `MqttConnection`. Flows are trusted: no credentials,
no will (the process cannot vanish without its flows). Publishes are sent in order by one task.
Messages a device published carry its name (`msg.device` in `mqtt in`); a TCP client cannot know it.
Every message carries its origin tenant (the device's owner, ANONYMOUS for anonymous clients, the publishing
flow's tenant, None for administrators and the platform); a flow's publishes go out with its node's tenant.
The mqtt-broker config node gives a node on a developer's tab only messages of that developer's origin
(runtime/security/tenant.py; administrators' and ownerless tabs receive all).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from sofiaflow.nodes.mqtt.mqtt_connection import GOODBYE_TIMEOUT, HIGH_WATER, LOW_WATER, OnMessage
from sofiaflow.nodes.mqtt.mqtt_options import ConnectOptions, Outgoing


class PublishedBy:
    """In place of MQTT 5 properties on the in-process path: the registered device that published the
    message (`msg.device` in `mqtt in`, which ontology nodes take for `contextData.device` and its rights;
    None when no device did) and its owner (None: the administrators'), and the message's origin tenant."""

    __slots__ = ("PublishingDevice", "PublishingOwner", "origin")

    def __init__(self, device: str | None, owner: str | None = None, origin: Any = None) -> None:
        self.PublishingDevice = device
        self.PublishingOwner = owner
        self.origin = origin


class EmbeddedLink:
    """In-process publish/subscribe on the embedded broker; see the module docstring."""

    def __init__(
        self,
        service: Any,
        options: ConnectOptions,
        *,
        on_message: OnMessage,
        on_state: Callable[[str, str | None], None],
        spawn: Callable[[Awaitable], asyncio.Task],
        warn: Callable[[str], None],
        max_buffer: int = 10_000,
    ) -> None:
        self.service = service
        self.options = options
        self.state = "disconnected"
        self.last_error: str | None = None
        self.subscriptions: dict[str, tuple[int, dict[str, Any]]] = {}
        self.dropped = 0
        self.max_buffer = max_buffer
        self._on_message = on_message
        self._on_state = on_state
        self._spawn = spawn
        self._warn = warn
        self._queue: deque[Outgoing] = deque()
        self._pumping: asyncio.Task | None = None
        self._detach: dict[str, Callable[[], None]] = {}
        self._writable: asyncio.Future | None = None

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    @property
    def buffered(self) -> int:
        return len(self._queue)

    @property
    def congested(self) -> bool:
        return self.connected and len(self._queue) > HIGH_WATER

    async def writable(self) -> None:
        if self.congested:
            if self._writable is None or self._writable.done():
                self._writable = asyncio.get_running_loop().create_future()
            await self._writable

    def _maybe_writable(self) -> None:
        fut = self._writable
        if fut is not None and not fut.done() and (len(self._queue) <= LOW_WATER or not self.connected):
            fut.set_result(None)

    def set_reading(self, on: bool) -> None:
        """A user cannot keep up (off) or caught up (on): the broker holds back the devices whose messages reach
        in-process subscribers while any link is off, instead of the flow dropping what it cannot take."""
        hold = getattr(self.service, "hold_publishers", None)
        if hold is not None:
            hold(self, not on)

    def _set_state(self, state: str) -> None:
        self.state = state
        self._on_state(state, None)
        self._maybe_writable()

    def connect(self) -> None:
        if self.connected:
            return
        self._set_state("connected")
        for topic_filter in self.subscriptions:
            self._attach(topic_filter)
        if self.options.birth is not None:
            self.publish(self.options.birth)
        self._kick()

    async def disconnect(self) -> None:
        if not self.connected:
            return
        await self._flush_with_close()
        for detach in self._detach.values():
            detach()
        self._detach.clear()
        self.set_reading(True)  # a closed link holds no publisher back
        self._set_state("disconnected")

    async def close(self) -> None:
        await self.disconnect()
        self.set_reading(True)  # closed: it holds no publisher back, connected or not
        if self._queue:
            self._warn(f"{len(self._queue)} unsent message(s) dropped at close")
            self._queue.clear()

    def take_backlog(self) -> list[Outgoing]:
        items = list(self._queue)
        self._queue.clear()
        return items

    async def _flush_with_close(self) -> None:
        if self.options.close is not None:
            self._queue.append(self.options.close)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(GOODBYE_TIMEOUT):
                if self._pumping is not None and not self._pumping.done():
                    await asyncio.wait({self._pumping})  # it finishes, or ends at once if it was cancelled
                await self._drain()

    # ----- publishing ------------------------------------------------------------------------------------------
    def publish(self, item: Outgoing) -> None:
        if not self.connected and item.qos == 0:
            return  # as over TCP: QoS 0 while disconnected is dropped
        if len(self._queue) >= self.max_buffer:
            self._queue.popleft()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                self._warn(
                    f"publish buffer full ({self.max_buffer} messages): dropped the oldest, "
                    f"{self.dropped} dropped so far"
                )
        self._queue.append(item)
        if self.connected:
            self._kick()

    def _kick(self) -> None:
        if self._queue and (self._pumping is None or self._pumping.done()):
            self._pumping = self._spawn(self._drain())

    async def _drain(self) -> None:
        queue, publish = self._queue, self.service.publish
        while queue and self.connected:
            item = queue.popleft()
            try:
                await publish(item.topic, item.payload, item.qos, item.retain, origin=item.origin)
            except asyncio.CancelledError:
                queue.appendleft(item)
                raise
            except Exception as exc:  # noqa: BLE001 - one bad publish must not stop the others
                self._warn(f"embedded broker refused a publish to {item.topic!r}: {exc}")
            if self._writable is not None:
                self._maybe_writable()

    # ----- subscriptions ---------------------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, qos: int, options: dict[str, Any]) -> Awaitable | None:
        self.subscriptions[topic_filter] = (qos, options)
        if self.connected:
            old = self._detach.pop(topic_filter, None)
            if old is not None:
                old()
            self._attach(topic_filter)
        return None

    def unsubscribe(self, topic_filter: str) -> None:
        self.subscriptions.pop(topic_filter, None)
        detach = self._detach.pop(topic_filter, None)
        if detach is not None:
            detach()

    def _attach(self, topic_filter: str) -> None:
        max_qos = self.subscriptions[topic_filter][0]
        deliver = self._on_message
        matched = (topic_filter,)

        service = self.service

        def callback(topic: str, payload: bytes, qos: int, retain: bool) -> None:
            sender = getattr(service, "sender", None)  # the publishing device, when the service knows it
            origin = getattr(service, "origin", None)
            deliver(
                topic,
                payload,
                qos if qos < max_qos else max_qos,
                retain,
                PublishedBy(sender, getattr(service, "sender_owner", None), origin),
                matched,
            )

        self._detach[topic_filter] = self.service.subscribe(topic_filter, callback)
