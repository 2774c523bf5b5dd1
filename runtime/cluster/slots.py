"""Run-once firings of scheduled sources (inject on an interval, a cron or once after deploy).

Every worker runs the same flows, so every worker's inject timer ticks; a tick fires only when its worker claims
the tick's slot in Redis first: `SET fire:<node>:<slot> <worker>|<token> NX PX <ttl>`. A slot names the scheduled
instant on a grid all workers share (an interval's multiple of the wall clock, a cron's second, a deploy's
revision number for "once"), so whichever live worker ticks first fires it and the others skip it, and a leader
change (or any worker stopping) loses no slot. A worker that was stopped and comes back late does not fire slots
others fired (their claim is still there, kept for `ttl`) nor slots older than half the ttl (refused on its own
clock before asking Redis)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("sofiaflow.cluster")

SLOT_PREFIX = "fire:"
MIN_TTL = 60.0


def slot_of(due: float, period: float | None, revision: int) -> str:
    """The slot of a tick due at wall time `due`: `<n>` (n periods since the epoch, rounded) for an interval,
    `c<epoch second>` for a cron (period None), `once:<revision>` for the one firing after a deploy (due 0)."""
    if due <= 0:
        return f"once:{revision}"
    if period:
        return str(round(due / period))
    return f"c{round(due)}"


def interval_slot(due: float, period: float, last: int | None) -> int:
    """The slot of an interval tick due at `due`, following this node's previous slot `last` on this worker.

    `round(due / period)` alone can skip or repeat a slot when a worker's ticks sit near the middle of a period
    (ties round to even; sums of floats drift across the boundary), so a tick within half a period (and a
    little) of the slot after `last` takes that slot."""
    position = due / period
    if last is not None and abs(position - (last + 1)) <= 0.5 + 1e-6:
        return last + 1
    return round(position)


class FiringSlots:
    """The FIRING_SLOTS service: `fire(node_id, due, period, callback)` calls `callback` when this worker claims
    the slot; absent in single-process mode, where sources fire as they always did."""

    def __init__(
        self,
        redis: Redis,
        worker: str,
        revision: Callable[[], int],
        fencing: Callable[[], int | None] = lambda: None,
        settled: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.worker = worker
        self._revision = revision
        self._fencing = fencing
        self._settled = settled
        self._tasks: set[asyncio.Task] = set()
        self.claimed = 0
        self.skipped = 0
        self._last: dict[str, int] = {}

    def fire(self, node_id: str, due: float, period: float | None, callback: Callable[[], Any]) -> None:
        """Claim the slot of the tick due at `due` (0: the "once" firing) and, when claimed, run `callback`."""
        ttl = max(MIN_TTL, 3 * (period or 0))
        if due > 0 and time.time() - due > ttl / 2:
            self.skipped += 1
            log.info("cluster: %s skips a tick due %.1f s ago", node_id, time.time() - due)
            return
        if due > 0 and period:
            number = self._last[node_id] = interval_slot(due, period, self._last.get(node_id))
            slot: str | None = str(number)
        else:
            slot = None if due <= 0 else slot_of(due, period, 0)
        if due <= 0:
            ttl = 86400.0
        task = asyncio.get_running_loop().create_task(self._claim(node_id, slot, ttl, callback))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _claim(self, node_id: str, slot: str | None, ttl: float, callback: Callable[[], Any]) -> None:
        if slot is None:  # "once after deploy": the revision's number, known once the deploy has settled here
            if self._settled is not None:
                await self._settled()
            slot = slot_of(0.0, None, self._revision())
        key = f"{SLOT_PREFIX}{node_id}:{slot}"
        value = f"{self.worker}|{self._fencing() or 0}"
        try:
            claimed = await self.redis.set(key, value, nx=True, px=int(ttl * 1000))
        except Exception as exc:  # noqa: BLE001 - Redis away: nobody can claim; the tick is lost, not doubled
            log.warning("cluster: slot %s not claimed: %s", key, exc)
            return
        if claimed:
            self.claimed += 1
            callback()
        else:
            self.skipped += 1

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
