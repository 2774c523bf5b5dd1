"""Messages: ids and the cloning rule for fan-out."""

from __future__ import annotations

import copy
import random
from typing import Any

from sofiaflow.runtime.types import Msg

_UNCLONED_KEYS = frozenset(("req", "res", "_session_obj"))
_ATOMS = (str, int, float, bool, type(None), bytes)


_random = random.Random()
_bits = _random.getrandbits


def new_msgid() -> str:
    """A fresh message id: 16 lowercase hex characters, as Node-RED's (not a secret: no syscall per id)."""
    return f"{_bits(64):016x}"


def new_message(**fields: Any) -> Msg:
    """A new message with a fresh `_msgid` and the given fields."""
    msg: Msg = {"_msgid": new_msgid()}
    msg.update(fields)
    return msg


def _clone_value(value: Any) -> Any:
    cls = value.__class__
    if cls in _ATOMS:
        return value
    if cls is dict:
        return {k: (v if v.__class__ in _ATOMS else _clone_value(v)) for k, v in value.items()}
    if cls is list:
        return [v if v.__class__ in _ATOMS else _clone_value(v) for v in value]
    if cls is bytearray:
        return bytearray(value)
    return copy.deepcopy(value)


def clone_message(msg: Msg) -> Msg:
    """A deep copy of `msg`, except `req`/`res` which are shared (they are live connections).

    Unlike Node-RED (issue #5953), byte buffers are copied too, so no branch sees another's writes.
    """
    out: Msg = {}
    for key, value in msg.items():
        if key in _UNCLONED_KEYS or value.__class__ in _ATOMS:
            out[key] = value
        else:
            out[key] = _clone_value(value)
    return out


def clone_value(value: Any) -> Any:
    """A deep copy of a JSON-like value (dicts, lists, atoms; anything else through deepcopy)."""
    return _clone_value(value)
