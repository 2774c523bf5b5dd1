"""JavaScript values as the join node combines them: String(value), Array.prototype.join's text, Buffer.from,
a count compared with `> 0`, where `payload[index] = v` lands, and a sequence id as a dict key."""

from __future__ import annotations

import math
from typing import Any

from sofiaflow.nodes.jsvalues import UNDEFINED, js_typeof
from sofiaflow.runtime.api import NodeError

MISSING: Any = UNDEFINED
"""A property that is not there (JavaScript's undefined)."""
HOLE = object()
"""An array slot nothing was assigned to (a JavaScript sparse-array hole)."""


def _js_number_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return text


def js_string(value: Any) -> str:
    """JavaScript's String(value) for JSON-like values."""
    if isinstance(value, str):
        return value
    if value is None:
        return "null"
    if value is MISSING or value is HOLE:
        return "undefined"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _js_number_text(value)
    if isinstance(value, list):
        return ",".join(join_text(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    return str(value)


def join_text(value: Any) -> str:
    """How Array.prototype.join shows one element (null and undefined are empty)."""
    if value is None or value is MISSING or value is HOLE:
        return ""
    return js_string(value)


def to_bytes(value: Any) -> bytes:
    """Buffer.from(value) for strings, byte arrays and buffers."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, list):
        return bytes(
            int(v) & 0xFF if isinstance(v, (int, float)) and not isinstance(v, bool) else 0 for v in value
        )
    raise NodeError(f"Cannot join {js_typeof(value)} to buffer")


def count_number(value: Any) -> float | None:
    """A count as JavaScript compares it with `> 0`: numbers and numeric strings, else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip() or 0)
        except ValueError:
            return None
    return None


def array_index(value: Any) -> int | str | None:
    """Where `payload[index] = v` lands in JavaScript: an int array slot, a str property, or None when
    `isNaN(index)` (the value is pushed instead)."""
    if value is MISSING:
        return None
    if value is None:
        return "null"
    if isinstance(value, bool):
        return js_string(value)
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if value.is_integer():
            value = int(value)
    if isinstance(value, int):
        return value if value >= 0 else str(value)
    if isinstance(value, float):
        return js_string(value)
    if isinstance(value, str):
        if value.isascii() and value.isdigit() and (value == "0" or not value.startswith("0")):
            return int(value)
        text = value.strip()
        try:
            float(text or "0")
        except ValueError:
            return None
        return value
    if isinstance(value, dict):
        return None
    return js_string(value)


def group_key(value: Any) -> Any:
    """A sequence id usable as a dict key (JavaScript would use its text)."""
    try:
        hash(value)
    except TypeError:
        return js_string(value)
    return value
