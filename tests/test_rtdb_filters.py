"""The real-time DB filter language: validation and the pure-Python reference matcher."""

from __future__ import annotations

import pytest

from sofiaflow.runtime.data.rtdb import InvalidFilterError, UnsupportedFilterError, matches, parse_filter
from sofiaflow.runtime.data.rtdb.base import (
    InvalidDocumentError,
    InvalidUpdateError,
    UpdateError,
    apply_projection,
    apply_update,
    check_projection,
    check_update,
    prepare_doc,
)
from sofiaflow.runtime.data.rtdb.filters import regex_to_postgres, sort_key

DOCS = {
    "num": {"_id": "num", "x": 5},
    "str": {"_id": "str", "x": "a"},
    "arr": {"_id": "arr", "x": [1, "z", {"y": 2}]},
    "null": {"_id": "null", "x": None},
    "missing": {"_id": "missing"},
    "obj": {"_id": "obj", "x": {"y": [3, 4]}},
    "bool": {"_id": "bool", "x": True},
    "nested": {"_id": "nested", "x": [[1, 2], 7]},
}


def ids(flt):
    return sorted(k for k, d in DOCS.items() if matches(d, flt))


@pytest.mark.parametrize(
    "flt, expected",
    [
        ({}, sorted(DOCS)),
        (None, sorted(DOCS)),
        ({"x": 5}, ["num"]),
        ({"x": {"$eq": 1}}, ["arr"]),  # an array element
        ({"x": {"$gt": 4}}, ["nested", "num"]),  # numbers only: "a" and true are not > 4
        ({"x": {"$gt": "0"}}, ["arr", "str"]),  # strings only
        ({"x": {"$lt": 2}}, ["arr"]),  # nested arrays are not searched: [[1, 2], 7] has no x < 2
        ({"x": None}, ["missing", "null"]),
        ({"x": {"$ne": None}}, ["arr", "bool", "nested", "num", "obj", "str"]),
        ({"x": {"$exists": False}}, ["missing"]),
        ({"x": {"$exists": True}}, sorted(set(DOCS) - {"missing"})),
        ({"x.y": 2}, ["arr"]),  # through an array
        ({"x.y": {"$gte": 3}}, ["obj"]),  # terminal array elements
        ({"x.y": {"$exists": True}}, ["arr", "obj"]),
        ({"x": {"$ne": 5}}, sorted(set(DOCS) - {"num"})),
        ({"x": {"$not": {"$gt": 4}}}, sorted(set(DOCS) - {"num", "nested"})),
        ({"x": {"$regex": "^A", "$options": "i"}}, ["str"]),
        ({"x": {"$regex": "z"}}, ["arr"]),
        ({"x": {"$in": [None, 5]}}, ["missing", "null", "num"]),
        ({"x": {"$nin": [None, 5]}}, ["arr", "bool", "nested", "obj", "str"]),
        ({"x": {"$in": []}}, []),
        ({"x": [1, 2]}, ["nested"]),  # whole-element array equality
        ({"x": [[1, 2], 7]}, ["nested"]),  # whole-array equality
        ({"x": [2, 1]}, []),
        ({"x": True}, ["bool"]),
        ({"x": 1.0}, ["arr"]),  # numbers compare by value
        ({"$or": [{"x": 5}, {"x": "a"}]}, ["num", "str"]),
        ({"$and": [{"x": {"$gte": 1}}, {"x": {"$lte": 1}}]}, ["arr"]),
        ({"$nor": [{"x": {"$exists": False}}, {"x": 5}]}, sorted(set(DOCS) - {"missing", "num"})),
        ({"_id": "num", "x": 5}, ["num"]),
        ({"_id": "num", "x": 6}, []),
    ],
)
def test_reference_matcher(flt, expected):
    assert ids(flt) == expected


@pytest.mark.parametrize(
    "flt, word",
    [
        ({"x": {"$foo": 1}}, "$foo"),
        ({"$foo": []}, "$foo"),
        ({"$and": []}, "$and"),
        ({"$or": {"x": 1}}, "$or"),
        ({"x": {"$in": 5}}, "$in"),
        ({"x": {"$exists": "yes"}}, "$exists"),
        ({"x": {"$gt": 1, "y": 2}}, "mix"),
        ({"x": {"$options": "i"}}, "$options"),
        ({"x": {"$regex": "("}}, "$regex"),
        ({"x": {"$not": 5}}, "$not"),
        ({"x": float("nan")}, "NaN"),
        ({"": 1}, "path"),
        (["x"], "object"),
    ],
)
def test_invalid_filters(flt, word):
    with pytest.raises(InvalidFilterError) as e:
        parse_filter(flt)
    assert word in str(e.value)


