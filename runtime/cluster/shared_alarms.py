"""Alarm changes made on one worker reach the others: their Alarms page refreshes and their `/comms` sockets get
the `alarms` event.

The alarms themselves are rows of the config DB every worker shares (runtime/data/alarms.py); what a worker
does not see is a change another worker made: the store's change counter (`AlarmStore.version`, which the
Alarms page polls) and the `alarms` events on the event bus only follow changes made in their own process.
Each worker sends its store's changes on a Redis pub/sub channel; a worker receiving one moves its counter
(`AlarmStore.changed_elsewhere`) and publishes the event on its own bus, with the same payload as a local one
(`{"event", "alarm"}`), where `/comms` filters it per user as it does local ones. A worker ignores its own notes,
so each change is published once on each worker's bus.

The store's listeners (`on_change`) are not called for other workers' changes: an alarm node tells its flow what a
person did (acknowledged, cleared) from the listener of the worker where it was done, and every worker runs the
same flows, so the node that created the alarm runs there too; relaying the change to the listeners would make
it come out of the flow once per worker. Notes sent while a worker is disconnected from Redis are lost to the
others (shared_channel.py); the page then catches up with the next change it hears of, or when reloaded.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.cluster.shared_channel import Channel

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis

    from sofiaflow.runtime.core.events import EventBus
    from sofiaflow.runtime.data.alarms import AlarmEvent, AlarmStore

CHANNEL = "sofiaflow:alarm-changes"
TOPIC = "alarms"


class AlarmRelay:
    def __init__(
        self, redis: Redis, store: AlarmStore, bus: EventBus, worker: str, channel: str = CHANNEL
    ) -> None:
        self.store = store
        self.bus = bus
        self.channel = Channel(redis, channel, worker, self._receive)
        self._unlisten: Callable[[], None] | None = None
        self._inbound = threading.local()
        self.received = 0

    async def start(self) -> None:
        await self.channel.start()
        self._unlisten = self.store.on_change(self._local)

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        await self.channel.stop()

    def _local(self, event: AlarmEvent) -> None:
        self.channel.send({"event": event.event, "alarm": event.alarm.as_dict()})

    def _receive(self, note: Any) -> None:
        if not (
            isinstance(note, dict)
            and isinstance(note.get("event"), str)
            and isinstance(note.get("alarm"), dict)
        ):
            return
        self.received += 1
        self.store.changed_elsewhere()
        self.bus.publish(TOPIC, {"event": note["event"], "alarm": note["alarm"]})
