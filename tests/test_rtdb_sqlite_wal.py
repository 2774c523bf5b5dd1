"""The real-time DB on a SQLite file: WAL mode, so reads go on while a write transaction is open, and reads done
straight on the DB-API connection answer as the SQLAlchemy path does."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from sofiaflow.runtime.data.rtdb.base import UnsupportedFilterError
from sofiaflow.runtime.data.rtdb.sql_backend import SQLStore


@pytest.fixture
def store(tmp_path):
    s = SQLStore(f"sqlite:///{tmp_path}/rt.db")
    s.ensure_collection("R", ["zone"])
    s.insert("R", [{"_id": f"{i:03d}", "v": i, "zone": f"z{i % 3}"} for i in range(30)])
    yield s
    s.close()


def test_a_file_store_is_in_wal_mode(store, tmp_path):
    with sqlite3.connect(tmp_path / "rt.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reads_go_on_while_another_connection_holds_a_write_transaction(store, tmp_path):
    writer = sqlite3.connect(tmp_path / "rt.db", isolation_level=None, timeout=0.1)
    writer.execute("BEGIN EXCLUSIVE")  # without WAL this would lock every reader out
    writer.execute("""DELETE FROM "rt_R" WHERE id = '000'""")
    try:
        result: list = []
        reader = threading.Thread(target=lambda: result.append(store.count("R", {"zone": "z0"})))
        reader.start()
        reader.join(30)
        assert result == [10]  # the uncommitted delete is not seen, and the read did not wait for it
        assert [d["_id"] for d in store.find("R", {"zone": "z0"}, None, None, 0, 3)] == ["000", "003", "006"]
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_reads_see_committed_writes_and_keep_their_errors(store):
    store.delete("R", {"zone": "z1"})
    assert store.count("R", {"zone": "z1"}) == 0 and store.count("R") == 20
    assert store.find("R", {"v": {"$gte": 27}}, {"v": 1}, [("v", -1)], 0, 0) == [
        {"_id": "029", "v": 29},
        {"_id": "027", "v": 27},
    ]
    store.insert("R", [{"_id": "arr", "v": [1, 2]}])
    with pytest.raises(UnsupportedFilterError, match="sort on 'v'"):
        store.find("R", {}, None, [("v", 1)])
    assert [d["_id"] for d in store.find("R", {"v": {"$regex": "^x"}})] == []
