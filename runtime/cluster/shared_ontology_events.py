"""Ontology change events across workers: every change published on one worker reaches the listeners
(`ontology-subscribe` nodes, SSAP subscriptions) of every worker, once per listener.

The changes go through a Redis stream (`sofiaflow:ontology-events`, trimmed to about `MAX_LEN` entries):
a worker appends its own changes (its listeners already had them, in-process) and reads the others' in
order from the last id it read, so a reconnect to Redis neither loses nor repeats an event.

Another worker's changes reach the listeners that subscribed with `cluster=True` (SSAP subscriptions, which
live on one worker); a flow node every worker runs (ontology-subscribe) subscribes with `cluster=False` and
hears only its own worker's changes, so each change runs its flow once in the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sofiaflow.runtime.data.events import OntologyEvents

log = logging.getLogger("sofiaflow.cluster")

STREAM = "sofiaflow:ontology-events"
MAX_LEN = 100_000
QUEUE_LIMIT = 100_000
RETRY_DELAY = 0.5


class OntologyEventStream:
    """Relays `events` (this worker's OntologyEvents) to and from the other workers; see the module docstring."""

    def __init__(self, redis: Redis, events: OntologyEvents, worker: str, stream: str = STREAM) -> None:
        self._redis = redis
        self.events = events
        self.worker = worker
        self.stream = stream
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue(QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        last: Any = await self._redis.xrevrange(self.stream, count=1)
        start_id = last[0][0] if last else "0-0"  # what other workers wrote before this one joined is past
        self.events.relay = self._relay
        self._tasks = [self._loop.create_task(self._writer()), self._loop.create_task(self._reader(start_id))]

    async def stop(self) -> None:
        if self.events.relay == self._relay:
            self.events.relay = None
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        while not self._outbox.empty():  # what this worker changed last still reaches the others
            with contextlib.suppress(Exception):
                await self._append([self._outbox.get_nowait()])

    def _relay(self, ontology: str, event: str, docs: list[dict[str, Any]]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        entry = {"w": self.worker, "o": ontology, "e": event, "d": json.dumps(docs, default=str)}
        if threading.get_ident() == self._thread:
            self._put(entry)
        else:
            loop.call_soon_threadsafe(self._put, entry)

    def _put(self, entry: dict[str, str]) -> None:
        try:
            self._outbox.put_nowait(entry)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("ontology events: outbox full, a change of %s is not shared", entry["o"])

    async def _append(self, batch: list[dict[str, str]]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry in batch:
                pipe.xadd(self.stream, entry, maxlen=MAX_LEN, approximate=True)  # type: ignore[arg-type]
            await pipe.execute()

    async def _writer(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            while True:
                try:
                    await self._append(batch)
                    break
                except asyncio.CancelledError:
                    for entry in batch:  # stop() sends them
                        self._put(entry)
                    raise
                except Exception as exc:  # noqa: BLE001 - Redis away: keep the batch, try again
                    log.warning("ontology events: cannot append to %s (%s); retrying", self.stream, exc)
                    await asyncio.sleep(RETRY_DELAY)

    async def _reader(self, last: str) -> None:
        while True:
            try:
                answer: Any = await self._redis.xread({self.stream: last}, count=500, block=1000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - read again from the same id once Redis answers
                log.warning("ontology events: cannot read %s (%s); retrying", self.stream, exc)
                await asyncio.sleep(RETRY_DELAY)
                continue
            for _stream, entries in answer or ():
                for entry_id, fields in entries:
                    last = entry_id
                    if fields.get("w") == self.worker:
                        continue
                    try:
                        self.events.deliver(fields["o"], fields["e"], json.loads(fields["d"]))
                    except Exception:  # a bad entry must not stop the others
                        log.exception("ontology events: entry %s not delivered", entry_id)
