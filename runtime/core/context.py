"""Context: per-node, per-flow and global key/value state, in one or more stores.

A store holds a dict per scope ("global", "flow:<id>", "node:<id>"). Keys are property paths
(`a.b[0]`) into that dict. Which store serves a key: an explicit `store` argument, a
`#:(store)::key` prefix as Node-RED's TypedInputs write it, the first matching key prefix from
settings, or the default store.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from sofiaflow.runtime.core import props
from sofiaflow.runtime.core.encoding import UNDEFINED
from sofiaflow.runtime.core.message import clone_value
from sofiaflow.runtime.errors import ValidationError


class ContextError(ValidationError):
    """An unknown store or a bad key."""


MISSING_KEY: Any = object()
"""What a keyed store's `read_key` gives for a key the scope does not hold."""


class ContextStore(Protocol):
    """A place context lives. Reads and writes are synchronous; persistence may lag (see flush)."""

    def get_scope(self, scope: str, create: bool = False) -> dict[str, Any] | None: ...

    def mark_dirty(self, scope: str) -> None: ...

    def delete_scope(self, scope: str) -> None: ...

    def scopes(self) -> Iterable[str]: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...


class KeyedContextStore(ContextStore, Protocol):
    """A store read and written key by key (the scope's data is not held here, e.g. Redis): `keyed = True`.

    ContextScope then reads and writes top-level keys with `read_key`/`write_key`/`delete_key`, writes inside
    one with `update_key` (atomic), and adds to numbers with the store's own atomic `incr`."""

    keyed: bool

    def read_key(self, scope: str, key: str) -> Any: ...

    def write_key(self, scope: str, key: str, value: Any) -> None: ...

    def delete_key(self, scope: str, key: str) -> None: ...

    def keys(self, scope: str) -> list[str]: ...

    def update_key(self, scope: str, key: str, change: Callable[[dict[str, Any]], Any]) -> Any: ...

    def incr(self, scope: str, key: str, by: int | float = 1) -> int | float: ...


def check_step(key: str, by: Any) -> None:
    """The step of an `incr` must be a finite number."""
    if (
        isinstance(by, bool)
        or not isinstance(by, (int, float))
        or (isinstance(by, float) and not math.isfinite(by))
    ):
        raise ContextError(f"incr of {key!r}: the step must be a finite number, not {by!r}")


def incr_value(key: str, current: Any, by: int | float) -> int | float:
    """`current + by` for `incr`: a missing value (None or undefined) counts as 0; anything but a number is
    an error naming the key."""
    if current is None or current is UNDEFINED:
        current = 0
    if isinstance(current, bool) or not isinstance(current, (int, float)):
        raise ContextError(f"incr of {key!r}: the value there is not a number but a {type(current).__name__}")
    return current + by


def _keyed(store: ContextStore) -> KeyedContextStore | None:
    return store if getattr(store, "keyed", False) else None  # type: ignore[return-value]


def top_key(key: str) -> str:
    if "." not in key and "[" not in key:
        return key
    first = props.parse_path(key)[0]
    if not isinstance(first, str):
        raise ContextError(f"context key {key!r} must start with a name")
    return first


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
        if keyed := _keyed(target):
            top = top_key(key)
            value = keyed.read_key(scope.name, top)
            return None if value is MISSING_KEY else props.get_path({top: value}, key)
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
        if keyed := _keyed(target):
            top = top_key(key)
            if top == key:
                keyed.write_key(scope.name, key, value)
            else:
                keyed.update_key(scope.name, top, lambda holder: props.set_path(holder, key, value))
            return
        data = target.get_scope(scope.name, create=True)
        if data is None:
            raise ContextError(f"context store {type(target).__name__} did not create scope {scope.name!r}")
        props.set_path(data, key, value)
        target.mark_dirty(scope.name)

    def delete(self, key: str, store: str | None = None) -> None:
        """Remove `key`."""
        scope, key = self._redirect(key)
        target, key = scope._manager.store_for(key, store)
        if keyed := _keyed(target):
            top = top_key(key)
            if top == key:
                keyed.delete_key(scope.name, key)
            else:
                keyed.update_key(scope.name, top, lambda holder: props.delete_path(holder, key))
            return
        data = target.get_scope(scope.name)
        if data is not None:
            props.delete_path(data, key)
            target.mark_dirty(scope.name)

    def incr(self, key: str, by: int | float = 1, store: str | None = None) -> int | float:
        """Add `by` to the number at `key` and return the new value, atomically (a sofiaflow extension:
        Node-RED's get then set is not atomic). A missing key counts as 0; a value that is not a number is a
        ContextError. In the redis store the increment is atomic across every worker of a cluster."""
        check_step(key, by)
        scope, key = self._redirect(key)
        target, key = scope._manager.store_for(key, store)
        if keyed := _keyed(target):
            return keyed.incr(scope.name, key, by)
        data = target.get_scope(scope.name, create=True)
        if data is None:
            raise ContextError(f"context store {type(target).__name__} did not create scope {scope.name!r}")
        value = incr_value(key, props.get_path(data, key), by)
        props.set_path(data, key, value)
        target.mark_dirty(scope.name)
        return value

    def keys(self, store: str | None = None) -> list[str]:
        """Top-level keys held in `store` (the default store when None)."""
        target, _ = self._manager.store_for("", store)
        if keyed := _keyed(target):
            return keyed.keys(self.name)
        data = target.get_scope(self.name)
        return list(data) if data else []

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A copy of this scope's data in every store, by store name."""
        return {
            name: clone_value(store.get_scope(self.name) or {})
            for name, store in self._manager.stores.items()
        }
