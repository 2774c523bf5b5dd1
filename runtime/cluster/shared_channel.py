"""A Redis pub/sub channel between the workers: each sends JSON notes, every other worker receives them.

For notifications where losing one while a worker is disconnected is acceptable (debug output, node
status, hints to drop live sessions): the state they are about lives elsewhere (the config DB, Redis).
A note carries its sender's worker id, so a worker never receives its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("sofiaflow.cluster")

QUEUE_LIMIT = 10_000
RECONNECT_DELAY = 0.5


class Channel:
    """`send(note)` from any thread; `on_note(note)` is called, in the event loop, for other workers' notes."""

    def __init__(self, redis: Redis, name: str, worker: str, on_note: Callable[[Any], None]) -> None:
        self._redis = redis
        self.name = name
        self.worker = worker
        self._on_note = on_note
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None
        self._outbox: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self._tasks: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._tasks = [self._loop.create_task(self._writer()), self._loop.create_task(self._reader())]
        await asyncio.wait_for(self.subscribed.wait(), 10)

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def send(self, note: Any) -> None:
        """Queue `note` (JSON-able; anything else is sent as its text) for the other workers."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        text = json.dumps({"w": self.worker, "n": note}, default=str, separators=(",", ":"))
        if threading.get_ident() == self._thread:
            self._put(text)
        else:
            loop.call_soon_threadsafe(self._put, text)

    def _put(self, text: str) -> None:
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _writer(self) -> None:
        while True:
            text = await self._outbox.get()
            batch = [text]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for item in batch:
                        pipe.publish(self.name, item)
                    await pipe.execute()
            except Exception as exc:  # noqa: BLE001 - notes may be lost (see the module docstring)
                self.dropped += len(batch)
                log.warning("cluster channel %s: %d notes not sent: %s", self.name, len(batch), exc)
                await asyncio.sleep(RECONNECT_DELAY)

    async def _reader(self) -> None:
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.name)
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - resubscribe after a dropped connection
                log.warning("cluster channel %s: listening again after %s", self.name, exc)
                await asyncio.sleep(RECONNECT_DELAY)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pubsub.aclose(), 2.0)  # bounded: a stop never waits on it

    def _receive(self, data: str) -> None:
        try:
            envelope = json.loads(data)
            if envelope.get("w") == self.worker:
                return
            self._on_note(envelope.get("n"))
        except Exception:  # a bad note or a failing handler must not stop the channel
            log.exception("cluster channel %s: note not handled", self.name)
