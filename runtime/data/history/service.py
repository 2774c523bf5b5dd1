"""`HistoryService`: runs the `HistoryMover` every `interval` seconds inside the runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sofiaflow.runtime.data.history.mover import HistoryMover, MoveReport
from sofiaflow.runtime.data.history.parquet_store import HistoryStore

log = logging.getLogger("sofiaflow.history")


class HistoryService:
    """The runtime's ``"history"`` service: the store for queries, and the scheduled move.

    `interval` 0 schedules nothing (`run_now()` still moves)."""

    def __init__(self, mover: HistoryMover, interval: float) -> None:
        self.mover = mover
        self.store: HistoryStore = mover.history
        self.interval = interval
        self.last_report: MoveReport | None = None
        self._task: asyncio.Task | None = None
        self._running: asyncio.Future | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="history-mover")

    async def run_now(self, ontologies: list[str] | None = None) -> MoveReport:
        """Move what has expired now (in a worker thread); the report."""
        self._running = asyncio.ensure_future(asyncio.to_thread(self.mover.run, ontologies))
        try:
            report = await asyncio.shield(self._running)
        finally:
            self._running = None
        self.last_report = report
        return report

    async def stop(self) -> None:
        """Stop scheduling and wait for a move in progress (its batches are whole, but let it finish)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        running = self._running
        if running is not None:
            self.mover.request_stop()
            with contextlib.suppress(Exception):
                await running

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                report = await self.run_now()
            except Exception:  # noqa: BLE001 - a failed pass is logged; the next one tries again
                log.exception("history: the scheduled move failed")
                continue
            for name, error in report.errors.items():
                log.error("history: ontology %s: %s", name, error)
