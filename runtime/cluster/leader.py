"""One leader among the workers: a Redis lease (`SET NX PX`, renewed) carrying a fencing token (`INCR`).

The leader runs the cluster's singletons: the jobs that must run once, not once per worker (the history mover).
A leader that cannot renew in time (stopped, cut off from Redis) stops leading on its own clock as soon as
`lease` seconds have passed since its last renewal, and the lease has expired in Redis by then, so another worker
takes over. Every new lease gets a larger fencing token; `holds(token)` checks in Redis that a token still leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

from sofiaflow.runtime.cluster.lease import ACQUIRE, RELEASE, RENEW, parse_lease

log = logging.getLogger("sofiaflow.cluster")

LEASE_KEY = "sofiaflow:leader"
TOKEN_KEY = "sofiaflow:leader:token"


class Leadership:
    """Tries for the lease every `lease / 3` seconds; `on_elected()` when this worker gains it, `on_deposed()`
    when it loses it (both awaited, in order)."""

    def __init__(
        self,
        redis: Redis,
        worker: str,
        lease: float = 3.0,
        on_elected: Callable[[], Awaitable[None]] | None = None,
        on_deposed: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        if lease <= 0:
            raise ValueError(f"leader lease: must be positive seconds, not {lease!r}")
        self.redis = redis
        self.worker = worker
        self.lease = lease
        self.token: int | None = None
        self._value: str | None = None
        self._renewed = 0.0
        self._on_elected = on_elected
        self._on_deposed = on_deposed
        self._task: asyncio.Task | None = None

    @property
    def leading(self) -> bool:
        """Whether this worker leads now: it holds a lease renewed less than `lease` seconds ago."""
        return self.token is not None and time.monotonic() - self._renewed < self.lease

    async def start(self) -> None:
        await self.step()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cluster-leader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        value = self._value
        await self._lose()
        if value is not None:
            with contextlib.suppress(Exception):  # hand over now rather than after the lease
                await self.redis.eval(RELEASE, 1, LEASE_KEY, value)

    async def step(self) -> None:
        """Renew the lease (leader) or try to take it (the others)."""
        ms = str(int(self.lease * 1000))
        if self.token is not None:
            if not self.leading:  # too late: the lease may be someone else's already
                await self._lose()
                return
            started = time.monotonic()
            if await self.redis.eval(RENEW, 1, LEASE_KEY, self._value, ms):
                self._renewed = started
            else:
                await self._lose()
            return
        started = time.monotonic()
        token = await self.redis.eval(ACQUIRE, 2, LEASE_KEY, TOKEN_KEY, self.worker, ms)
        if token:
            self.token, self._value, self._renewed = int(token), f"{self.worker}|{int(token)}", started
            log.info("cluster: %s leads (fencing token %s)", self.worker, self.token)
            if self._on_elected is not None:
                await self._on_elected()

    async def holds(self, token: int) -> bool:
        """Whether `token` is the fencing token of the lease in Redis now."""
        lease = parse_lease(await self.redis.get(LEASE_KEY))
        return lease is not None and lease[1] == token

    async def _lose(self) -> None:
        if self.token is None:
            return
        log.info("cluster: %s no longer leads (token %s)", self.worker, self.token)
        self.token = self._value = None
        if self._on_deposed is not None:
            await self._on_deposed()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - Redis away: leadership lapses by the clock
                log.warning("cluster: leader lease step failed: %s", exc)
                if self.token is not None and not self.leading:
                    await self._lose()


async def current_leader(redis: Redis) -> tuple[str, int] | None:
    """(worker id, fencing token) of the current lease, or None."""
    return parse_lease(await redis.get(LEASE_KEY))
