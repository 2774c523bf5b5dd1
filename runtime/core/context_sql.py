"""A context store persisted in the config DB, cached in memory and flushed periodically."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable

from sqlalchemy import Engine, delete, insert, select

from sofiaflow.runtime.data.config_db import context_entries

log = logging.getLogger("sofiaflow.context")


class SqlContextStore:
    """Context that survives restarts. Writes are batched: every `flush_interval` s and at close."""

    def __init__(self, engine: Engine, name: str = "persistent", flush_interval: float = 5.0) -> None:
        self._engine = engine
        self.name = name
        self.flush_interval = flush_interval
        self._data: dict[str, dict] = {}
        self._dirty: set[str] = set()
        self._deleted: set[str] = set()
        self._task: asyncio.Task | None = None

    def get_scope(self, scope: str, create: bool = False) -> dict | None:
        data = self._data.get(scope)
        if data is None and create:
            data = self._data[scope] = {}
        return data

    def mark_dirty(self, scope: str) -> None:
        self._dirty.add(scope)

    def delete_scope(self, scope: str) -> None:
        if self._data.pop(scope, None) is not None:
            self._deleted.add(scope)
            self._dirty.discard(scope)

    def scopes(self) -> Iterable[str]:
        return list(self._data)

    async def open(self) -> None:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(context_entries.c.scope, context_entries.c.data).where(
                    context_entries.c.store == self.name
                )
            ).all()
        self._data = {scope: json.loads(data) for scope, data in rows}
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flusher())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # ended, not just asked to end
        self.flush()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                self.flush()
            except Exception:
                log.exception("context store %s failed to flush", self.name)

    def flush(self) -> None:
        """Write every changed scope now."""
        if not self._dirty and not self._deleted:
            return
        dirty, deleted = self._dirty, self._deleted
        self._dirty, self._deleted = set(), set()
        with self._engine.begin() as conn:
            for scope in dirty | deleted:
                conn.execute(
                    delete(context_entries).where(
                        (context_entries.c.store == self.name) & (context_entries.c.scope == scope)
                    )
                )
            for scope in dirty:
                if scope in self._data:
                    conn.execute(
                        insert(context_entries).values(
                            store=self.name, scope=scope, data=json.dumps(self._data[scope], default=str)
                        )
                    )
