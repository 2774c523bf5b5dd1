"""The API Manager's own worker threads for its real-time DB work: the event loop never waits on a query.

`Workers.run(fn, *args)` awaits `fn(*args)` run in one of a few dedicated threads. It costs less per call than
`asyncio.to_thread` (no executor, no concurrent.futures future chained to an asyncio one: 12-15 against 25-30 us
of CPU per call), and API calls do not queue behind the other blocking work of the runtime in the default executor,
nor it behind them. A thread takes one call at a time by default (`batch`): taking several queued calls at once
saves a wake-up per call but makes the later ones wait for a slow first one (a large insert) while other threads
are idle. A call the caller stopped waiting for (cancelled) is still run, and its result dropped.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

THREADS = 4
"""Threads: a write waiting on a lock (SQLite) or a slow query (PostgreSQL) leaves others to the reads."""
BATCH = 1
"""Calls a thread takes from the queue at once, runs in turn, then hands back their results with one wake-up."""

_STOP = object()


class Workers:
    """See the module docstring. Threads start with the first call; `close()` ends them (later calls start
    new ones)."""

    def __init__(self, threads: int = THREADS, batch: int = BATCH, name: str = "api-manager") -> None:
        if threads < 1 or batch < 1:
            raise ValueError(f"threads and batch must be at least 1, got {threads} and {batch}")
        self._size, self._batch, self._name = threads, batch, name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread (in a copy of the caller's context); its result or its exception."""
        if not self._threads:
            self._start()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((loop, future, contextvars.copy_context(), fn, args))
        return await future

    def _start(self) -> None:
        with self._lock:
            while len(self._threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def close(self, timeout: float = 10.0) -> None:
        """End the threads once the calls already queued are answered."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._queue.put(_STOP)
        for thread in threads:
            thread.join(timeout)

    def _work(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            items = [get()]
            try:
                while len(items) < self._batch and items[-1] is not _STOP:
                    items.append(get_nowait())
            except queue.Empty:
                pass
            stop = items[-1] is _STOP
            if stop:
                items.pop()
            done: dict[asyncio.AbstractEventLoop, list] = {}
            for loop, future, context, fn, args in items:
                try:
                    outcome = (future, True, context.run(fn, *args))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller, as to_thread does
                    outcome = (future, False, exc)
                done.setdefault(loop, []).append(outcome)
            for loop, outcomes in done.items():
                try:
                    loop.call_soon_threadsafe(_settle, outcomes)
                except RuntimeError:  # that loop is closed: nobody waits any more
                    pass
            if stop:
                return


def _settle(outcomes: list[tuple[asyncio.Future, bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # cancelled while it ran
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
