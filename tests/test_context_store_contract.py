"""Context stores: what `ContextScope.set` expects of a store, and the error when a store breaks it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from sofiaflow.runtime.core.context import ContextError, ContextManager, MemoryStore


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
