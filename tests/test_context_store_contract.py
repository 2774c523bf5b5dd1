"""Context stores: what `ContextScope.set` expects of a store, and the error when a store breaks it; every
store (memory, persistent, redis) against the same contract, `incr` included."""

from __future__ import annotations

import asyncio
import copy
import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis_server import redis_per_module  # noqa: F401 - the redis_url fixture

from sofiaflow.runtime.core.context import (
    ContextError,
    ContextManager,
    ContextScope,
    ContextStore,
    MemoryStore,
)


class _NeverCreates(MemoryStore):
    """A faulty store: asked to create a scope, it returns None."""

    def get_scope(self, scope: str, create: bool = False) -> dict[str, Any] | None:
        return None

    def scopes(self) -> Iterable[str]:
        return []


def test_set_creates_the_scope_in_the_store() -> None:
    store = MemoryStore()
    scope = ContextManager({"memory": store}).scope("flow:f1")
    scope.set("a.b", 3)
    assert store.get_scope("flow:f1") == {"a": {"b": 3}}
    assert scope.get("a.b") == 3


def test_a_store_that_does_not_create_the_scope_is_named_in_the_error() -> None:
    scope = ContextManager({"memory": _NeverCreates()}).scope("node:n1")
    with pytest.raises(ContextError, match=r"_NeverCreates did not create scope 'node:n1'"):
        scope.set("count", 1)


# ---- every store against the same contract ------------------------------------------------------------------

STORES = ["memory", "persistent", "redis"]


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContextStore]:
    made: ContextStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "persistent":
        from sofiaflow.runtime.core.context_sql import SqlContextStore
        from sofiaflow.runtime.data.config_db import connect

        made = SqlContextStore(connect(f"sqlite:///{tmp_path / 'config.db'}"), "persistent", 3600)
    else:
        from sofiaflow.runtime.core.context_redis import RedisContextStore

        made = RedisContextStore(request.getfixturevalue("redis_url"), prefix=f"test:{uuid.uuid4().hex}")
    loop = asyncio.new_event_loop()  # the persistent store's flusher lives on it until close
    loop.run_until_complete(made.open())
    try:
        yield made
    finally:
        loop.run_until_complete(made.close())
        loop.close()


def _scope(store: ContextStore, name: str = "flow:f1") -> ContextScope:
    return ContextManager({"s": store}, default="s").scope(name)


def test_contract_set_get_nested_and_lists(store: ContextStore) -> None:
    scope = _scope(store)
    assert scope.get("missing") is None
    assert scope.get("missing.deeper[2]") is None
    scope.set("a.b", 3)
    scope.set("a.c[1]", "x")
    scope.set("top", {"k": [1, 2.5, None, True, "s"]})
    assert scope.get("a") == {"b": 3, "c": [None, "x"]}
    assert scope.get("a.c[1]") == "x"
    assert scope.get(["a.b", "top.k[1]", "nope"]) == [3, 2.5, None]
    scope.set(["p", "q"], [1, 2])
    assert scope.get(["p", "q"]) == [1, 2]
    assert sorted(scope.keys()) == ["a", "p", "q", "top"]
    assert store.get_scope("flow:f1") == {
        "a": {"b": 3, "c": [None, "x"]},
        "top": {"k": [1, 2.5, None, True, "s"]},
        "p": 1,
        "q": 2,
    }


def test_contract_delete_and_scopes(store: ContextStore) -> None:
    scope = _scope(store)
    scope.set("a.b", 1)
    scope.set("a.c", 2)
    scope.set("z", 0)
    scope.delete("a.b")
    assert scope.get("a") == {"c": 2}
    scope.delete("z")
    assert scope.get("z") is None
    assert scope.keys() == ["a"]
    scope.delete("never.there")  # missing steps are ignored
    other = _scope(store, "node:f1:n1")
    other.set("x", 1)
    assert {"flow:f1", "node:f1:n1"} <= set(store.scopes())
    store.delete_scope("flow:f1")
    assert store.get_scope("flow:f1") is None
    assert scope.get("a") is None
    assert other.get("x") == 1


def test_contract_scopes_are_apart(store: ContextStore) -> None:
    one, two = _scope(store, "global:alice"), _scope(store, "global:bob")
    one.set("k", "alice's")
    assert two.get("k") is None
    two.set("k", "bob's")
    assert (one.get("k"), two.get("k")) == ("alice's", "bob's")


