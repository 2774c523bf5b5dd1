"""`HistoryStore`: historical instances as Parquet files, one folder per ontology and day.

Layout under the root folder::

    <ontology>/day=2026-11-24/<batch id>.parquet   columns: _id (string), timestampMillis (int64),
                                                   doc (the instance without _id, as JSON text)
    <ontology>/_journal/<batch id>.json           a move in progress (see `HistoryMover`)
    <ontology>/_compact/<id>.json                 a merge of one day's files in progress

A move writes one file per day it touches; `compact` then merges each day's files into one, so queries
open few files. The merge too is journaled: the merged file is renamed into place before the files it
replaces are deleted, and `settle_compactions` finishes or undoes a merge that was interrupted.

Files appear whole or not at all: each is written to a temporary name, flushed to disk and renamed.
Queries use the real-time DB's filter language; files outside the days a filter allows on
`contextData.timestampMillis`, and rows outside an `_id` equality or `$in`, are skipped without
decoding their documents.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sofiaflow.runtime.data.history.query import count as count_docs
from sofiaflow.runtime.data.history.query import select
from sofiaflow.runtime.data.rtdb.base import check_collection_name
from sofiaflow.runtime.data.rtdb.filters import And, Cond, parse_filter

Doc = dict[str, Any]
TIME_PATH = ("contextData", "timestampMillis")
JOURNAL = "_journal"
COMPACTION = "_compact"
COMPACT_LIMIT = 256 * 1024 * 1024
"""A day's files are merged into one while they hold less than this many bytes in all."""


def _arrow() -> Any:
    """pyarrow, imported on first use: a runtime whose ontologies keep no history never loads it (~50 MB)."""
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401 - makes pa.compute available
    import pyarrow.parquet  # noqa: F401 - makes pa.parquet available

    return pa


def _schema(pa: Any) -> Any:
    return pa.schema([("_id", pa.string()), ("timestampMillis", pa.int64()), ("doc", pa.string())])


def day_of(millis: int) -> date:
    """The UTC day of an epoch-milliseconds time."""
    return datetime.fromtimestamp(millis / 1000, UTC).date()


