"""Debug output and node status from every worker reach the editor on every worker.

Each worker sends its own `debug` and `status/<node>` events (runtime/core/events.py) on a Redis pub/sub
channel and publishes the other workers' on its own event bus, where `/comms` sockets and the editor's
debug sidebar take them as they take local ones, with the same per-user filtering (every worker runs
the same flows, so the node an event is about resolves to the same tab and owner everywhere). An event
is sent by the worker where it happened only, and a worker ignores its own: no duplicates. Events sent
while a worker is disconnected from Redis are lost to the other workers.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.cluster.shared_channel import Channel

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis

    from sofiaflow.runtime.core.events import EventBus

CHANNEL = "sofiaflow:editor-events"
TOPICS = ("debug", "status/#")


def _relayed(topic: Any) -> bool:
    return isinstance(topic, str) and (topic == "debug" or topic.startswith("status/"))


class EditorEventRelay:
    def __init__(self, redis: Redis, bus: EventBus, worker: str, channel: str = CHANNEL) -> None:
        self.bus = bus
        self.channel = Channel(redis, channel, worker, self._receive)
        self._inbound = threading.local()  # set while this worker publishes another worker's event
        self._unsubscribe: list[Callable[[], None]] = []

    async def start(self) -> None:
        await self.channel.start()
        self._unsubscribe = [self.bus.subscribe(topic, self._local) for topic in TOPICS]

    async def stop(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe = []
        await self.channel.stop()

    def _local(self, topic: str, data: Any) -> None:
        if not getattr(self._inbound, "active", False):
            self.channel.send([topic, data])

    def _receive(self, note: Any) -> None:
        if not (isinstance(note, list) and len(note) == 2 and _relayed(note[0])):
            return
        self._inbound.active = True
        try:
            self.bus.publish(note[0], note[1])
        finally:
            self._inbound.active = False
