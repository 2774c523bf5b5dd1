"""Who is in the cluster: every worker writes a heartbeat to Redis with a TTL; the live workers are those whose
heartbeat has not expired.

A heartbeat is a JSON object under `sofiaflow:worker:<id>` (expires after `ttl` seconds): the worker's id and
address, the flow revision it runs (rev and sequence number), uptime, messages per second, CPU and memory (psutil),
the time of the beat and what it leads (e.g. ["singletons"] for the leader)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("sofiaflow.cluster")

HEARTBEAT_PREFIX = "sofiaflow:worker:"


def worker_id(port: int) -> str:
    """This worker's id: SOFIAFLOW_WORKER_ID, else `<hostname>:<port>`."""
    return os.environ.get("SOFIAFLOW_WORKER_ID") or f"{socket.gethostname()}:{port}"


class ProcessStats:
    """CPU (percent of one core since the previous reading) and resident memory of this process."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._process.cpu_percent(None)  # the first reading starts the measurement

    def read(self) -> dict[str, float]:
        return {
            "cpu": round(self._process.cpu_percent(None), 1),
            "memory": self._process.memory_info().rss,
        }


class Rate:
    """Messages per second from a growing counter, between two readings."""

    def __init__(self, counter: Callable[[], int]) -> None:
        self._counter = counter
        self._last = (time.monotonic(), counter())

    def read(self) -> float:
        now, total = time.monotonic(), self._counter()
        then, before = self._last
        self._last = (now, total)
        return round((total - before) / (now - then), 2) if now > then else 0.0


class Membership:
    """Beats every `interval` seconds (and on `beat()`), each beat living `ttl` seconds."""

    def __init__(
        self,
        redis: Redis,
        worker: str,
        address: str,
        status: Callable[[], dict[str, Any]],
        interval: float = 1.0,
        ttl: float = 5.0,
    ) -> None:
        self.redis = redis
        self.id = worker
        self.address = address
        self.interval = interval
        self.ttl = ttl
        self._status = status
        self._started = time.time()
        self._task: asyncio.Task | None = None
        self._stats = ProcessStats()

    def heartbeat(self) -> dict[str, Any]:
        now = time.time()
        return {
            "id": self.id,
            "address": self.address,
            "pid": os.getpid(),
            "started": self._started,
            "uptime": round(now - self._started, 1),
            "heartbeat": now,
            **self._stats.read(),
            **self._status(),
        }

    async def beat(self) -> None:
        await self.redis.set(
            HEARTBEAT_PREFIX + self.id, json.dumps(self.heartbeat()), px=int(self.ttl * 1000)
        )

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cluster-heartbeat")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(Exception):  # leaving: the others see it gone now, not after the TTL
            await self.redis.delete(HEARTBEAT_PREFIX + self.id)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except Exception as exc:  # noqa: BLE001 - Redis away: the next beat tries again
                log.warning("cluster: heartbeat not written: %s", exc)

    async def members(self) -> list[dict[str, Any]]:
        return await live_workers(self.redis)


async def live_workers(redis: Redis) -> list[dict[str, Any]]:
    """Every live worker's last heartbeat, by id."""
    keys = [key async for key in redis.scan_iter(match=HEARTBEAT_PREFIX + "*", count=200)]
    if not keys:
        return []
    values = await redis.mget(keys)
    workers = []
    for value in values:
        if value:
            with contextlib.suppress(ValueError):
                workers.append(json.loads(value))
    return sorted(workers, key=lambda w: str(w.get("id")))