@pytest.mark.parametrize(
    "flt, word",
    [
        ({"x": {"$elemMatch": {"y": 1}}}, "$elemMatch"),
        ({"x": {"$size": 2}}, "$size"),
        ({"$where": "1"}, "$where"),
        ({"x": {"y": 1}}, "embedded object"),
        ({"x": {"$eq": {"y": 1}}}, "embedded object"),
        ({"x": [{"y": 1}]}, "objects"),
        ({"x.y": None}, "dotted"),
        ({"x.y": {"$in": [1, None]}}, "dotted"),
        ({"x": {"$gt": None}}, "$gt"),
        ({"x": {"$lt": True}}, "$lt"),
        ({"x.0": 1}, "'0'"),
        ({"x-y": 1}, "x-y"),
        ({"x": {"$regex": "\\d+"}}, "escape"),
        ({"x": {"$regex": "a{2}"}}, "quantifiers"),
        ({"x": {"$regex": "(?i)a"}}, "(?...)"),
        ({"x": {"$regex": "[[:alpha:]]"}}, "POSIX"),
        ({"x": {"$regex": "a", "$options": "m"}}, "$options"),
        ({"x": {"$regex": "é", "$options": "i"}}, "non-ASCII"),
    ],
)
def test_unsupported_filters_name_the_operator(flt, word):
    with pytest.raises(UnsupportedFilterError) as e:
        parse_filter(flt)
    assert word in str(e.value)


def test_regex_translation_for_postgres():
    assert regex_to_postgres("a.b$") == "a[^\n]b(?:\n?$)"
    assert regex_to_postgres("[.$]\\.") == "[.$]\\."
    assert regex_to_postgres("[^]a].") == "[^]a][^\n]"


def test_sort_key_orders_types_like_mongodb():
    docs = [{"v": "b"}, {"v": 2}, {}, {"v": None}, {"v": True}, {"v": -1.5}, {"v": "a"}]
    out = sorted(docs, key=lambda d: sort_key(d, ("v",)))
    assert [d.get("v", "-") for d in out] == ["-", None, -1.5, 2, "a", "b", True]
    with pytest.raises(UnsupportedFilterError):
        sort_key({"v": [1]}, ("v",))
    with pytest.raises(UnsupportedFilterError):
        sort_key({"v": [{"w": 1}]}, ("v", "w"))


def test_projection():
    doc = {"_id": "1", "a": 1, "b": {"c": 2, "d": 3}, "e": [{"c": 1, "f": 2}, 5]}
    assert apply_projection(doc, check_projection({"a": 1})) == {"_id": "1", "a": 1}
    assert apply_projection(doc, check_projection({"b.c": 1, "_id": 0})) == {"b": {"c": 2}}
    assert apply_projection(doc, check_projection({"e.c": 1})) == {"_id": "1", "e": [{"c": 1}]}
    assert apply_projection(doc, check_projection({"b": 0, "e": 0})) == {"_id": "1", "a": 1}
    assert apply_projection(doc, check_projection({"_id": 0})) == {k: v for k, v in doc.items() if k != "_id"}
    with pytest.raises(InvalidFilterError):
        check_projection({"a": 1, "b": 0})
    with pytest.raises(InvalidFilterError):
        check_projection({"a": 1, "a.b": 1})


def test_update_application():
    doc = {"_id": "1", "n": 1, "s": "x", "o": {"k": 1}}
    spec = check_update(
        {
            "$set": {"o.m": [1], "new.deep": True},
            "$inc": {"n": 2.5, "z": 1},
            "$unset": {"s": "", "nothere.x": ""},
        }
    )
    assert apply_update(doc, spec) == {
        "_id": "1",
        "n": 3.5,
        "o": {"k": 1, "m": [1]},
        "new": {"deep": True},
        "z": 1,
    }
    assert doc["n"] == 1  # not mutated
    with pytest.raises(UpdateError):
        apply_update(doc, check_update({"$inc": {"s": 1}}))
    with pytest.raises(UpdateError):
        apply_update(doc, check_update({"$set": {"s.t": 1}}))
    for bad in (
        {},
        {"$push": {"a": 1}},
        {"$set": {"_id": "2"}},
        {"$inc": {"n": "1"}},
        {"$set": {"a": 1}, "$unset": {"a.b": ""}},
        {"$set": {"a": float("inf")}},
    ):
        with pytest.raises(InvalidUpdateError):
            check_update(bad)


def test_prepare_doc():
    d = prepare_doc({"a": 1})
    assert list(d) == ["_id", "a"] and len(d["_id"]) == 32
    assert prepare_doc({"a": 1, "_id": "k"}) == {"_id": "k", "a": 1}
    for bad in (
        {"_id": 5},
        {"a": float("nan")},
        {"$a": 1},
        {"a.b": 1},
        {"a": {1: 2}},
        {"a": object()},
        {"a": 2**64},
    ):
        with pytest.raises(InvalidDocumentError):
            prepare_doc(bad)
