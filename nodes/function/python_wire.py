"""What of a message crosses to a python function's sandbox worker, and what stays in the host.

Plain data crosses as msgpack: dict, list, str, int (64-bit), float, bool, None and bytes; tuples cross
as lists and bytearrays as bytes. Everything else (msg.req and msg.res, objects of other nodes, huge
ints) is held in the host for the request and crosses as a msgpack extension the body cannot open; the
same object is put back, by identity, wherever the body's output carries that extension.
"""

from __future__ import annotations

from typing import Any

from msgspec.msgpack import Ext

HELD_EXT = 1
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


class HeldValues:
    """The objects held back during one request, by number."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[Any] = []

    def hold(self, value: Any) -> Ext:
        self.values.append(value)
        return Ext(HELD_EXT, (len(self.values) - 1).to_bytes(4, "big"))

    def restore(self, ext: Ext) -> Any:
        """The object behind `ext` (None for an extension this request did not make)."""
        if ext.code != HELD_EXT or len(ext.data) != 4:
            return None
        index = int.from_bytes(ext.data, "big")
        return self.values[index] if index < len(self.values) else None


def to_wire(value: Any, held: HeldValues) -> Any:
    """`value` with everything that does not cross replaced by held placeholders."""
    cls = value.__class__
    if cls is str or cls is float or cls is bool or value is None or cls is bytes:
        return value
    if cls is dict:
        out = {}
        for key, item in value.items():
            if key.__class__ is not str:
                return held.hold(value)
            icls = item.__class__
            out[key] = (
                item
                if icls is str
                or icls is float
                or icls is bool
                or item is None
                or icls is bytes
                or (icls is int and _INT_MIN <= item <= _INT_MAX)
                else to_wire(item, held)
            )
        return out
    if cls is int:
        return value if _INT_MIN <= value <= _INT_MAX else held.hold(value)
    if cls is list or cls is tuple:
        return [to_wire(item, held) for item in value]
    if cls is bytearray or cls is memoryview:
        return bytes(value)
    return held.hold(value)


def from_wire(value: Any, held: HeldValues) -> Any:
    """`value` as it came from the worker, with held placeholders replaced by their objects (in place)."""
    cls = value.__class__
    if cls is dict:
        for key, item in value.items():
            if item.__class__ in _CONTAINERS:
                value[key] = from_wire(item, held)
        return value
    if cls is list:
        for index, item in enumerate(value):
            if item.__class__ in _CONTAINERS:
                value[index] = from_wire(item, held)
        return value
    if cls is Ext:
        return held.restore(value)
    return value


_CONTAINERS = frozenset((dict, list, Ext))