def timestamp_millis(doc: Doc) -> int | None:
    context = doc.get("contextData")
    value = context.get("timestampMillis") if isinstance(context, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class HistoryStore:
    """Parquet files of historical instances under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    # ----- writing ---------------------------------------------------------------------------------
    def folder(self, ontology: str) -> Path:
        return self.root / check_collection_name(ontology)

    def plan_files(self, ontology: str, batch: str, docs: list[Doc]) -> dict[Path, list[Doc]]:
        """Where the documents of batch `batch` go: one file per day."""
        by_day: dict[Path, list[Doc]] = {}
        for doc in docs:
            millis = timestamp_millis(doc)
            if millis is None:
                raise ValueError(
                    f"ontology {ontology!r}: instance {doc.get('_id')!r} has no "
                    "contextData.timestampMillis; it cannot go to history"
                )
            path = self.folder(ontology) / f"day={day_of(millis).isoformat()}" / f"{batch}.parquet"
            by_day.setdefault(path, []).append(doc)
        return by_day

    def write_file(self, path: Path, docs: list[Doc]) -> None:
        """Write one Parquet file whole: temporary name, flush to disk, rename."""
        path.parent.mkdir(parents=True, exist_ok=True)
        pa = _arrow()
        table = pa.table(
            {
                "_id": [str(d["_id"]) for d in docs],
                "timestampMillis": [timestamp_millis(d) for d in docs],
                "doc": [
                    json.dumps({k: v for k, v in d.items() if k != "_id"}, separators=(",", ":"))
                    for d in docs
                ],
            },
            schema=_schema(pa),
        )
        self._write_table(path, table)

    @staticmethod
    def _write_table(path: Path, table: Any) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            _arrow().parquet.write_table(table, fh, compression="zstd")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def remove_file(self, path: Path) -> None:
        for candidate in (path, path.with_name(path.name + ".tmp")):
            candidate.unlink(missing_ok=True)

    def drop(self, ontology: str) -> None:
        shutil.rmtree(self.folder(ontology), ignore_errors=True)

    # ----- journal of moves in progress ------------------------------------------------------------
    def journal_path(self, ontology: str, batch: str) -> Path:
        return self.folder(ontology) / JOURNAL / f"{batch}.json"

    def write_journal(self, ontology: str, batch: str, ids: list[str], files: list[Path]) -> None:
        _write_json(
            self.journal_path(ontology, batch),
            {"ids": ids, "files": [str(f.relative_to(self.root)) for f in files]},
        )

    def journals(self, ontology: str) -> list[tuple[str, list[str], list[Path]]]:
        """Moves begun and not finished: (batch, ids, files)."""
        folder = self.folder(ontology) / JOURNAL
        out = []
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
            entry = json.loads(path.read_text(encoding="utf-8"))
            out.append((path.stem, entry["ids"], [self.root / f for f in entry["files"]]))
        for stale in folder.glob("*.json.tmp") if folder.is_dir() else ():
            stale.unlink(missing_ok=True)  # a journal never completed: its move never began
        return out

    def remove_journal(self, ontology: str, batch: str) -> None:
        path = self.journal_path(ontology, batch)
        path.unlink(missing_ok=True)
        _fsync_dir(path.parent)

    # ----- merging a day's files ----------------------------------------------------------------
    def compact(self, ontology: str) -> int:
        """Merge each day's files of `ontology` into one; how many days were merged."""
        merged = 0
        for day_dir in sorted(self.folder(ontology).glob("day=*")):
            files = sorted(day_dir.glob("*.parquet"))
            if len(files) < 2 or sum(f.stat().st_size for f in files) > COMPACT_LIMIT:
                continue
            target = day_dir / f"c-{uuid.uuid4().hex}.parquet"
            journal = self.folder(ontology) / COMPACTION / f"{target.stem}.json"
            _write_json(
                journal,
                {
                    "target": str(target.relative_to(self.root)),
                    "sources": [str(f.relative_to(self.root)) for f in files],
                },
            )
            pa = _arrow()
            table = pa.concat_tables(pa.parquet.read_table(f, schema=_schema(pa)) for f in files)
            self._write_table(target, table)
            for f in files:
                f.unlink(missing_ok=True)
            _fsync_dir(day_dir)
            journal.unlink(missing_ok=True)
            merged += 1
        return merged

    def settle_compactions(self, ontology: str) -> int:
        """Finish (merged file in place: delete its sources) or undo (drop the partial merged file) the merges
        an interrupted run left; how many."""
        folder = self.folder(ontology) / COMPACTION
        journals = sorted(folder.glob("*.json")) if folder.is_dir() else []
        for journal in journals:
            entry = json.loads(journal.read_text(encoding="utf-8"))
            target = self.root / entry["target"]
            if target.exists():
                for source in entry["sources"]:
                    (self.root / source).unlink(missing_ok=True)
            else:
                self.remove_file(target)
            journal.unlink(missing_ok=True)
        for stale in folder.glob("*.json.tmp") if folder.is_dir() else ():
            stale.unlink(missing_ok=True)
        return len(journals)

    # ----- reading ---------------------------------------------------------------------------------
    def ontologies(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()) if self.root.is_dir() else []

    def files(self, ontology: str, first: date | None = None, last: date | None = None) -> list[Path]:
        """The complete Parquet files of `ontology`, oldest day first, within [first, last] when given."""
        folder = self.folder(ontology)
        if not folder.is_dir():
            return []
        out = []
        for day_dir in sorted(folder.glob("day=*")):
            try:
                day = date.fromisoformat(day_dir.name[4:])
            except ValueError:
                continue
            if (first is None or day >= first) and (last is None or day <= last):
                out.extend(sorted(day_dir.glob("*.parquet")))
        return out

    def documents(self, ontology: str, filter: Doc | None = None) -> Iterator[Doc]:
        """Every stored instance (with `_id`) in the files a filter can match, undecoded rows skipped.
        A document repeated in two files (never after a finished move) comes once."""
        first, last, ids = _pruning(parse_filter(filter or {}))
        seen: set[str] = set()
        files = self.files(ontology, first, last)
        pa = _arrow() if files else None
        for path in files:
            table = pa.parquet.read_table(path, columns=["_id", "doc"])
            if ids is not None:
                table = table.filter(
                    pa.compute.is_in(table["_id"], value_set=pa.array(sorted(ids), pa.string()))
                )
            for _id, text in zip(table["_id"].to_pylist(), table["doc"].to_pylist(), strict=True):
                if _id in seen:
                    continue
                seen.add(_id)
                yield {"_id": _id, **json.loads(text)}

    def ids(self, ontology: str) -> list[str]:
        """Every `_id` row in the files (duplicates kept: the exactly-once check counts them)."""
        out: list[str] = []
        for path in self.files(ontology):
            out.extend(_arrow().parquet.read_table(path, columns=["_id"])["_id"].to_pylist())
        return out

    def find(
        self,
        ontology: str,
        filter: Doc | None = None,
        projection: Doc | None = None,
        sort: Any = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[Doc]:
        """Historical instances matching a MongoDB filter (the real-time DB's language and errors)."""
        return select(self.documents(ontology, filter), filter, projection, sort, skip, limit)

    def count(self, ontology: str, filter: Doc | None = None) -> int:
        return count_docs(self.documents(ontology, filter), filter)


def _pruning(node: Any) -> tuple[date | None, date | None, set[str] | None]:
    """From the top-level conditions of a parsed filter: the first and last day it can match on
    `contextData.timestampMillis`, and the `_id`s it is limited to (None: not limited)."""
    conds = (
        [node]
        if isinstance(node, Cond)
        else [n for n in node.items if isinstance(n, Cond)]
        if isinstance(node, And)
        else []
    )
    low = high = None
    ids: set[str] | None = None
    for cond in conds:
        if (
            cond.path == TIME_PATH
            and cond.op in ("gt", "gte", "lt", "lte", "eq")
            and isinstance(cond.value, (int, float))
            and not isinstance(cond.value, bool)
        ):
            try:
                day = day_of(int(cond.value))
            except (OverflowError, OSError, ValueError):
                continue
            if cond.op in ("gt", "gte", "eq"):
                low = day if low is None else max(low, day)
            if cond.op in ("lt", "lte", "eq"):
                high = day if high is None else min(high, day)
        elif cond.path == ("_id",) and cond.op in ("eq", "in"):
            values = cond.value if cond.op == "in" else [cond.value]
            wanted = {v for v in values if isinstance(v, str)}
            ids = wanted if ids is None else ids & wanted
    return low, high, ids


def _write_json(path: Path, entry: dict) -> None:
    """Write a journal entry whole: temporary name, flush to disk, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(entry, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
