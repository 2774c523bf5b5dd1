"""Plain data in python function bodies: the classes `type()` may return, and the `copy` module bodies get.

Plain data is values of a fixed set of classes (numbers, text, bytes, containers, dates, Decimal, Fraction,
UUID and the `collections` containers) that carry no hidden state. Anything else may be a host object
whose private attributes (`__dict__`, `__reduce_ex__` state) lead to the node, the engine and the process,
so `type()` returns only these classes and the body's `copy.copy` / `copy.deepcopy` copy only these,
by walking them here rather than through the pickle protocol (no `memo` argument either: the real
deepcopy keeps every copied object's state alive in `memo[id(memo)]`).
"""

from __future__ import annotations

import builtins
import collections
import copy as real_copy
import datetime
import types
import uuid
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sofiaflow.nodes.function.sandbox_policy import WHERE
from sofiaflow.runtime.api import ValidationError

_ATOMS = frozenset(
    {
        int,
        float,
        complex,
        bool,
        str,
        bytes,
        type(None),
        range,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        datetime.timezone,
        Decimal,
        Fraction,
        uuid.UUID,
    }
)
_CONTAINERS = frozenset(
    {
        list,
        tuple,
        dict,
        set,
        frozenset,
        bytearray,
        slice,
        collections.deque,
        collections.OrderedDict,
        collections.defaultdict,
        collections.Counter,
    }
)
PLAIN_TYPES = _ATOMS | _CONTAINERS
"""Classes whose instances are plain data (exact classes: a subclass may carry anything)."""

BUILTIN_EXCEPTIONS = frozenset(
    value for value in vars(builtins).values() if isinstance(value, type) and issubclass(value, BaseException)
)
_FACTORIES = (types.FunctionType, types.BuiltinFunctionType)  # copied by reference, as the real deepcopy does


class CopyRefused(ValidationError):
    """A value that is not plain data was given to the body's copy.copy / copy.deepcopy."""


def is_plain_type(cls: Any) -> bool:
    """True for the classes a body may get from `type()`: plain data and builtin exceptions."""
    return cls in PLAIN_TYPES or cls in BUILTIN_EXCEPTIONS


def _refuse(value: Any, path: str) -> CopyRefused:
    return CopyRefused(
        f"{path} is a {type(value).__name__!r} object: copy works on plain data only {WHERE} "
        "(numbers, text, bytes, lists, dicts, tuples, sets, dates, Decimal, Fraction, UUID, collections)"
    )


class _DeepCopier:
    """One deep copy: shared and cyclic containers stay shared and cyclic in the copy."""

    def __init__(self, tick: Callable[[], object]) -> None:
        self.tick = tick
        self.copies: dict[int, Any] = {}
        self.keep: list[Any] = []  # originals stay alive so their ids stay theirs during the copy

    def copy(self, value: Any, path: str) -> Any:
        self.tick()
        cls = type(value)
        if cls in _ATOMS:
            return value
        if cls not in _CONTAINERS:
            raise _refuse(value, path)
        done = self.copies.get(id(value))
        if done is not None:
            return done
        if cls is tuple or cls is frozenset or cls is slice:
            return self._immutable(value, path)
        new = self._empty(value, path)
        self.copies[id(value)] = new
        self.keep.append(value)
        if isinstance(value, dict):
            for key, item in value.items():
                new[self.copy(key, f"{path} key {key!r}")] = self.copy(item, f"{path}[{key!r}]")
        elif cls is set:
            new.update(self.copy(item, f"{path} item") for item in value)
        elif cls is not bytearray:
            new.extend(self.copy(item, f"{path}[{i}]") for i, item in enumerate(value))
        return new

    def _immutable(self, value: Any, path: str) -> Any:
        if type(value) is slice:
            parts = (value.start, value.stop, value.step)
            return slice(*(self.copy(p, f"{path} bound") for p in parts))
        items = [self.copy(item, f"{path}[{i}]") for i, item in enumerate(value)]
        new = tuple(items) if type(value) is tuple else frozenset(items)
        return self.copies.setdefault(id(value), new)

    def _empty(self, value: Any, path: str) -> Any:
        cls = type(value)
        if cls is collections.defaultdict:
            factory = value.default_factory
            if not (factory is None or factory in PLAIN_TYPES or type(factory) in _FACTORIES):
                raise _refuse(factory, f"{path}.default_factory")
            return collections.defaultdict(factory)
        if cls is collections.deque:
            return collections.deque(maxlen=value.maxlen)
        if cls is bytearray:
            return bytearray(value)
        return cls()


def shallow_copy(value: Any) -> Any:
    """`copy.copy` for plain data: a new container holding the same items."""
    cls = type(value)
    if cls in _ATOMS or cls in (tuple, frozenset, slice):
        return value
    if cls is collections.defaultdict:
        return collections.defaultdict(value.default_factory, value)
    if cls is collections.deque:
        return collections.deque(value, maxlen=value.maxlen)
    if cls in _CONTAINERS:
        return cls(value)
    raise _refuse(value, "the value")


def copy_module(tick: Callable[[], object], error: Callable[[str], Exception]) -> types.ModuleType:
    """The `copy` module bodies import: copy and deepcopy of plain data, `Error`, nothing else.

    `tick` is called per copied value (the script's clock); `error(text)` makes the refusal to raise.
    """
    module = types.ModuleType("copy", "Shallow and deep copies of plain data (python function nodes).")

    def copy(value: Any) -> Any:
        """A shallow copy of plain data."""
        try:
            return shallow_copy(value)
        except CopyRefused as exc:
            raise error(f"copy.copy: {exc}") from None

    def deepcopy(value: Any, memo: Any = None) -> Any:
        """A deep copy of plain data (nested containers are copied, shared ones stay shared)."""
        if memo is not None:
            raise error(f"copy.deepcopy: the memo argument is not available {WHERE}")
        try:
            return _DeepCopier(tick).copy(value, "the value")
        except CopyRefused as exc:
            raise error(f"copy.deepcopy: {exc}") from None

    module.copy, module.deepcopy, module.Error = copy, deepcopy, real_copy.Error
    return module
