"""Quotas: calls per minute per (API, key), counted in memory in fixed one-minute windows (in Redis, shared by
every worker, in cluster mode: runtime/cluster/shared_quota.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

WINDOW = 60.0
_LIMIT_ENTRIES = 100_000


class Quota(Protocol):
    """What the API Manager's call path asks of a quota counter (in memory here, or in Redis in a cluster)."""

    async def acquire(self, key: tuple[str, str], limit: int) -> float: ...

    def forget(self, match: Callable[[object], bool]) -> None: ...


class QuotaCounter:
    """`take(key, limit)` counts one call; it answers 0 when allowed, else the seconds until the next window."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, window: float = WINDOW) -> None:
        self._clock = clock
        self.window = window
        self._windows: dict[object, list] = {}  # key -> [window start, calls]
        self._lock = threading.Lock()

    def take(self, key: object, limit: int) -> float:
        if limit <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            entry = self._windows.get(key)
            if entry is None or now - entry[0] >= self.window:
                if entry is None and len(self._windows) >= _LIMIT_ENTRIES:
                    self._drop_expired(now)
                entry = self._windows[key] = [now, 0]
            if entry[1] >= limit:
                return max(entry[0] + self.window - now, 0.001)
            entry[1] += 1
            return 0.0

    async def acquire(self, key: tuple[str, str], limit: int) -> float:
        """`take` for the call path; in cluster mode a shared counter (runtime/cluster/shared_quota.py) answers
        this instead, counting the calls of every worker."""
        return self.take(key, limit)

    def _drop_expired(self, now: float) -> None:
        self._windows = {k: v for k, v in self._windows.items() if now - v[0] < self.window}

    def forget(self, match: Callable[[object], bool]) -> None:
        """Drop the windows of keys `match` selects (an API removed)."""
        with self._lock:
            self._windows = {k: v for k, v in self._windows.items() if not match(k)}
