"""What of a message crosses to a python function's sandbox worker, and what stays in the host.

Plain data crosses as msgpack: dict, list, str, int (64-bit), float, bool, None and bytes; tuples cross
as lists and bytearrays as bytes. Everything else (msg.res, objects of other nodes, huge ints) is held in
the host for the request and crosses as a msgpack extension the body cannot open; the same object is put
back, by identity, wherever the body's output carries that extension.

Objects whose class has a `wire_view` method (msg.req: `HttpRequest`) are held the same way, and a plain
copy of what the method returns crosses with them, so the body reads them (`msg['req'].query`,
`msg['req']['headers']`) as it would in the server; the worker turns that copy back into the held
placeholder when it leaves (`RequestView`), so the host gets its own object back.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec.msgpack import Ext

HELD_EXT = 1
VIEW_EXT = 2
"""An object held in the host, with a plain copy for the body to read: `[index, copy]` in msgpack."""
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


class HeldValues:
    """The objects held back during one request, by number."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[Any] = []

    def hold(self, value: Any) -> Ext:
        self.values.append(value)
        return Ext(HELD_EXT, (len(self.values) - 1).to_bytes(4, "big"))

    def hold_with_view(self, value: Any, view: Any) -> Ext:
        """Hold `value` and let `view` (plain data) cross with it for the body to read."""
        self.values.append(value)
        return Ext(VIEW_EXT, msgspec.msgpack.encode([len(self.values) - 1, to_wire(view, self)]))

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
    view = getattr(cls, "wire_view", None)
    if view is not None:
        return held.hold_with_view(value, view(value))
    return held.hold(value)


class RequestView(dict):
    """In the worker: the plain copy of a held object (msg.req), readable as keys and as attributes; it
    leaves the worker as the placeholder of the host's object (`views_to_wire`)."""

    __slots__ = ("held_index",)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def views_from_wire(msg: Any) -> bool:
    """In the worker: the top-level `VIEW_EXT` values of `msg` made `RequestView`s (in place); whether any was."""
    if msg.__class__ is not dict:
        return False
    found = False
    for key, item in msg.items():
        if item.__class__ is Ext and item.code == VIEW_EXT:
            index, data = msgspec.msgpack.decode(item.data)
            view = RequestView(data if data.__class__ is dict else {})
            view.held_index = index
            msg[key] = view
            found = True
    return found


def views_to_wire(value: Any) -> Any:
    """In the worker: `value` with every `RequestView` in it replaced by its held placeholder."""
    cls = value.__class__
    if cls is RequestView:
        return Ext(HELD_EXT, value.held_index.to_bytes(4, "big"))
    if cls is dict or isinstance(value, dict):
        return {key: views_to_wire(item) for key, item in value.items()}
    if cls is list or cls is tuple:
        return [views_to_wire(item) for item in value]
    return value


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
