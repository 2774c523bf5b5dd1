"""Idempotency keys in the real-time DB, on every backend (SQLite, PostgreSQL, the MongoDB wire-protocol server):
a key is stored once, enforced by a unique index, whoever inserts it; the key stays beside the document."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from sofiaflow.runtime.data.rtdb import DuplicateKeyError, InvalidDocumentError, open_store
from sofiaflow.runtime.data.rtdb.base import MAX_STORED_KEY_LENGTH, scoped_key

sys.path.insert(0, os.path.dirname(__file__))
from test_rtdb_backends import _get_store, _servers, _stores  # noqa: E402, F401 - the session's servers


@pytest.fixture(params=["sqlite", "postgresql", "mongo"])
def store(request, _servers, _stores, tmp_path_factory):  # noqa: F811
    return _get_store(request.param, _servers, _stores, tmp_path_factory)


@pytest.fixture
def coll(store):
    name = "k" + uuid.uuid4().hex[:12]
    store.ensure_collection(name, indexes=["a"], unique=["code"])
    yield name
    store.drop(name)


def test_the_same_key_twice_stores_one_instance_and_answers_its_id(store, coll):
    first = store.insert(coll, [{"n": 1}], keys=["dev-1/7"])
    again = store.insert(coll, [{"n": 2}], keys=["dev-1/7"])
    assert again == first
    assert store.count(coll) == 1
    assert store.find(coll) == [{"_id": first[0], "n": 1}]  # the first stays; the key is not shown
    assert store.find_keys(coll, ["dev-1/7", "other"]) == {"dev-1/7": first[0]}


def test_the_key_is_not_shown_by_any_projection(store, coll):
    [_id] = store.insert(coll, [{"n": 1, "a": 2}], keys=["k"])
    assert store.find(coll, {}, {"n": 0}) == [{"_id": _id, "a": 2}]
    assert store.find(coll, {}, {"n": 1}) == [{"_id": _id, "n": 1}]
    assert store.find(coll, {}, {"_id": 0}) == [{"n": 1, "a": 2}]


def test_a_batch_with_a_key_repeated_inside_and_one_already_stored(store, coll):
    [old] = store.insert(coll, [{"n": 0}], keys=["b"])
    ids = store.insert(
        coll, [{"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}, {"n": 5}], keys=["a", "b", "a", None, None]
    )
    assert ids[1] == old and ids[2] == ids[0]
    assert len(set(ids)) == 4
    assert store.count(coll) == 4
    assert sorted(d["n"] for d in store.find(coll)) == [0, 1, 4, 5]


def test_insert_once_says_which_documents_it_did_not_store(store, coll):
    assert store.insert_once(coll, [{"_id": "a1"}, {"_id": "a2"}, {"_id": "a3"}], keys=["a", "a", None]) == [
        ("a1", False),
        ("a1", True),
        ("a3", False),
    ]
    # a retry of the same document, its own `_id` included: a duplicate, not an error
    assert store.insert_once(coll, [{"_id": "a1"}, {"_id": "b1"}], keys=["a", "b"]) == [
        ("a1", True),
        ("b1", False),
    ]
    assert store.count(coll) == 3


def test_unkeyed_inserts_and_other_duplicates_are_unchanged(store, coll):
    store.insert(coll, [{"_id": "x", "code": "A"}], keys=["kx"])
    with pytest.raises(DuplicateKeyError):
        store.insert(coll, [{"_id": "x"}], keys=["ky"])  # the `_id` is taken: an error, not a duplicate
    with pytest.raises(DuplicateKeyError):
        store.insert(coll, [{"code": "A"}], keys=["kz"])  # a unique field too
    assert store.find_keys(coll, ["ky", "kz"]) == {}
    assert len(store.insert(coll, [{"n": 1}, {"n": 1}])) == 2
    assert store.count(coll) == 3


@pytest.mark.parametrize(
    "keys, message",
    [
        (["a"], "one per document (2)"),
        (["a", ""], "idempotency key 1: must be a non-empty string"),
        (["a", 5], "idempotency key 1: must be a non-empty string"),
        (
            ["a", "x" * (MAX_STORED_KEY_LENGTH + 1)],
            f"idempotency key 1: {MAX_STORED_KEY_LENGTH + 1} characters, at most {MAX_STORED_KEY_LENGTH}",
        ),
        (["a\x00", None], "idempotency key 0: the NUL character"),
    ],
)
def test_bad_keys_are_refused_by_name(store, coll, keys, message):
    with pytest.raises(InvalidDocumentError, match=re.escape(message)):
        store.insert(coll, [{"n": 1}, {"n": 2}], keys=keys)
    assert store.count(coll) == 0


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batches=st.lists(
        st.lists(st.one_of(st.none(), st.sampled_from("abcde")), min_size=1, max_size=6),
        min_size=1,
        max_size=6,
    )
)
def test_any_sequence_of_inserts_stores_each_key_once(store, batches):
    name = "h" + uuid.uuid4().hex[:12]
    store.ensure_collection(name)
    try:
        answers: dict[str, set[str]] = {}
        unkeyed = 0
        for n, keys in enumerate(batches):
            got = store.insert_once(name, [{"batch": n, "i": i} for i in range(len(keys))], keys=keys)
            assert len(got) == len(keys)
            for key, (_id, duplicate) in zip(keys, got, strict=True):
                if key is None:
                    unkeyed += 1
                    assert not duplicate
                else:
                    assert duplicate == (key in answers)  # only a key's first insert stores it
                    answers.setdefault(key, set()).add(_id)
        stored = store.find_keys(name, list("abcde"))
        assert set(stored) == set(answers)
        assert {key: ids for key, ids in answers.items()} == {key: {stored[key]} for key in answers}
        assert store.count(name) == len(answers) + unkeyed
        assert {d["_id"] for d in store.find(name)} >= set(stored.values())
    finally:
        store.drop(name)


def test_two_stores_racing_on_the_same_keys_store_each_once(store, coll):
    """Two engines (connection pools) on the same database insert the same 40 keys at once."""
    other = open_store(store.url)
    try:
        keys = [f"dev/{n}" for n in range(40)]
        answers: list[list[str]] = [[], []]
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def run(s, who: int, order: list[str]) -> None:
            try:
                start.wait(30)
                for key in order:
                    answers[who % 2].append((key, s.insert(coll, [{"who": who}], keys=[key])[0]))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [
            threading.Thread(target=run, args=(store, 0, keys)),
            threading.Thread(target=run, args=(other, 1, keys[::-1])),
            threading.Thread(target=run, args=(store, 2, keys[::2] + keys[1::2])),
            threading.Thread(target=run, args=(other, 3, keys[1::2] + keys[::2])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        assert store.count(coll) == len(keys)
        stored = store.find_keys(coll, keys)
        for key, _id in answers[0] + answers[1]:
            assert stored[key] == _id
    finally:
        other.close()


def test_a_table_made_before_keys_gets_them_and_keeps_its_rows(store, tmp_path):
    name = "m" + uuid.uuid4().hex[:12]
    if store.url.startswith("mongodb"):
        store._col(name).insert_many([{"_id": "old1", "n": 1}, {"_id": "old2", "n": 2}])
    else:
        engine = create_engine(store.engine.url)
        kind = "TEXT" if store.url.startswith("sqlite") else "JSONB"
        with engine.begin() as conn:
            conn.execute(text(f'CREATE TABLE "rt_{name}" (id TEXT PRIMARY KEY, doc {kind} NOT NULL)'))
            conn.execute(
                text(f'INSERT INTO "rt_{name}" (id, doc) VALUES (\'old1\', \'{{"_id": "old1", "n": 1}}\')')
            )
            conn.execute(
                text(f'INSERT INTO "rt_{name}" (id, doc) VALUES (\'old2\', \'{{"_id": "old2", "n": 2}}\')')
            )
        engine.dispose()
    fresh = open_store(store.url)  # a runtime starting on the old table
    try:
        fresh.ensure_collection(name)
        assert sorted(d["_id"] for d in fresh.find(name)) == ["old1", "old2"]
        [a] = fresh.insert(name, [{"n": 3}], keys=["k"])
        assert fresh.insert(name, [{"n": 4}], keys=["k"]) == [a]
        assert fresh.count(name) == 3
    finally:
        fresh.drop(name)
        fresh.close()


def _legacy_keyed_collection(store, name: str, rows: list[tuple[str, int, str | None]]) -> None:
    """A collection as the runtime left it before keys had scopes: each (id, n, key) stored with its key as given,
    under the unique index of that time."""
    if store.url.startswith("mongodb"):
        col = store._col(name)
        col.create_index(
            [("_idempotencyKey", 1)],
            unique=True,
            name="rt_idempotency_key",
            partialFilterExpression={"_idempotencyKey": {"$type": "string"}},
        )
        col.insert_many(
            [{"_id": i, "n": n, **({"_idempotencyKey": k} if k is not None else {})} for i, n, k in rows]
        )
        return
    engine = create_engine(store.engine.url)
    kind = "TEXT" if store.url.startswith("sqlite") else "JSONB"
    index = "rtk_" + hashlib.sha1(name.encode()).hexdigest()[:12]
    with engine.begin() as conn:
        conn.execute(text(f'CREATE TABLE "rt_{name}" (id TEXT PRIMARY KEY, doc {kind} NOT NULL, ikey TEXT)'))
        conn.execute(text(f'CREATE UNIQUE INDEX "{index}" ON "rt_{name}" (ikey)'))
        for i, n, k in rows:
            conn.execute(
                text(f'INSERT INTO "rt_{name}" (id, doc, ikey) VALUES (:i, :d, :k)'),
                {"i": i, "d": json.dumps({"_id": i, "n": n}), "k": k},
            )
    engine.dispose()


def test_keys_stored_before_scopes_become_the_platforms_once(store):
    """Keys stored before they had scopes cannot tell whose they were: they become the platform's (administrators'
    and ownerless flows'), once, however often and by how many workers the collection is opened; a developer's
    key of the same text is another key."""
    name = "s" + uuid.uuid4().hex[:12]
    # a legacy key that looks like a scoped one is still just a legacy key
    legacy = [("old1", 1, "dev/1"), ("old2", 2, scoped_key(None, "dev/1")), ("old3", 3, None)]
    _legacy_keyed_collection(store, name, legacy)
    workers = [open_store(store.url) for _ in range(3)]  # three workers starting on it at once
    first, second = workers[0], workers[1]
    try:
        start = threading.Barrier(len(workers))
        errors: list[BaseException] = []

        def begin(worker) -> None:
            try:
                start.wait(30)
                worker.ensure_collection(name)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=begin, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        platform = [scoped_key(None, "dev/1"), scoped_key(None, scoped_key(None, "dev/1"))]
        assert first.find_keys(name, platform) == {platform[0]: "old1", platform[1]: "old2"}
        assert first.find_keys(name, ["dev/1", scoped_key("ana", "dev/1")]) == {}
        assert second.insert_once(name, [{"n": 4}, {"n": 5}], keys=platform) == [
            ("old1", True),
            ("old2", True),
        ]
        [(ana, dup)] = first.insert_once(name, [{"n": 6}], keys=[scoped_key("ana", "dev/1")])
        assert not dup and ana not in ("old1", "old2")
        assert sorted(first.find(name), key=lambda d: d["n"]) == [
            {"_id": "old1", "n": 1},
            {"_id": "old2", "n": 2},
            {"_id": "old3", "n": 3},
            {"_id": ana, "n": 6},
        ]
        third = open_store(store.url)  # a later start rewrites nothing again
        try:
            third.ensure_collection(name)
            assert third.find_keys(name, platform) == {platform[0]: "old1", platform[1]: "old2"}
        finally:
            third.close()
    finally:
        first.drop(name)
        for worker in workers:
            worker.close()
