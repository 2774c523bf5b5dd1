"""The real-time DB on every backend: SQLite (embedded), PostgreSQL (Debian binaries) and a MongoDB
wire-protocol server (SecantusDB from PyPI), checked against each other and the reference matcher.

The servers start once per session on free loopback ports; a missing one skips its tests (fails
under SOFIAFLOW_REQUIRE_SERVERS=1).
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.data.rtdb import (
    DuplicateKeyError,
    InvalidDocumentError,
    InvalidFilterError,
    UnsupportedFilterError,
    UpdateError,
    matches,
    open_store,
    parse_filter,
)
from sofiaflow.runtime.data.rtdb.filters import sort_key

sys.path.insert(0, os.path.dirname(__file__))
import rtdb_servers  # noqa: E402

BACKENDS = ["sqlite", "postgresql", "mongo"]


@pytest.fixture(scope="session")
def _servers():
    started: dict = {}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture(scope="session")
def _stores(_servers, tmp_path_factory):
    opened: dict = {}
    yield opened
    for s in opened.values():
        s.close()


def _get_store(kind, servers, stores, tmp_path_factory):
    if kind not in stores:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('rtdb')}/rt.db"
        elif kind == "postgresql":
            if "pg" not in servers:
                servers["pg"] = rtdb_servers.start_postgres()
            url = servers["pg"].url
        else:
            if "mongo" not in servers:
                servers["mongo"] = rtdb_servers.start_secantus()
            url = servers["mongo"].url
        stores[kind] = open_store(url)
    return stores[kind]


@pytest.fixture(params=BACKENDS)
def store(request, _servers, _stores, tmp_path_factory):
    return _get_store(request.param, _servers, _stores, tmp_path_factory)


@pytest.fixture
def coll(store):
    name = "t" + uuid.uuid4().hex[:12]
    store.ensure_collection(name, indexes=["a", "b.c"], unique=["code"])
    yield name
    store.drop(name)


def ids_of(docs):
    return sorted(d["_id"] for d in docs)


SAMPLE = [
    {"_id": "1", "a": 5, "b": {"c": "x"}, "tags": ["red", "blue"]},
    {"_id": "2", "a": 7.5, "b": {"c": "y"}, "tags": ["green"]},
    {"_id": "3", "a": "text", "b": {"c": "x"}, "tags": []},
    {"_id": "4", "a": None, "items": [{"k": 1}, {"k": 3}]},
    {"_id": "5", "b": [{"c": "z"}, {"c": "x"}]},
]


def test_open_store_rejects_unknown_urls():
    with pytest.raises(ValueError):
        open_store("redis://localhost")


def test_crud_roundtrip(store, coll):
    ids = store.insert(coll, [{"n": 1}, {"n": 2, "_id": "mine"}])
    assert ids[1] == "mine" and len(ids[0]) == 32
    got = store.find(coll, {"_id": ids[0]})
    assert got == [{"_id": ids[0], "n": 1}]
    assert store.count(coll, {}) == 2
    assert store.delete(coll, {"n": 2}) == 1
    assert store.count(coll, None) == 1
    assert store.insert(coll, []) == []


def test_duplicate_ids_and_unique_index(store, coll):
    store.insert(coll, [{"_id": "x", "code": "A"}])
    with pytest.raises(DuplicateKeyError):
        store.insert(coll, [{"_id": "x"}])
    with pytest.raises(DuplicateKeyError):
        store.insert(coll, [{"code": "A"}])
    assert store.count(coll, {}) == 1


def test_queries(store, coll):
    store.insert(coll, SAMPLE)
    cases = [
        ({"a": {"$gt": 4}}, ["1", "2"]),
        ({"a": {"$gte": "a"}}, ["3"]),
        ({"b.c": "x"}, ["1", "3", "5"]),
        ({"tags": "blue"}, ["1"]),
        ({"tags": []}, ["3"]),
        ({"tags": ["green"]}, ["2"]),
        ({"items.k": {"$gt": 2}}, ["4"]),
        ({"a": None}, ["4", "5"]),
        ({"a": {"$exists": True}}, ["1", "2", "3", "4"]),
        ({"$or": [{"a": 5}, {"tags": {"$in": ["green"]}}]}, ["1", "2"]),
        ({"b.c": {"$regex": "^[XY]$", "$options": "i"}}, ["1", "2", "3", "5"]),
        ({"a": {"$nin": [5, "text"]}}, ["2", "4", "5"]),
        ({"a": {"$not": {"$gte": 6}}}, ["1", "3", "4", "5"]),
    ]
    for flt, expected in cases:
        assert ids_of(store.find(coll, flt)) == expected, flt
        assert store.count(coll, flt) == len(expected), flt


def test_projection_sort_skip_limit(store, coll):
    store.insert(coll, SAMPLE)
    got = store.find(coll, {"_id": {"$in": ["1", "2", "3", "4"]}}, projection={"a": 1}, sort=[("a", -1)])
    assert got == [
        {"_id": "3", "a": "text"},
        {"_id": "2", "a": 7.5},
        {"_id": "1", "a": 5},
        {"_id": "4", "a": None},
    ]
    got = store.find(coll, {}, projection={"b.c": 1, "_id": 0}, sort=[("_id", 1)])
    assert got == [
        {"b": {"c": "x"}},
        {"b": {"c": "y"}},
        {"b": {"c": "x"}},
        {},
        {"b": [{"c": "z"}, {"c": "x"}]},
    ]
    got = store.find(coll, {}, projection={"tags": 0, "items": 0, "b": 0}, sort=[("a", 1)], skip=1, limit=2)
    # null (4) and missing (5) tie, then _id breaks the tie: 4, 5, 1, 2, 3
    assert got == [{"_id": "5"}, {"_id": "1", "a": 5}]
    assert [d["_id"] for d in store.find(coll, {}, sort=[("_id", -1)], skip=3)] == ["2", "1"]
    with pytest.raises(InvalidFilterError):
        store.find(coll, {}, projection={"a": 1, "b": 0})
    with pytest.raises(InvalidFilterError):
        store.find(coll, {}, sort=[("a", 2)])


def test_sql_refuses_sorting_on_arrays(store, coll):
    store.insert(coll, SAMPLE)
    if type(store).__name__ == "MongoStore":
        pytest.skip("MongoDB sorts arrays itself")
    with pytest.raises(UnsupportedFilterError, match="array or object"):
        store.find(coll, {}, sort=[("tags", 1)])
    with pytest.raises(UnsupportedFilterError):
        store.find(coll, {}, sort=[("b.c", 1)])  # document 5 has b as an array
    # fine once the filter leaves those documents out
    assert ids_of(store.find(coll, {"_id": {"$ne": "5"}}, sort=[("b.c", 1)])) == ["1", "2", "3", "4"]


def test_updates(store, coll):
    store.insert(coll, SAMPLE)
    assert store.update(coll, {"b.c": "x"}, {"$set": {"seen": True, "b2.deep": 1}}) == 3
    assert ids_of(store.find(coll, {"seen": True})) == ["1", "3", "5"]
    assert store.update(coll, {"_id": "1"}, {"$inc": {"a": 2, "counter": 1}, "$unset": {"tags": 1}}) == 1
    assert store.find(coll, {"_id": "1"}, projection={"a": 1, "counter": 1, "tags": 1}) == [
        {"_id": "1", "a": 7, "counter": 1}
    ]
    assert store.update(coll, {"a": {"$exists": True}}, {"$set": {"one": 1}}, multi=False) == 1
    assert store.count(coll, {"one": 1}) == 1
    assert store.update(coll, {"_id": "nope"}, {"$set": {"x": 1}}) == 0
    with pytest.raises(UpdateError):
        store.update(coll, {"_id": "3"}, {"$inc": {"a": 1}})  # "text"
    assert store.find(coll, {"_id": "3"})[0]["a"] == "text"
    with pytest.raises(DuplicateKeyError):
        store.insert(coll, [{"_id": "u1", "code": "K"}, {"_id": "u2"}])
        store.update(coll, {"_id": "u2"}, {"$set": {"code": "K"}})


def test_bad_filters_are_errors_on_every_backend(store, coll):
    store.insert(coll, SAMPLE)
    with pytest.raises(InvalidFilterError, match=r"\$bogus"):
        store.find(coll, {"a": {"$bogus": 1}})
    with pytest.raises(UnsupportedFilterError, match=r"\$elemMatch"):
        store.count(coll, {"items": {"$elemMatch": {"k": 1}}})
    with pytest.raises(UnsupportedFilterError, match="embedded object"):
        store.delete(coll, {"b": {"c": "x"}})
    assert store.count(coll, {}) == len(SAMPLE)


def test_values_are_bound_not_spliced(store, coll):
    evil = "x'); DROP TABLE rt_x; --"
    store.insert(coll, [{"s": evil}])
    assert store.count(coll, {"s": evil}) == 1
    assert store.count(coll, {"s": {"$regex": "^x'\\)"}}) == 1


def test_usable_from_async_code(store, coll):
    async def main():
        await asyncio.to_thread(store.insert, coll, [{"v": i} for i in range(20)])
        counts = await asyncio.gather(
            *(asyncio.to_thread(store.count, coll, {"v": {"$lt": i}}) for i in range(10))
        )
        return counts

    assert asyncio.run(main()) == list(range(10))


# ---------------------------------------------------------------- the cross-backend property test

NAMES = ["a", "b", "c"]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, 1e20]),
    st.text(alphabet="aAbéÉ\n", max_size=3),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)
    ),
    max_leaves=6,
)
documents = st.lists(st.dictionaries(st.sampled_from(NAMES), values, max_size=3), min_size=1, max_size=8)

paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=2).map(".".join)
non_null = scalars.filter(lambda v: v is not None)
comparable = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.0]), st.text(alphabet="aAb", max_size=2))
REGEXES = [
    "^a",
    "a$",
    "b",
    ".",
    "^$",
    "A",
    "a|b",
    "[ab]",
    "é",
    "^.$",
    "a.*b",
    "[^a]",
    "^[aA]+$",
    "\\.",
    "b?a",
]


@st.composite
def field_ops(draw, dotted):
    eq_val = non_null if dotted else scalars
    kind = draw(st.sampled_from(["eq", "ne", "cmp", "in", "nin", "exists", "regex", "arr", "not"]))
    if kind == "eq":
        return draw(eq_val)
    if kind == "ne":
        return {"$ne": draw(eq_val)}
    if kind == "cmp":
        return {draw(st.sampled_from(["$gt", "$gte", "$lt", "$lte"])): draw(comparable)}
    if kind in ("in", "nin"):
        return {"$" + kind: draw(st.lists(eq_val, max_size=3))}
    if kind == "exists":
        return {"$exists": draw(st.booleans())}
    if kind == "regex":
        pat = draw(st.sampled_from(REGEXES))
        if draw(st.booleans()) and pat.isascii():
            return {"$regex": pat, "$options": "i"}
        return {"$regex": pat}
    if kind == "arr":
        return draw(st.lists(non_null.filter(lambda v: not isinstance(v, float)), max_size=2))
    inner = draw(field_ops(dotted))
    while isinstance(inner, dict) and "$not" in inner:  # $not of $not is refused
        inner = inner["$not"]
    if not isinstance(inner, dict) or not all(k.startswith("$") for k in inner):
        inner = {"$eq": inner}
    return {"$not": inner}


@st.composite
def leaf_filter(draw):
    path = draw(paths)
    return {path: draw(field_ops("." in path))}


filters = st.recursive(
    leaf_filter(),
    lambda inner: st.one_of(
        st.builds(
            lambda op, subs: {op: subs},
            st.sampled_from(["$and", "$or", "$nor"]),
            st.lists(inner, min_size=1, max_size=3),
        ),
        st.lists(inner, min_size=2, max_size=2).map(lambda fs: {**fs[0], **fs[1]}),
    ),
    max_leaves=4,
)


def reference_sorted(docs, path, direction):
    parts = tuple(path.split("."))
    out = sorted(docs, key=lambda d: d["_id"])
    return (
        sorted(out, key=lambda d: sort_key(d, parts), reverse=direction == -1)
        if direction == 1
        else _desc(out, parts)
    )


def _desc(docs, parts):
    # descending on the key, ascending _id among ties
    keyed = [(sort_key(d, parts), d) for d in docs]
    groups: dict = {}
    for k, d in keyed:
        groups.setdefault(k, []).append(d)
    return [d for k in sorted(groups, reverse=True) for d in groups[k]]


@pytest.mark.parametrize("kind", BACKENDS)
def test_backends_agree_with_reference(kind, _servers, _stores, tmp_path_factory):
    store = _get_store(kind, _servers, _stores, tmp_path_factory)
    name = "h" + uuid.uuid4().hex[:12]
    store.ensure_collection(name, indexes=["a", "b.c"])
    is_mongo = kind == "mongo"
    counter = iter(range(10**9))

    @settings(
        max_examples=int(os.environ.get("RTDB_HYPOTHESIS_EXAMPLES", "60")),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        docs=documents,
        flts=st.lists(filters, min_size=1, max_size=6),
        sort_path=st.sampled_from(NAMES),
        direction=st.sampled_from([1, -1]),
    )
    def check(docs, flts, sort_path, direction):
        store.delete(name, {})
        docs = [{"_id": f"d{next(counter):06d}", **d} for d in docs]
        store.insert(name, docs)
        for flt in flts:
            parse_filter(flt)
            expected = sorted(d["_id"] for d in docs if matches(d, flt))
            assert ids_of(store.find(name, flt)) == expected, flt
            assert store.count(name, flt) == len(expected), flt
        # sorting on a scalar path: the reference order, or a refusal where arrays/objects occur
        try:
            want = [d["_id"] for d in reference_sorted(docs, sort_path, direction)]
        except UnsupportedFilterError:
            if not is_mongo:
                with pytest.raises(UnsupportedFilterError):
                    store.find(name, {}, sort=[(sort_path, direction)])
            return
        got = [d["_id"] for d in store.find(name, {}, sort=[(sort_path, direction)])]
        assert got == want
        got = [d["_id"] for d in store.find(name, {}, sort=[(sort_path, direction)], skip=1, limit=2)]
        assert got == want[1:3]

    try:
        check()
    finally:
        store.drop(name)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_declared_indexes_serve_queries(kind, _servers, _stores, tmp_path_factory):
    from sqlalchemy import text

    from sofiaflow.runtime.data.rtdb.sql_compiler import _Compiler

    store = _get_store(kind, _servers, _stores, tmp_path_factory)
    name = "ix" + uuid.uuid4().hex[:12]
    store.ensure_collection(name, indexes=["a", "b.c"])
    store.ensure_collection(name, indexes=["a", "b.c"])  # idempotent
    try:
        store.insert(name, [{"a": i, "b": {"c": str(i)}} for i in range(3000)])
        with store.engine.connect() as conn:
            if kind == "postgresql":
                conn.execute(text(f'ANALYZE "rt_{name}"'))
            for flt in ({"a": 5}, {"a": {"$gte": 2990}}, {"b.c": "77"}):
                c = _Compiler(store.dialect)
                where = c.compile(parse_filter(flt))
                explain = "EXPLAIN QUERY PLAN" if kind == "sqlite" else "EXPLAIN"
                plan = " ".join(
                    str(r[-1] if kind == "sqlite" else r[0])
                    for r in conn.execute(
                        text(f'{explain} SELECT doc FROM "rt_{name}" WHERE {where}'), c.params
                    )
                )
                assert "INDEX" in plan.upper(), (flt, plan)
            conn.rollback()
        assert store.count(name, {"a": {"$gte": 2990}}) == 10
    finally:
        store.drop(name)


def test_concurrent_increments_are_not_lost(store, coll):
    from concurrent.futures import ThreadPoolExecutor

    store.insert(coll, [{"_id": "ctr", "n": 0}])

    def bump(_):
        for _ in range(15):
            store.update(coll, {"_id": "ctr"}, {"$inc": {"n": 1}})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(bump, range(4)))
    assert store.find(coll, {"_id": "ctr"})[0]["n"] == 60


def test_id_filters_large_in_lists_and_non_string_targets(store, coll):
    store.insert(coll, [{"_id": f"k{i:04d}", "n": i} for i in range(1500)])
    wanted = [f"k{i:04d}" for i in range(0, 1500, 2)] + ["missing", 5, None, ["k0001"]]
    assert len(store.find(coll, {"_id": {"$in": wanted}})) == 750
    assert store.count(coll, {"_id": {"$nin": wanted}}) == 750
    assert store.delete(coll, {"_id": {"$in": wanted[:1000]}}) == 750
    assert ids_of(store.find(coll, {"_id": "k0001"})) == ["k0001"]
    assert store.find(coll, {"_id": 1}) == [] and store.count(coll, {"_id": {"$ne": "k0001"}}) == 749
    assert store.count(coll, {"$nor": [{"_id": "k0003"}, {"_id": {"$in": []}}]}) == 749


def test_onesait_dates_are_stored_as_given(store, coll):
    stamp = {"$date": "2026-01-01T00:00:00Z"}
    doc = {"_id": "d1", "Sensor": {"timestamp": stamp, "at": [{"$date": 1767225600000}]}}
    store.insert(coll, [doc])
    assert store.find(coll, {"_id": "d1"}) == [doc]
    with pytest.raises(InvalidDocumentError):
        store.insert(coll, [{"when": {"$date": "x", "extra": 1}}])
    with pytest.raises(InvalidDocumentError):
        store.insert(coll, [{"when": {"$date": True}}])
