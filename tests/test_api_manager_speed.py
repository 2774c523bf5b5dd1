"""The API Manager's fast call path: its worker threads (`reader.Workers`), its JSON encoding (msgspec, the same
JSON values as the standard library), and on SQLite the msgspec decoding of stored documents and string equality
without a type guard per row."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import math
import os
import sys
import threading

import httpx
import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sofiaflow.runtime.api_manager.reader import Workers
from sofiaflow.runtime.api_manager.responses import encode, json_response
from sofiaflow.runtime.data.ontology_data import Writer
from sofiaflow.runtime.data.rtdb import InvalidFilterError, matches
from sofiaflow.runtime.data.rtdb.sql_backend import SQLStore
from sofiaflow.runtime.data.rtdb.sql_compiler import _SQLite
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


class Boom(Exception):
    pass


def _answer(value: int) -> int:
    if value % 7 == 3:
        raise Boom(f"no {value}")
    return value * 2


async def _wait_for(condition, what: str, seconds: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.integers(-1000, 1000), max_size=60),
    threads=st.integers(1, 4),
    batch=st.integers(1, 10),
)
def test_each_call_gets_its_own_result_or_exception(values, threads, batch):
    workers = Workers(threads=threads, batch=batch)

    async def main() -> list:
        return await asyncio.gather(*(workers.run(_answer, v) for v in values), return_exceptions=True)

    try:
        got = asyncio.run(main())
    finally:
        workers.close()
    for value, outcome in zip(values, got, strict=True):
        if value % 7 == 3:
            assert isinstance(outcome, Boom) and str(outcome) == f"no {value}"
        else:
            assert outcome == value * 2


async def test_calls_run_off_the_event_loop_in_the_callers_context():
    workers = Workers(threads=2)
    try:
        WHO.set("caller")
        ident, who = await workers.run(lambda: (threading.get_ident(), WHO.get()))
        assert ident != threading.get_ident() and who == "caller"
        assert all(t.name.startswith("api-manager-") and t.daemon for t in workers._threads)
    finally:
        workers.close()


async def test_a_cancelled_caller_does_not_stop_the_others():
    workers = Workers(threads=1, batch=4)
    gate, ran = threading.Event(), []

    def slow() -> str:
        gate.wait(30)
        ran.append("slow")
        return "slow"

    try:
        first = asyncio.ensure_future(workers.run(slow))
        others = [asyncio.ensure_future(workers.run(_answer, n)) for n in (1, 2)]
        await asyncio.sleep(0)
        first.cancel()
        gate.set()
        assert await asyncio.gather(*others) == [2, 4]
        with pytest.raises(asyncio.CancelledError):
            await first
        assert ran == ["slow"]  # it ran; its answer was dropped
    finally:
        workers.close()


async def test_close_ends_the_threads_and_a_later_call_starts_them_again():
    workers = Workers(threads=3)
    assert await workers.run(_answer, 1) == 2
    threads = list(workers._threads)
    assert len(threads) == 3 and all(t.is_alive() for t in threads)
    workers.close()
    assert not any(t.is_alive() for t in threads)
    assert await workers.run(_answer, 2) == 4
    workers.close()


def test_two_event_loops_share_the_workers():
    workers = Workers(threads=2, batch=8)
    results: dict[str, list] = {}

    def loop_thread(name: str, base: int) -> None:
        async def main() -> list:
            return await asyncio.gather(*(workers.run(_answer, base + i) for i in (0, 1, 2, 4)))

        results[name] = asyncio.run(main())

    try:
        threads = [threading.Thread(target=loop_thread, args=(n, b)) for n, b in (("a", 700), ("b", 1400))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        workers.close()
    assert results == {"a": [1400, 1402, 1404, 1408], "b": [2800, 2802, 2804, 2808]}


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="threads and batch must be at least 1"):
        Workers(threads=0)
    with pytest.raises(ValueError, match="threads and batch must be at least 1"):
        Workers(batch=0)


async def test_the_runtime_ends_the_api_managers_threads_when_it_stops(tmp_path, registry):
    rt = Runtime(
        Settings(
            data_dir=tmp_path,
            admin_password="pw",
            history_interval=0,
            ontologies_dir=None,
            default_flows=None,
            mqtt_port=0,
        ),
        registry=registry,
    )
    await rt.start()
    try:
        manager = rt.engine.services["api-manager"]
        assert await manager.workers.run(_answer, 5) == 10
        threads = list(manager.workers._threads)
        assert threads and all(t.is_alive() for t in threads)
    finally:
        await rt.stop()
    assert not any(t.is_alive() for t in threads)


async def test_a_query_reads_its_header_parameter_and_answers_in_msgspec_json(tmp_path, registry):
    rt = Runtime(
        Settings(
            data_dir=tmp_path,
            admin_password="pw",
            history_interval=0,
            ontologies_dir=None,
            default_flows=None,
            mqtt_port=0,
        ),
        registry=registry,
    )
    await rt.start()
    try:
        auth = AuthService(rt.db, rt.settings)
        auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)  # quick hashes
        auth.ensure_admin()
        rt.engine.services["ontologies"].create("Reading", {"type": "object"}, owner="admin")
        rt.engine.services["ontology-data"].insert(
            "Reading",
            [{"zone": z, "n": i, "name": "café"} for i, z in enumerate("abab")],
            Writer(user="admin"),
        )
        manager = rt.engine.services["api-manager"]
        key = manager.keys.create("admin", "t")["key"]
        await rt.deploy(
            [
                {"id": "t", "type": "tab"},
                {"id": "api", "type": "api", "name": "h", "version": 1, "state": "published"},
                {
                    "id": "q",
                    "type": "api-endpoint",
                    "z": "t",
                    "api": "api",
                    "method": "GET",
                    "path": "/byZone",
                    "operation": "query",
                    "ontology": "Reading",
                    "sort": '{"n": 1}',
                    "query": '{"zone": "{$X-Zone}"}',
                    "parameters": [{"name": "X-Zone", "in": "header", "required": True}],
                    "wires": [],
                },
            ]
        )
        transport = httpx.ASGITransport(app=create_app(rt))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            url = "/api-manager/server/api/v1/h/byZone"
            page = await http.get(url, headers={"X-OP-APIKey": key, "X-Zone": "b"})
            assert page.status_code == 200, page.text
            assert page.headers["content-type"] == "application/json"
            body = page.json()
            assert body["total"] == 2 and [i["n"] for i in body["items"]] == [1, 3]
            assert body["items"][0]["name"] == "café"
            missing = await http.get(url, headers={"X-OP-APIKey": key})
            assert missing.status_code == 400 and "X-Zone" in missing.json()["message"]
    finally:
        await rt.stop()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_answers_encode_the_same_json_values_as_the_standard_library(value):
    assert json.loads(encode(value)) == json.loads(json.dumps(value, ensure_ascii=False))


def test_answers_encode_what_json_cannot_hold_as_before():
    assert json.loads(encode({"raw": b"caf\xc3\xa9", "set": {1}, "obj": Boom("b")})) == {
        "raw": "Y2Fmw6k=",  # base64
        "set": [1],
        "obj": "b",  # what msgspec has no type for: its str()
    }
    assert json.loads(encode({1: "a", "b": [None, True]})) == {"1": "a", "b": [None, True]}
    assert encode(float("nan")) == b"null"  # JSON has no NaN
    with pytest.raises(UnicodeEncodeError):
        encode({"bad": "\ud800"})  # a lone surrogate is still refused
    answer = json_response(201, {"id": "é"}, {"X-A": "1"})
    assert answer.status_code == 201 and answer.body == '{"id":"é"}'.encode()
    assert answer.headers["content-type"] == "application/json" and answer.headers["x-a"] == "1"


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


STORED = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**80), 2**80) | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(STORED)
def test_stored_documents_decode_to_what_the_standard_library_reads(value):
    stored = json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # as the store writes them
    assert _same(_SQLite().load(stored), json.loads(stored))


def test_stored_documents_beyond_json_still_decode():
    doc = _SQLite().load('{"a":NaN,"b":Infinity,"c":-Infinity,"d":1e400,"e":"\\ud800"}')
    assert math.isnan(doc["a"]) and doc["b"] == math.inf and doc["c"] == -math.inf and doc["d"] == math.inf
    assert doc["e"] == "\ud800"


# ----- string equality on SQLite without the type guard (sql_compiler._SQLite.eq) ---------------------------------
PUNCTUATION = '[]{}",:1az'
STORED_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.text(alphabet=PUNCTUATION, max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)
    ),
    max_leaves=5,
)


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    store = SQLStore(f"sqlite:///{tmp_path_factory.mktemp('eq')}/rt.db")
    store.ensure_collection("c", indexes=["a", "a.b"])
    yield store
    store.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(STORED_VALUES, min_size=1, max_size=6), data=st.data())
def test_string_equality_agrees_with_the_reference_when_a_string_spells_an_array(sqlite_store, values, data):
    docs = [{"_id": f"d{i}", "a": v} for i, v in enumerate(values)]
    # targets that spell stored arrays and objects in JSON (what json_extract gives for them), or any text
    spelled = [json.dumps(v, separators=(",", ":"), ensure_ascii=False) for v in values]
    target = data.draw(st.sampled_from(spelled) | st.text(alphabet=PUNCTUATION, max_size=6), label="target")
    sqlite_store.delete("c", {})
    sqlite_store.insert("c", docs)
    for flt in (
        {"a": target},
        {"a": {"$ne": target}},
        {"a": {"$in": [target, "z"]}},
        {"a": {"$nin": [target]}},
        {"a.b": target},
        {"$nor": [{"a.b": target}]},
    ):
        expected = sorted(d["_id"] for d in docs if matches(d, flt))
        assert sorted(d["_id"] for d in sqlite_store.find("c", flt)) == expected, flt
        assert sqlite_store.count("c", flt) == len(expected), flt


def test_a_string_that_spells_an_array_matches_only_strings(sqlite_store):
    sqlite_store.delete("c", {})
    sqlite_store.insert(
        "c",
        [
            {"_id": "arr", "a": [1]},
            {"_id": "text", "a": "[1]"},
            {"_id": "obj", "a": {"b": 1}},
            {"_id": "objtext", "a": '{"b":1}'},
            {"_id": "inner", "a": [[1], "[1]"]},
        ],
    )
    assert sorted(d["_id"] for d in sqlite_store.find("c", {"a": "[1]"})) == ["inner", "text"]
    assert [d["_id"] for d in sqlite_store.find("c", {"a": '{"b":1}'})] == ["objtext"]
    assert sorted(d["_id"] for d in sqlite_store.find("c", {"a": [1]})) == ["arr", "inner"]


def test_compiled_filters_are_remembered_per_filter_and_tell_true_from_one(sqlite_store):
    sqlite_store.delete("c", {})
    sqlite_store.insert(
        "c", [{"_id": "one", "a": 1}, {"_id": "true", "a": True}, {"_id": "text", "a": "1"}, {"_id": "no"}]
    )
    for _ in range(2):  # compiled, then remembered
        assert [d["_id"] for d in sqlite_store.find("c", {"a": 1})] == ["one"]
        assert [d["_id"] for d in sqlite_store.find("c", {"a": 1.0})] == ["one"]
        assert [d["_id"] for d in sqlite_store.find("c", {"a": True})] == ["true"]
        assert [d["_id"] for d in sqlite_store.find("c", {"a": "1"})] == ["text"]
        assert sqlite_store.count("c", {"a": {"$exists": False}}) == 1
    where, params = sqlite_store._where({"a": "1"})
    kept = dict(params)
    params.clear()  # the caller's copy: the remembered one stays whole
    assert sqlite_store._where({"a": "1"}) == (where, kept) and "1" in kept.values()
    with pytest.raises(InvalidFilterError):
        sqlite_store.find("c", {"a": {"$bogus": 1}})
    with pytest.raises(InvalidFilterError):
        sqlite_store.find("c", {"a": {"$bogus": 1}})  # a refused filter is refused every time


async def test_the_admin_app_freezes_the_startup_heap_when_the_server_starts(tmp_path, registry):
    rt = Runtime(
        Settings(
            data_dir=tmp_path,
            admin_password="pw",
            history_interval=0,
            ontologies_dir=None,
            default_flows=None,
            mqtt_port=0,
        ),
        registry=registry,
    )
    await rt.start()
    try:
        app = create_app(rt)
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        startup = asyncio.Queue()
        await startup.put({"type": "lifespan.startup"})
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)
            if message["type"] == "lifespan.startup.complete":
                await startup.put({"type": "lifespan.shutdown"})

        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get, send)
        assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert gc.get_freeze_count() > 1000  # the runtime, the app and every module loaded
    finally:
        gc.unfreeze()
        await rt.stop()


# ----- single-statement reads on PostgreSQL: no transaction around them ------------------------------------------
@pytest.fixture(scope="module")
def postgres_store():
    sys.path.insert(0, os.path.dirname(__file__))
    import rtdb_servers

    server = rtdb_servers.start_postgres()  # skips when PostgreSQL is missing (fails when it is required)
    store = SQLStore(server.url)
    try:
        yield store
    finally:
        store.close()
        server.stop()


INSERT_D9 = """INSERT INTO "rt_reads" (id, doc) VALUES ('d9', '{"_id": "d9", "zone": "z1"}')"""


def test_postgresql_reads_see_only_committed_rows_and_leave_no_transaction_open(postgres_store):
    """Reads run in autocommit (tests/test_pg_reconnect.py counts their statements in the server's log: no BEGIN
    or COMMIT around them): they see only committed rows and leave no connection idle in a transaction."""
    store = postgres_store
    store.ensure_collection("reads", indexes=["zone"])
    store.insert("reads", [{"_id": f"d{i}", "zone": f"z{i % 2}"} for i in range(6)])
    assert [d["_id"] for d in store.find("reads", {"zone": "z1"}, sort=[("_id", 1)], limit=2)] == ["d1", "d3"]
    assert store.count("reads", {"zone": "z1"}) == 3
    assert store.find("reads", {"_id": "d4"}) == [{"_id": "d4", "zone": "z0"}]
    with store.engine.connect() as writer, writer.begin():  # an open, uncommitted write
        writer.execute(text(INSERT_D9))
        assert store.count("reads", {"zone": "z1"}) == 3
        assert store.find("reads", {"_id": "d9"}) == []
    assert store.count("reads", {"zone": "z1"}) == 4
    with store.engine.connect() as conn:
        idle = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'")
        ).scalar()
    assert idle == 0
