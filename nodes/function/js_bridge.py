"""Values between Python and a JavaScript function node's isolate, as JSON text.

- JSON values cross as they are (NaN and Infinity too: the text is embedded as a JS literal).
- `bytes` cross as Node-RED's `{"type": "Buffer", "data": [...]}` and become a `Buffer` inside.
- Anything else (`msg.req`, `msg.res`, sockets, Python objects) stays on the Python side: the
  script sees a placeholder `{"__sofiaflowHeld": n}` and the object itself is put back wherever
  that placeholder appears in what the script sends, so `msg.res` reaches the http response node.
- Context and env reads inside scripts are answered from values Python fetched before the call:
  the keys written literally in the code (`flow.get("count")`), plus any key a script asked for
  earlier (a call that reads an unknown key is re-run once it has been fetched).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from typing import Any

HELD_KEY = "__sofiaflowHeld"
_EXACT = 2**53
_LONG_DIGITS = re.compile(r"\d{16}")
HELD_LIMIT = 10_000
"""How many held objects a node keeps for scripts (oldest are forgotten first)."""

_ACCESS = re.compile(
    r"""\b(context(?:\s*\.\s*(?:flow|global))?|flow|global)\s*\.\s*(get|keys)\s*\(\s*"""
    r"""(?:(['"`])((?:(?!\3)[^\\\n])*)\3)?\s*(?:,\s*(['"])(\w+)\5)?"""
)
_ENV = re.compile(
    r"""\b(?:env\s*\.\s*get|RED\s*\.\s*util\s*\.\s*getSetting\s*\(\s*node\s*,)\s*\(?\s*(['"`])([^'"`\n]+)\1"""
)


class HeldValues:
    """Non-JSON values a script sees as placeholders, by number, bounded."""

    def __init__(self, limit: int = HELD_LIMIT) -> None:
        self._values: OrderedDict[int, Any] = OrderedDict()
        self._ids: dict[int, int] = {}
        self._next = 0
        self._limit = limit

    def hold(self, value: Any) -> dict[str, int]:
        key = self._ids.get(id(value))
        if key is None or self._values.get(key) is not value:
            self._next += 1
            key = self._next
            self._values[key] = value
            self._ids[id(value)] = key
            while len(self._values) > self._limit:
                old_key, old = self._values.popitem(last=False)
                if self._ids.get(id(old)) == old_key:
                    del self._ids[id(old)]
        return {HELD_KEY: key}

    def get(self, key: int) -> Any:
        return self._values.get(key)


class Encoder:
    """JSON text of values for one isolate; remembers whether bytes were seen."""

    def __init__(self, held: HeldValues) -> None:
        self.held = held
        self.buffers = False
        self.strict = True
        self._dumps = json.JSONEncoder(
            default=self._default, separators=(",", ":"), allow_nan=True, ensure_ascii=False
        ).encode

    def _default(self, value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            self.buffers = True
            return {"type": "Buffer", "data": list(bytes(value))}
        if isinstance(value, (set, frozenset, tuple)):
            return list(value)
        return self.held.hold(value)

    def encode(self, value: Any) -> str:
        """JSON text of `value`; NaN and Infinity are kept (as JS literals), clearing `strict`."""
        text = self._dumps(value)
        if self.strict and ("NaN" in text or "Infinity" in text) and _has_special_float(value):
            self.strict = False
        return text


def _has_special_float(value: Any) -> bool:
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(_has_special_float(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_special_float(v) for v in value)
    return False


def _js_int(text: str) -> int | float:
    """A JavaScript number written without a fraction: an int when a double holds it exactly."""
    value = int(text)
    return value if -_EXACT <= value <= _EXACT else float(text)


def decode(text: str, held: HeldValues) -> Any:
    """The value of JSON `text` from the isolate, with placeholders and Buffers turned back.

    Numbers are doubles in JavaScript: whole numbers beyond 2**53 come back as floats.
    """
    parse_int = _js_int if _LONG_DIGITS.search(text) else None
    if HELD_KEY not in text and '"Buffer"' not in text:
        return json.loads(text, parse_int=parse_int)

    def revive(obj: dict) -> Any:
        if len(obj) == 1 and HELD_KEY in obj:
            return held.get(obj[HELD_KEY])
        if len(obj) == 2 and obj.get("type") == "Buffer" and isinstance(obj.get("data"), list):
            try:
                return bytes(obj["data"])
            except (TypeError, ValueError):
                return obj
        return obj

    return json.loads(text, object_hook=revive, parse_int=parse_int)


def literal_reads(*sources: str) -> set[str]:
    """Context/env slots (`scope|store|key`) that code reads with literal keys."""
    slots: set[str] = set()
    for source in sources:
        for match in _ACCESS.finditer(source or ""):
            target, method, key, store = match.group(1), match.group(2), match.group(4), match.group(6) or ""
            scope = "node" if target == "context" else ("flow" if target.endswith("flow") else "global")
            if method == "keys":
                # context.keys("store") puts the store name where get's key goes
                slots.add(f"{scope}|{key or ''}|*keys")
            elif key is not None and "${" not in key:
                slots.add(f"{scope}|{store}|{key}")
        for match in _ENV.finditer(source or ""):
            slots.add(f"env||{match.group(2)}")
    return slots


def split_slot(slot: str) -> tuple[str, str | None, str]:
    """`"flow|file|count"` -> ("flow", "file", "count")."""
    scope, store, key = slot.split("|", 2)
    return scope, store or None, key