def test_contract_get_scope_copy_written_by_mark_dirty(store: ContextStore) -> None:
    data = store.get_scope("flow:w", create=True)
    assert data is not None
    data["n"] = 5
    data["o"] = {"p": "q"}
    store.mark_dirty("flow:w")
    assert _scope(store, "flow:w").get("o.p") == "q"
    data = store.get_scope("flow:w")
    assert data is not None
    del data["n"]
    store.mark_dirty("flow:w")
    assert _scope(store, "flow:w").keys() == ["o"]


def test_contract_incr(store: ContextStore) -> None:
    scope = _scope(store)
    assert scope.incr("count") == 1
    assert scope.incr("count", 4) == 5
    assert scope.incr("count", -7) == -2
    assert scope.get("count") == -2
    assert scope.incr("f", 0.5) == 0.5
    assert scope.incr("f", 0.25) == 0.75
    assert scope.incr("stats.hits") == 1
    assert scope.incr("stats.hits", 2) == 3
    assert scope.get("stats") == {"hits": 3}
    scope.set("word", "text")
    with pytest.raises(ContextError, match=r"incr of 'word': the value there is not a number"):
        scope.incr("word")
    with pytest.raises(ContextError, match=r"incr of 'count': the step must be a finite number"):
        scope.incr("count", "1")  # type: ignore[arg-type]
    assert scope.get("word") == "text"
    assert scope.get("count") == -2


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["n", "deep.n", "arr[1]"]), st.integers(min_value=-(10**9), max_value=10**9)
        ),
        max_size=12,
    )
)
def test_contract_incr_matches_a_running_sum(store: ContextStore, steps: list[tuple[str, int]]) -> None:
    """Whatever the store, incr gives what adding by hand gives, for top-level and nested keys."""
    scope = _scope(store, f"flow:{uuid.uuid4().hex}")
    expected: dict[str, int] = {}
    for key, by in steps:
        expected[key] = expected.get(key, 0) + by
        assert scope.incr(key, by) == expected[key]
    for key, value in expected.items():
        assert scope.get(key) == value


def test_contract_through_store_prefix_and_default(store: ContextStore) -> None:
    manager = ContextManager({"memory": MemoryStore(), "s": store}, default="memory")
    scope = manager.scope("global")
    scope.set("#:(s)::k", 1)
    assert scope.get("k") is None  # the default store (memory) does not hold it
    assert scope.get("#:(s)::k") == 1
    assert scope.incr("k", 2, "s") == 3
    assert scope.snapshot()["s"] == {"k": 3}


_PATHS = st.sampled_from(["a", "a.b", "a.c", "a.b.d", "b", "b[0]", "b[1].x", "c"])
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["x", "y"]), inner, max_size=2)
    ),
    max_leaves=6,
)
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), _PATHS, _VALUES),
        st.tuples(st.just("delete"), _PATHS, st.none()),
        st.tuples(st.just("incr"), st.sampled_from(["n", "m.k"]), st.integers(-100, 100)),
    ),
    max_size=15,
)


def _json(value: Any) -> Any:
    return json.loads(json.dumps(value))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS)
def test_contract_any_sequence_leaves_what_the_memory_store_leaves(store: ContextStore, ops: list) -> None:
    """set, delete and incr on nested paths give, in every store, the data the memory store holds."""
    name = f"flow:{uuid.uuid4().hex}"
    model, scope = _scope(MemoryStore(), name), _scope(store, name)
    for op, path, value in ops:
        outcomes = []
        for target in (model, scope):
            try:
                if op == "set":
                    target.set(path, copy.deepcopy(value))
                elif op == "delete":
                    target.delete(path)
                else:
                    outcomes.append(target.incr(path, value))
                    continue
                outcomes.append(None)
            except Exception as exc:  # noqa: BLE001 - both must fail alike
                outcomes.append(type(exc).__name__)
        assert outcomes[0] == outcomes[1], (op, path, value)
        for key in ("a", "b", "c", "n", "m"):
            # as JSON: `b[0]` on an object is key 0 in memory, "0" once stored as JSON (and in Node-RED)
            assert _json(scope.get(key)) == _json(model.get(key)), (op, path, value, key)
    assert sorted(scope.keys()) == sorted(model.keys())
