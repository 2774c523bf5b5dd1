"""NATIVE (MongoDB shell) queries: parsed safely, never evaluated; served the same on every backend."""

from __future__ import annotations

import os
import sys
import uuid

import pytest

from sofiaflow.runtime.data.rtdb.native_query import NativeQueryError, parse_native
from sofiaflow.runtime.onesait.queries import run_query
from sofiaflow.runtime.onesait.ssap import SsapError

sys.path.insert(0, os.path.dirname(__file__))
from onesait_stores import BACKENDS, StoreData, Stores  # noqa: E402


def test_find_chain_with_shell_literals():
    q = parse_native(
        "db.BasicSensor.find({'BasicSensor.assetId': 's-1', n: {$gte: -2.5e1, $in: [1, 2]}}, "
        '{BasicSensor: 1, _id: 0}).sort({"contextData.timestampMillis": -1}).skip(5).limit(10);'
    )
    assert (q.collection, q.operation, q.skip, q.limit) == ("BasicSensor", "find", 5, 10)
    assert q.filter == {"BasicSensor.assetId": "s-1", "n": {"$gte": -25.0, "$in": [1, 2]}}
    assert q.projection == {"BasicSensor": 1, "_id": 0}
    assert q.sort == [("contextData.timestampMillis", -1)]


def test_special_values():
    q = parse_native(
        "db.getCollection('X').find({a: /^ab\\.c/i, d: ISODate(\"2020-01-01T00:00:00Z\"), "
        "e: new Date('2021-02-03'), f: ObjectId('abc'), g: NumberLong(7), h: null, "
        "s: 'it\\'s \\u00e9'})"
    )
    assert q.collection == "X"
    assert q.filter == {
        "a": {"$regex": "^ab\\.c", "$options": "i"},
        "d": {"$date": "2020-01-01T00:00:00Z"},
        "e": {"$date": "2021-02-03"},
        "f": "abc",
        "g": 7,
        "h": None,
        "s": "it's é",
    }


def test_count_update_remove_forms():
    assert parse_native("db.X.count({a: 1})").operation == "count"
    assert parse_native("db.X.find({a: 1}).count()").operation == "count"
    assert parse_native("db.X.countDocuments()").filter == {}
    # the form onesait's Python client builds from Python dicts
    up = parse_native("db.X.update({'a': True}, {\"$set\": {\"b\": 1}}, {'multi': 'true'})")
    assert (up.operation, up.filter, up.update, up.multi) == ("update", {"a": True}, {"$set": {"b": 1}}, True)
    assert parse_native("db.X.update({}, {$inc: {n: 1}})").multi is False  # the shell's default
    assert parse_native("db.X.updateMany({}, {$inc: {n: 1}})").multi is True
    rm = parse_native("db.X.remove({a: {$lt: 3}})")
    assert (rm.operation, rm.multi) == ("remove", True)
    assert parse_native("db.X.remove({}, true)").multi is False
    assert parse_native("db.X.deleteOne({})").multi is False


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("db.X.aggregate([])", "aggregate"),
        ("db.X.find({}).map(function(d){return d})", "map"),
        ("db.X.find({a: eval('1')})", "'eval' at position 14"),
        ("db.X.find({a: this.b})", "this"),
        ("db.X.find({a: 1 / 2})", "'/'"),
        ("db.X.find({a: ", "end"),
        ("db.X.find().limit(-1)", "limit"),
        ("db.X.find().limit(1.5)", "limit"),
        ("db.X.update({}, {b: 1})", "replacing"),
        ("db.X.update({}, {$set: {b: 1}}, {upsert: true})", "upsert"),
        ("db.X.find({}) db.Y.find({})", "unexpected"),
        ("X.find()", "'db'"),
        ("db.X", "no method"),
        ("", "empty"),
        ("db.X.find(" + "[" * 100 + "]" * 100 + ")", "deeper"),
        ("db.X.find({a: 1}) ; drop()", "unexpected"),
    ],
)
def test_refused_with_a_clear_message(text, fragment):
    with pytest.raises(NativeQueryError) as exc:
        parse_native(text)
    assert fragment in str(exc.value)


# ----- run against real stores ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    s = Stores(tmp_path_factory.mktemp("native"))
    yield s
    s.close()


@pytest.fixture(params=BACKENDS)
def loaded(request, stores):
    store = stores.get(request.param)
    name = "BS" + uuid.uuid4().hex[:10]
    store.ensure_collection(name)
    docs = [
        {
            "_id": f"id{i:02d}",
            "BS": {"assetId": f"s-{i % 3}", "measure": i * 1.5},
            "contextData": {"timestampMillis": 1000 + i},
        }
        for i in range(10)
    ]
    store.insert(name, docs)
    yield StoreData(store), name
    store.drop(name)


def test_find_sort_skip_limit_projection(loaded):
    data, name = loaded
    out = run_query(
        data,
        name,
        f"db.{name}.find({{'BS.assetId': 's-1'}}, {{'BS.measure': 1}})"
        ".sort({'contextData.timestampMillis': -1}).skip(1).limit(2)",
        "NATIVE",
    )
    assert out == [
        {"_id": {"$oid": "id04"}, "BS": {"measure": 6.0}},
        {"_id": {"$oid": "id01"}, "BS": {"measure": 1.5}},
    ]
    assert run_query(data, name, f"db.{name}.count({{'BS.measure': {{$gt: 6}}}})", "NATIVE") == [{"count": 5}]
    assert run_query(data, name, f"db.{name}.find({{'BS.measure': {{$gt: 6}}}}).count()", "NATIVE") == [
        {"count": 5}
    ]


def test_query_must_name_its_ontology_and_only_read(loaded):
    data, name = loaded
    with pytest.raises(SsapError) as exc:
        run_query(data, name, "db.Other.find({})", "NATIVE")
    assert exc.value.code == "PROCESSOR" and "Other" in str(exc.value)
    with pytest.raises(SsapError, match="cannot remove"):
        run_query(data, name, f"db.{name}.remove({{}})", "NATIVE")
    with pytest.raises(SsapError, match="queryType"):
        run_query(data, name, f"db.{name}.find({{}})", "GRAPHQL")
