"""Context: per-node, per-flow and global key/value state, in one or more stores.

A store holds a dict per scope ("global", "flow:<id>", "node:<id>"). Keys are property paths
(`a.b[0]`) into that dict. Which store serves a key: an explicit `store` argument, a
`#:(store)::key` prefix as Node-RED's TypedInputs write it, the first matching key prefix from
settings, or the default store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from sofiaflow.runtime.core import props
from sofiaflow.runtime.core.message import clone_value
from sofiaflow.runtime.errors import ValidationError


class ContextError(ValidationError):
    """An unknown store or a bad key."""


class ContextStore(Protocol):
    """A place context lives. Reads and writes are synchronous; persistence may lag (see flush)."""

    def get_scope(self, scope: str, create: bool = False) -> dict[str, Any] | None: ...

    def mark_dirty(self, scope: str) -> None: ...

    def delete_scope(self, scope: str) -> None: ...

    def scopes(self) -> Iterable[str]: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """Context held in this process only; gone at restart."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}

    def get_scope(self, scope: str, create: bool = False) -> dict[str, Any] | None:
        data = self._data.get(scope)
        if data is None and create:
            data = self._data[scope] = {}
        return data

    def mark_dirty(self, scope: str) -> None:
        pass

    def delete_scope(self, scope: str) -> None:
        self._data.pop(scope, None)

    def scopes(self) -> Iterable[str]:
        return list(self._data)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass


_STORE_PREFIX = re.compile(r"^#:\((?P<store>[^)]*)\)::(?P<key>.*)$", re.S)


def parse_store_key(key: str) -> tuple[str | None, str]:
    """Split `#:(store)::key` into (store, key); plain keys give (None, key)."""
    m = _STORE_PREFIX.match(key) if key.startswith("#:") else None
    if m:
        return m.group("store") or None, m.group("key")
    return None, key


class ContextManager:
    """All context stores of a runtime, and the rules that choose one for a key."""

    def __init__(
        self,
        stores: dict[str, ContextStore] | None = None,
        default: str = "memory",
        prefixes: dict[str, str] | None = None,
    ) -> None:
        self.stores: dict[str, ContextStore] = stores or {"memory": MemoryStore()}
        if default not in self.stores:
            raise ContextError(f"default context store {default!r} is not configured")
        self.default = default
        self.prefixes = dict(prefixes or {})
        for prefix, name in self.prefixes.items():
            if name not in self.stores:
                raise ContextError(f"context prefix {prefix!r} names unknown store {name!r}")

    def store_for(self, key: str, store: str | None) -> tuple[ContextStore, str]:
        explicit, key = parse_store_key(key)
        name = store or explicit
        if name is None:
            for prefix, target in self.prefixes.items():
                if key.startswith(prefix):
                    name = target
                    break
        if name is None or name == "default":
            name = self.default
        try:
            return self.stores[name], key
        except KeyError:
            raise ContextError(f"unknown context store {name!r}") from None

    def scope(self, scope: str, parent: ContextScope | None = None) -> ContextScope:
        return ContextScope(self, scope, parent)

    def delete_scope(self, scope: str) -> None:
        for s in self.stores.values():
            s.delete_scope(scope)

    async def open(self) -> None:
        for s in self.stores.values():
            await s.open()

    async def close(self) -> None:
        for s in self.stores.values():
            await s.close()


class ContextScope:
    """The `context` / `flow` / `global` object a node or script sees.

    Inside a subflow, `flow.get("$parent.key")` reads the enclosing flow's context.
    """

    __slots__ = ("_manager", "name", "parent")

    def __init__(self, manager: ContextManager, name: str, parent: ContextScope | None = None) -> None:
        self._manager = manager
        self.name = name
        self.parent = parent

    def _redirect(self, key: str) -> tuple[ContextScope, str]:
        scope = self
        while key.startswith("$parent.") and scope.parent is not None:
            scope, key = scope.parent, key[len("$parent.") :]
        return scope, key

    def get(self, key: str | list[str], store: str | None = None) -> Any:
        """The value at `key` (a property path), or None; a list of keys gives a list of values."""
        if isinstance(key, list):
            return [self.get(k, store) for k in key]
        scope, key = self._redirect(key)
        target, key = scope._manager.store_for(key, store)
        data = target.get_scope(scope.name)
        if data is None:
            return None
        return props.get_path(data, key)

    def set(self, key: str | list[str], value: Any = None, store: str | None = None) -> None:
        """Set `key` to `value`; a list of keys takes a list of values."""
        if isinstance(key, list):
            values = value if isinstance(value, list) else [value] * len(key)
            for k, v in zip(key, values, strict=False):
                self.set(k, v, store)
            return
        scope, key = self._redirect(key)
        target, key = scope._manager.store_for(key, store)
        data = target.get_scope(scope.name, create=True)
        if data is None:
            raise ContextError(f"context store {type(target).__name__} did not create scope {scope.name!r}")
        props.set_path(data, key, value)
        target.mark_dirty(scope.name)

    def delete(self, key: str, store: str | None = None) -> None:
        """Remove `key`."""
        scope, key = self._redirect(key)
        target, key = scope._manager.store_for(key, store)
        data = target.get_scope(scope.name)
        if data is not None:
            props.delete_path(data, key)
            target.mark_dirty(scope.name)

    def keys(self, store: str | None = None) -> list[str]:
        """Top-level keys held in `store` (the default store when None)."""
        target, _ = self._manager.store_for("", store)
        data = target.get_scope(self.name)
        return list(data) if data else []

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A copy of this scope's data in every store, by store name."""
        return {
            name: clone_value(store.get_scope(self.name) or {})
            for name, store in self._manager.stores.items()
        }
