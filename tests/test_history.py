"""History (BDH): Parquet store queries, the move out of the real-time DB, and its recovery.

The crash-point tests make a step raise to stand for the process dying there; the kill -9 test kills
the real `sofiaflow history move` process at random moments.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.data.history import HistoryMover, HistoryStore, select
from sofiaflow.runtime.data.ontologies import OntologyInUseError, OntologyRegistry
from sofiaflow.runtime.data.rtdb import InvalidFilterError, UnsupportedFilterError, matches, open_store
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from test_rtdb_backends import documents, filters  # noqa: E402

DAY = 24 * 3600 * 1000
NOW = 1_764_000_000_000  # 2025-11-24T16:00Z, fixed so days are known
SCHEMA = {
    "type": "object",
    "required": ["sensor", "value"],
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}},
}


def stamped(i: int, millis: int) -> dict:
    return {
        "_id": f"i{i:06d}",
        "sensor": f"s{i % 7}",
        "value": i,
        "contextData": {"timestampMillis": millis, "source": "flow"},
    }


@pytest.fixture
def setup(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'config.db'}")
    store = open_store(f"sqlite:///{tmp_path / 'rt.db'}")
    registry = OntologyRegistry(db)
    history = HistoryStore(tmp_path / "history")
    yield registry, store, history
    store.close()
    db.dispose()


def mover_at(registry, store, history, now=NOW, batch_size=100):
    return HistoryMover(registry, store, history, batch_size=batch_size, clock=lambda: now / 1000)


def exactly_once(store, history, name, expected_ids):
    """Every expected id once in the union, counting raw history rows (duplicates would show)."""
    realtime = [d["_id"] for d in store.find(name, {})]
    historical = history.ids(name)
    union = realtime + historical
    assert sorted(union) == sorted(expected_ids), (len(union), len(set(union)), len(expected_ids))


# ----- the store -----------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=documents,
    flts=st.lists(filters, min_size=1, max_size=4),
    days=st.lists(st.integers(0, 3), min_size=8, max_size=8),
)
def test_history_queries_agree_with_the_reference_matcher(tmp_path_factory, docs, flts, days):
    history = HistoryStore(tmp_path_factory.mktemp("h"))
    docs = [
        {"_id": f"d{i:03d}", **d, "contextData": {"timestampMillis": NOW - days[i % 8] * DAY + i}}
        for i, d in enumerate(docs)
    ]
    half = len(docs) // 2
    for batch, part in (("b1", docs[:half]), ("b2", docs[half:])):
        for path, group in history.plan_files("T", batch, part).items():
            history.write_file(path, group)
    for flt in flts:
        expected = sorted(d["_id"] for d in docs if matches(d, flt))
        assert [d["_id"] for d in history.find("T", flt)] == expected
        assert history.count("T", flt) == len(expected)
        # with conditions that prune days and rows, the answer is still the reference's
        low = NOW - 2 * DAY
        pruned = {"$and": [flt, {"contextData.timestampMillis": {"$gte": low}}]}
        assert [d["_id"] for d in history.find("T", pruned)] == [
            i
            for i in expected
            if next(d for d in docs if d["_id"] == i)["contextData"]["timestampMillis"] >= low
        ]
        some = expected[:2] + ["d999"]
        by_id = {"$and": [flt, {"_id": {"$in": some}}]}
        assert [d["_id"] for d in history.find("T", by_id)] == expected[:2]


def test_history_files_are_partitioned_by_day_and_round_trip(tmp_path):
    history = HistoryStore(tmp_path)
    docs = [stamped(i, NOW - (i % 3) * DAY) for i in range(9)]
    docs[0]["nested"] = {"list": [1, "two", None, {"x": 1.5}]}
    for path, group in history.plan_files("Reading", "b", docs).items():
        history.write_file(path, group)
    days = sorted(p.parent.name for p in history.files("Reading"))
    assert days == ["day=2025-11-22"] * 1 + ["day=2025-11-23"] + ["day=2025-11-24"]
    table = pq.read_table(history.files("Reading")[0])
    assert table.column_names == ["_id", "timestampMillis", "doc"]
    assert history.find("Reading", {"_id": "i000000"}) == [docs[0]]
    got = history.find(
        "Reading", {"value": {"$gte": 3}}, projection={"value": 1}, sort=[("value", -1)], skip=1, limit=2
    )
    assert got == [{"_id": "i000007", "value": 7}, {"_id": "i000006", "value": 6}]


def test_history_refuses_what_the_realtime_db_refuses(tmp_path):
    history = HistoryStore(tmp_path)
    with pytest.raises(UnsupportedFilterError):
        history.find("Reading", {"a": {"$where": "1"}})
    with pytest.raises(InvalidFilterError):
        history.find("Reading", {"$and": 5})
    with pytest.raises(ValueError, match="timestampMillis"):
        history.plan_files("Reading", "b", [{"_id": "x", "a": 1}])
    assert select([{"_id": "b"}, {"_id": "a"}], {}, sort=[("_id", -1)]) == [{"_id": "b"}, {"_id": "a"}]


# ----- the move ------------------------------------------------------------------------------------


def test_move_takes_what_left_the_window_and_keeps_the_rest(setup):
    registry, store, history = setup
    registry.create("Reading", SCHEMA, realtime_window_days=1, history=True)
    registry.create("Expiring", SCHEMA, realtime_window_days=2)
    registry.create("Forever", SCHEMA)
    for name in ("Reading", "Expiring", "Forever"):
        store.ensure_collection(name)
    old = [stamped(i, NOW - DAY - 1000 - (i % 4) * DAY) for i in range(250)]
    recent = [stamped(1000 + i, NOW - 3600_000) for i in range(20)]
    store.insert("Reading", old + recent)
    store.insert("Expiring", [stamped(i, NOW - 3 * DAY) for i in range(5)] + [stamped(9, NOW)])
    store.insert("Forever", [stamped(i, NOW - 300 * DAY) for i in range(3)])

    report = mover_at(registry, store, history).run()

    assert report.moved == {"Reading": 250} and report.expired == {"Expiring": 5} and not report.errors
    assert sorted(d["_id"] for d in store.find("Reading", {})) == [d["_id"] for d in recent]
    assert sorted(history.ids("Reading")) == [d["_id"] for d in old]
    assert history.find("Reading", {"_id": old[17]["_id"]}) == [old[17]]
    assert [d["_id"] for d in store.find("Expiring", {})] == ["i000009"] and history.ids("Expiring") == []
    assert store.count("Forever", {}) == 3
    assert len({p.parent.name for p in history.files("Reading")}) == 4
    assert not list((history.root / "Reading" / "_journal").glob("*"))
    again = mover_at(registry, store, history).run()
    assert again.moved == {} and sorted(history.ids("Reading")) == [d["_id"] for d in old]


class Crash(Exception):
    """Stands for the process dying at this point."""


@pytest.mark.parametrize("point", ["after-journal", "after-first-file", "after-files", "after-delete"])
def test_a_move_interrupted_anywhere_is_settled_by_the_next_run(setup, point, monkeypatch):
    registry, store, history = setup
    registry.create("Reading", SCHEMA, realtime_window_days=1, history=True)
    store.ensure_collection("Reading")
    docs = [stamped(i, NOW - 2 * DAY - (i % 2) * DAY) for i in range(30)]
    store.insert("Reading", docs)
    ids = [d["_id"] for d in docs]
    mover = mover_at(registry, store, history, batch_size=30)
    written = []
    real_write, real_delete, real_remove = history.write_file, store.delete, history.remove_journal

    def write_file(path, part):
        if point == "after-journal":
            raise Crash
        real_write(path, part)
        written.append(path)
        if point == "after-first-file":
            raise Crash

    def delete(name, flt):
        if point == "after-files":
            raise Crash
        return real_delete(name, flt)

    def remove_journal(name, batch):
        raise Crash

    monkeypatch.setattr(history, "write_file", write_file)
    monkeypatch.setattr(store, "delete", delete)
    if point == "after-delete":
        monkeypatch.setattr(history, "remove_journal", remove_journal)
    report = mover.run()
    assert "Crash" in report.errors["Reading"]
    assert len(history.journals("Reading")) == 1
    monkeypatch.setattr(history, "write_file", real_write)
    monkeypatch.setattr(store, "delete", real_delete)
    monkeypatch.setattr(history, "remove_journal", real_remove)

    report = mover.run()

    assert report.recovered == {"Reading": 1} and not report.errors
    exactly_once(store, history, "Reading", ids)
    assert store.count("Reading", {}) == 0 and history.journals("Reading") == []


def _cli_env(data_dir: Path) -> dict:
    env = dict(os.environ)
    env.update(SOFIAFLOW_DATA_DIR=str(data_dir), SOFIAFLOW_ONTOLOGIES_DIR="")
    env.pop("SOFIAFLOW_RTDB_URL", None)
    env.pop("SOFIAFLOW_DB_URL", None)
    return env


def test_kill_9_in_the_middle_then_run_again_keeps_every_instance_exactly_once(tmp_path):
    settings_ = Settings(data_dir=tmp_path)
    db = connect(settings_.database_url)
    registry = OntologyRegistry(db)
    registry.create("Reading", SCHEMA, realtime_window_days=1, history=True)
    db.dispose()
    store = open_store(settings_.realtime_database_url)
    store.ensure_collection("Reading")
    now = int(time.time() * 1000)
    docs = [stamped(i, now - 2 * DAY - (i % 5) * DAY) for i in range(3000)]
    recent = [stamped(10_000 + i, now) for i in range(50)]
    store.insert("Reading", docs + recent)
    store.close()
    all_ids = [d["_id"] for d in docs + recent]
    command = [sys.executable, "-m", "sofiaflow.runtime.cli", "history", "move", "--batch-size", "20"]
    history = HistoryStore(settings_.history_path)
    rng = random.Random(4)
    kills = 0
    for _ in range(5):
        proc = subprocess.Popen(
            command, env=_cli_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            before = len(history.files("Reading"))
            deadline = time.monotonic() + 20
            while (
                time.monotonic() < deadline
                and proc.poll() is None
                and len(history.files("Reading")) <= before
            ):
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.15))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
        finally:
            proc.wait(timeout=10)
            proc.stdout.close()
            proc.stderr.close()
        with open_store(settings_.realtime_database_url) as store:
            realtime = {d["_id"] for d in store.find("Reading", {})}
        assert realtime | set(history.ids("Reading")) == set(all_ids)  # nothing lost, even before settling
    assert kills >= 3, "the move finished before it could be killed: give it more to do"
    done = subprocess.run(command, env=_cli_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["errors"] == {}
    with open_store(settings_.realtime_database_url) as store:
        exactly_once(store, history, "Reading", all_ids)
        assert sorted(d["_id"] for d in store.find("Reading", {})) == [d["_id"] for d in recent]
    assert history.journals("Reading") == []
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sofiaflow.runtime.cli",
            "history",
            "query",
            "Reading",
            "--filter",
            json.dumps({"_id": docs[5]["_id"]}),
        ],
        env=_cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert [json.loads(line) for line in listed.stdout.splitlines()] == [docs[5]]


def test_a_second_mover_on_the_same_folder_finds_it_busy(setup):
    registry, store, history = setup
    first = mover_at(registry, store, history)
    with first._lock() as locked:
        assert locked
        assert mover_at(registry, store, history).run().busy


# ----- inside the runtime ------------------------------------------------------------------------


async def test_the_runtime_moves_on_schedule_and_history_query_reads_both(tmp_path, registry):
    rt = Runtime(Settings(data_dir=tmp_path, history_interval=0.1, ontologies_dir=None), registry=registry)
    await rt.start()
    try:
        services = rt.engine.services
        services["ontologies"].create("Reading", SCHEMA, realtime_window_days=1, history=True)
        now = int(time.time() * 1000)
        store = services["rtdb"]
        store.insert("Reading", [stamped(i, now - 3 * DAY) for i in range(40)] + [stamped(99, now)])
        for _ in range(100):
            if store.count("Reading", {}) == 1:
                break
            await asyncio.sleep(0.05)
        assert store.count("Reading", {}) == 1
        assert services["history"].store.count("Reading", {}) == 40
        flows = [
            {"id": "t", "type": "tab", "label": "t"},
            {
                "id": "q",
                "type": "history-query",
                "z": "t",
                "ontology": "Reading",
                "scope": "all",
                "query": '{"value": {"$gte": {{payload}}}}',
                "sort": '{"value": -1}',
                "limit": "3",
                "wires": [[]],
            },
        ]
        await rt.deploy(flows)
        node = rt.engine.nodes["q"]
        got = node.find({"value": {"$gte": 38}}, None, [("value", -1)], 0, 3)
        assert [d["value"] for d in got] == [99, 39, 38]
        node.config.scope = "history"
        assert [d["value"] for d in node.find({"value": {"$gte": 38}}, None, None, 0, 0)] == [38, 39]
        with pytest.raises(OntologyInUseError, match="41 instance"):
            services["ontologies"].delete("Reading")
        services["ontologies"].delete("Reading", purge=True)
        assert services["history"].store.files("Reading") == []
    finally:
        await rt.stop()
