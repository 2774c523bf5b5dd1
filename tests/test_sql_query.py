"""onesait SQL queries: translated with sqlglot to the filter language; the same results as the NATIVE
form on SQLite, PostgreSQL and the MongoDB wire-protocol server (hypothesis)."""

from __future__ import annotations

import json
import os
import sys
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.data.rtdb.sql_query import SqlQueryError, like_to_regex, parse_sql
from sofiaflow.runtime.onesait.queries import run_query
from sofiaflow.runtime.onesait.ssap import SsapError

sys.path.insert(0, os.path.dirname(__file__))
from onesait_stores import BACKENDS, StoreData, Stores  # noqa: E402


def test_translation_of_the_onesait_example():
    q = parse_sql(
        "select * from BasicSensor as c where c.BasicSensor.measure > 20 and 5 >= contextData.n "
        "order by contextData.timestampMillis desc limit 10 offset 3"
    )
    assert q.collection == "BasicSensor"
    assert q.filter == {"$and": [{"BasicSensor.measure": {"$gt": 20}}, {"contextData.n": {"$lte": 5}}]}
    assert (q.sort, q.limit, q.skip, q.columns) == ([("contextData.timestampMillis", -1)], 10, 3, [])


def test_in_between_like_not_and_deep_paths():
    q = parse_sql(
        "select BasicSensor.a.b.c.d as x, BasicSensor.e from BasicSensor where BasicSensor.a.b.c "
        "like 'x%_.' and k not in (1, 2) and not (y between -1 and 3.5) or z = true"
    )
    assert [(c.name, c.path) for c in q.columns] == [("x", "BasicSensor.a.b.c.d"), ("e", "BasicSensor.e")]
    assert q.filter == {
        "$or": [
            {
                "$and": [
                    {"$and": [{"BasicSensor.a.b.c": {"$regex": "^x.*.\\.$"}}, {"k": {"$nin": [1, 2]}}]},
                    {"$nor": [{"y": {"$gte": -1, "$lte": 3.5}}]},
                ]
            },
            {"z": {"$eq": True}},
        ]
    }


def test_offset_before_limit_as_the_python_client_writes_it():
    q = parse_sql("select * from BasicSensor offset 2000 limit 2000")
    assert (q.skip, q.limit) == (2000, 2000)


def test_like_escapes_regex_characters():
    assert like_to_regex("a.b%c_(") == "^a\\.b.*c.\\($"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("update X set a = 1", "only SELECT"),
        ("delete from X", "only SELECT"),
        ("select * from A join B on A.x = B.y", "JOINS"),
        ("select distinct a from A", "DISTINCT"),
        ("select * from A where a is null", "IS NULL"),
        ("select * from A where a = b", "not a literal"),
        ("select upper(a) from A", "UPPER(a)"),
        ("select a, count(*) from A", "neither grouped nor aggregated"),
        ("select * from A where a in (select b from B)", "subqueries"),
        ("select * from", "syntax"),
        ("select * from A; select * from B", "one SQL statement"),
        ("select * from A limit 'x'", "LIMIT"),
        ("select sum(*) from A", "sum(*)"),
        ("select * from A group by a", "GROUP BY"),
        ("select * from A having count(*) > 1", "HAVING"),
    ],
)
def test_refused_with_the_unsupported_part_named(text, fragment):
    with pytest.raises(SqlQueryError) as exc:
        parse_sql(text)
    assert fragment in str(exc.value)


# ----- against real stores ------------------------------------------------------------------------------

ROOT = "BS"
DOCS = [
    {
        "_id": f"id{i:02d}",
        ROOT: {
            "assetId": f"s-{i % 4}",
            "measure": (i * 7) % 11 - 3.5 if i % 5 else i,
            "state": ["on", "off", "idle"][i % 3],
            "ok": i % 2 == 0,
        },
        "contextData": {"timestampMillis": 1000 + (i * 13) % 17, "device": f"d{i % 2}"},
    }
    for i in range(24)
]
DOCS[5][ROOT].pop("state")  # a missing field


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    stores = Stores(tmp_path_factory.mktemp("sql"))
    name = "BS" + uuid.uuid4().hex[:10]
    out = {}
    for kind in BACKENDS:
        store = stores.get(kind)
        store.ensure_collection(name)
        store.insert(name, DOCS)
        out[kind] = StoreData(store)
    yield name, out
    for data in out.values():
        data.store.drop(name)
    stores.close()


def _rows(name, data, sql):
    return run_query(data, name, sql, "SQL")


def test_select_columns_count_and_aggregates(loaded):
    name, datas = loaded
    for kind, data in datas.items():
        rows = _rows(
            name,
            data,
            f"select c.{ROOT}.assetId, {ROOT}.measure as m from {name} as c "
            f"where {ROOT}.assetId = 's-1' order by {ROOT}.measure desc limit 2",
        )
        top = sorted((d[ROOT]["measure"] for d in DOCS if d[ROOT]["assetId"] == "s-1"), reverse=True)[:2]
        assert rows == [{"assetId": "s-1", "m": m} for m in top], kind
        assert _rows(name, data, f"select count(*) from {name} where contextData.device = 'd1'") == [
            {"count(*)": 12}
        ], kind
        grouped = _rows(
            name,
            data,
            f"select {ROOT}.state, count(*) as n, max({ROOT}.measure) as top, "
            f"avg(contextData.timestampMillis) as t from {name} group by {ROOT}.state order by n desc, "
            "state",
        )
        expected = {}
        for d in DOCS:
            expected.setdefault(d[ROOT].get("state"), []).append(d)
        assert {r["state"]: r["n"] for r in grouped} == {k: len(v) for k, v in expected.items()}, kind
        assert {r["state"]: r["top"] for r in grouped} == {
            k: max(d[ROOT]["measure"] for d in v) for k, v in expected.items()
        }, kind
        assert grouped[0]["n"] == max(len(v) for v in expected.values())
        assert _rows(
            name, data, f"select sum({ROOT}.measure) as s, min({ROOT}.assetId) as a from {name}"
        ) == [{"s": sum(d[ROOT]["measure"] for d in DOCS), "a": "s-0"}], kind


