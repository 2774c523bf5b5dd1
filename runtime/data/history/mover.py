"""`HistoryMover`: moves instances older than their ontology's real-time window out of the real-time DB.

Ontologies with `history` on go to the `HistoryStore`; those with only a window are deleted when they
expire (as the seed platform does). A move goes in batches, each:

1. read up to `batch_size` expired instances (oldest first);
2. write a journal naming the batch's ids and the files it will write;
3. write the files (each appears whole: temporary name, flush, rename);
4. delete the ids from the real-time DB;
5. remove the journal.

Killed anywhere, the next run first settles every journal: files all present means step 4 may not have
finished, so the ids are deleted (again, harmlessly); a file missing means the batch never reached the
history, so its files are removed and the instances, still in the real-time DB, move again later.
Either way every instance ends up exactly once in the union of the real-time DB and the history.
After the batches, each day's files are merged into one (`HistoryStore.compact`, journaled the same way).
Only one mover runs at a time per history folder (a lock file); another one finds it busy and returns.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sofiaflow.runtime.data.history.parquet_store import TIME_PATH, HistoryStore
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.data.rtdb import RealtimeStore

log = logging.getLogger("sofiaflow.history")

DAY_MS = 24 * 3600 * 1000
TIME_FIELD = ".".join(TIME_PATH)


@dataclass
class MoveReport:
    """What one run did, per ontology: instances moved to history, deleted as expired, and journals
    settled from an interrupted run (`recovered`). `busy` when another mover held the lock."""

    moved: dict[str, int] = field(default_factory=dict)
    expired: dict[str, int] = field(default_factory=dict)
    recovered: dict[str, int] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    busy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "moved": self.moved,
            "expired": self.expired,
            "recovered": self.recovered,
            "errors": self.errors,
            "busy": self.busy,
        }


class HistoryMover:
    """Moves expired instances of every ontology from `store` to `history` (see the module docstring)."""

    def __init__(
        self,
        registry: OntologyRegistry,
        store: RealtimeStore,
        history: HistoryStore,
        batch_size: int = 5000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.registry = registry
        self.store = store
        self.history = history
        self.batch_size = batch_size
        self.clock = clock
        self._stopping = threading.Event()

    def request_stop(self) -> None:
        """Make a run in progress return after its current batch."""
        self._stopping.set()

    def run(self, ontologies: list[str] | None = None, max_batches: int = 1_000_000) -> MoveReport:
        """One pass over `ontologies` (default: all with a real-time window), at most `max_batches`
        batches per ontology."""
        report = MoveReport()
        self._stopping.clear()
        with self._lock() as locked:
            if not locked:
                report.busy = True
                return report
            names = ontologies if ontologies is not None else [o.name for o in self.registry.list()]
            for name in names:
                if self._stopping.is_set():
                    break
                try:
                    self._run_one(name, report, max_batches)
                except Exception as exc:  # noqa: BLE001 - one ontology's failure must not stop the others
                    log.exception("history: ontology %s", name)
                    report.errors[name] = f"{type(exc).__name__}: {exc}"
        return report

    def recover(self, ontology: str) -> int:
        """Settle the journals an interrupted run left for `ontology`; how many moves and merges were settled."""
        settled = self.history.settle_compactions(ontology)
        journals = self.history.journals(ontology)
        for batch, ids, files in journals:
            if all(f.exists() for f in files):
                self.store.delete(ontology, {"_id": {"$in": ids}})
            else:
                for f in files:
                    self.history.remove_file(f)
            self.history.remove_journal(ontology, batch)
        return settled + len(journals)

    # ----- internals --------------------------------------------------------------------------------
    def _run_one(self, name: str, report: MoveReport, max_batches: int) -> None:
        recovered = self.recover(name)
        if recovered:
            report.recovered[name] = recovered
        ontology = self.registry.get(name)
        if not ontology.realtime_window_days:
            return
        # expiry reads by time: keep that path indexed (idempotent; the runtime does it too)
        self.store.ensure_collection(name, [*ontology.indexes, TIME_FIELD], list(ontology.unique))
        cutoff = int(self.clock() * 1000) - ontology.realtime_window_days * DAY_MS
        expired = {TIME_FIELD: {"$lt": cutoff}}
        if not ontology.history:
            count = self.store.delete(name, expired)
            if count:
                report.expired[name] = count
            return
        moved = 0
        for _ in range(max_batches):
            if self._stopping.is_set():
                break
            docs = self.store.find(name, expired, None, [(TIME_FIELD, 1)], 0, self.batch_size)
            if not docs:
                break
            self._move_batch(name, docs)
            moved += len(docs)
        if moved:
            self.history.compact(name)
            report.moved[name] = moved
            log.info("history: moved %d instances of %s", moved, name)

    def _move_batch(self, name: str, docs: list[dict[str, Any]]) -> None:
        batch = f"{int(self.clock() * 1000):013d}-{uuid.uuid4().hex[:12]}"
        plan = self.history.plan_files(name, batch, docs)
        ids = [doc["_id"] for doc in docs]
        self.history.write_journal(name, batch, ids, list(plan))
        for path, part in plan.items():
            self.history.write_file(path, part)
        self.store.delete(name, {"_id": {"$in": ids}})
        self.history.remove_journal(name, batch)

    @contextmanager
    def _lock(self) -> Iterator[bool]:
        self.history.root.mkdir(parents=True, exist_ok=True)
        path: Path = self.history.root / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