def test_sql_errors_are_processor_errors(loaded):
    name, datas = loaded
    with pytest.raises(SsapError) as exc:
        _rows(name, datas["sqlite"], f"select * from {name} where a is null")
    assert exc.value.code == "PROCESSOR" and "IS NULL" in str(exc.value)
    with pytest.raises(SsapError, match="Other"):
        _rows(name, datas["sqlite"], "select * from Other")


# ----- hypothesis: the SQL and the NATIVE forms of one query agree, on every backend --------------------

FIELDS = {
    f"{ROOT}.measure": st.sampled_from([-3.5, -1, 0, 2, 4.5, 7, 10, 20]),
    f"{ROOT}.assetId": st.sampled_from(["s-0", "s-1", "s-2", "s-3", "s-9"]),
    f"{ROOT}.state": st.sampled_from(["on", "off", "idle", "x"]),
    "contextData.timestampMillis": st.integers(995, 1020),
}
OPS = {"=": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}


def _sql_value(v):
    return f"'{v}'" if isinstance(v, str) else repr(v)


@st.composite
def leaf(draw):
    path = draw(st.sampled_from(sorted(FIELDS)))
    kind = draw(st.sampled_from(["cmp", "in", "notin", "between", "like"]))
    if kind == "like" and path.endswith(("assetId", "state")):
        prefix = draw(st.sampled_from(["s-", "o", "i", "s-1", "z"]))
        return f"{path} like '{prefix}%'", {path: {"$regex": f"^{prefix}.*$"}}
    if kind in ("in", "notin"):
        values = draw(st.lists(FIELDS[path], min_size=1, max_size=3))
        sql = f"{path} {'not in' if kind == 'notin' else 'in'} ({', '.join(_sql_value(v) for v in values)})"
        return sql, {path: {"$nin" if kind == "notin" else "$in": values}}
    if kind == "between":
        low, high = sorted([draw(FIELDS[path]), draw(FIELDS[path])], key=lambda v: (isinstance(v, str), v))
        return f"{path} between {_sql_value(low)} and {_sql_value(high)}", {path: {"$gte": low, "$lte": high}}
    op = draw(st.sampled_from(sorted(OPS)))
    value = draw(FIELDS[path])
    return f"{path} {op} {_sql_value(value)}", {path: {OPS[op]: value}}


def combine(children):
    def build(pair):
        (sa, fa), (sb, fb) = pair[1], pair[2]
        if pair[0] == "and":
            return f"({sa} and {sb})", {"$and": [fa, fb]}
        if pair[0] == "or":
            return f"({sa} or {sb})", {"$or": [fa, fb]}
        return f"not ({sa})", {"$nor": [fa]}

    return st.tuples(st.sampled_from(["and", "or", "not"]), children, children).map(build)


conditions = st.recursive(leaf(), combine, max_leaves=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cond=st.one_of(st.none(), conditions),
    order=st.lists(
        st.tuples(st.sampled_from(sorted(FIELDS)), st.sampled_from([1, -1])),
        max_size=2,
        unique_by=lambda t: t[0],
    ),
    skip=st.integers(0, 5),
    limit=st.integers(0, 8),
)
def test_sql_and_native_forms_agree_on_every_backend(loaded, cond, order, skip, limit):
    name, datas = loaded
    where_sql, where_filter = cond if cond is not None else ("", {})
    sql = f"select * from {name}" + (f" where {where_sql}" if where_sql else "")
    native = f"db.{name}.find({json.dumps(where_filter)})"
    if order:
        sql += " order by " + ", ".join(f"{p} {'desc' if d < 0 else 'asc'}" for p, d in order)
        native += f".sort({json.dumps(dict(order))})"
    if limit:
        sql += f" limit {limit}"
        native += f".limit({limit})"
    if skip:
        sql += f" offset {skip}"
        native += f".skip({skip})"
    results = {}
    for kind, data in datas.items():
        by_sql = run_query(data, name, sql, "SQL")
        by_native = run_query(data, name, native, "NATIVE")
        assert by_sql == by_native, (kind, sql, native)
        count_sql = run_query(
            data,
            name,
            f"select count(*) as n from {name}" + (f" where {where_sql}" if where_sql else ""),
            "SQL",
        )[0]["n"]
        count_native = run_query(data, name, f"db.{name}.count({json.dumps(where_filter)})", "NATIVE")
        assert [{"count": count_sql}] == count_native, kind
        results[kind] = [d["_id"]["$oid"] for d in by_sql]
    assert results["sqlite"] == results["postgresql"] == results["mongo"], (sql, results)
