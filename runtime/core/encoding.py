"""Encode any value for the editor as Node-RED's `RED.util.encodeObject` does.

The debug sidebar and the context sidebar both show values through this encoding: `encode_debug`
gives `(msg, format)`, e.g. `("7", "number")`, `("{\"a\":1}", "Object")`, `("616263", "buffer[3]")`.
Long strings, arrays and buffers are cut at `DEBUG_MAX_LENGTH`; values JSON cannot hold (NaN,
`undefined`, sets, regular expressions, functions, live objects) become `{"__enc__": true, ...}`
markers the editor knows how to show.

The text of numbers, JSON and dates follows JavaScript (`7.0` is `7`, `1e-7` is `1e-7`, dates are
`Date.toJSON()`), since the editor is the one Node-RED ships; node modules reach these helpers
through `sofiaflow.runtime.api` (nodes/jsvalues.py re-exports them).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from typing import Any

DEBUG_MAX_LENGTH = 1000
"""Node-RED's `debugMaxLength` default: longer strings, arrays and buffers are cut in the sidebar."""


class _Undefined:
    """JavaScript's `undefined`: a missing property (Python's None stands for `null`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()
"""JavaScript's `undefined`: the value of a message property that does not exist."""


# ----- JavaScript text of numbers, dates and JSON ---------------------------------------------------------------

_EXACT = 2.0**53


def js_number_string(value: int | float) -> str:
    """A number as JavaScript's `String(n)` writes it (`7.0` -> `"7"`, `1e-7` -> `"1e-7"`, `NaN`)."""
    cls = value.__class__
    if cls is int:
        return str(value)
    if cls is float and value.is_integer() and -_EXACT < value < _EXACT:
        return str(int(value))  # fast path: whole numbers a double holds exactly print as integers
    if value is True or value is False:
        return "true" if value else "false"
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    text = repr(float(value))
    if "e" not in text:
        return text[:-2] if text.endswith(".0") else text
    sign = "-" if text[0] == "-" else ""
    mantissa, exp = text.lstrip("-").split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    k, n = len(digits), int(exp) + 1
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    return (
        sign + digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))
    )


def js_float(value: float, specials: list[str]) -> Any:
    """A float ready for `dumps_js` so the text matches JS: integral -> int, odd exponents -> placeholder."""
    if value.is_integer() and -1e21 < value < 1e21:
        return int(value)
    text = js_number_string(value)
    if text == repr(value):
        return value
    specials.append(text)
    return f"\x00{len(specials) - 1}\x00"


_SPECIAL = re.compile(r'"\\u0000(\d+)\\u0000"')


def dumps_js(value: Any, specials: list[str], indent: int | None = None) -> str:
    """json.dumps of plain data (see `js_float`), spaced as JSON.stringify(value, null, indent)."""
    if indent:
        text = json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if specials:
        text = _SPECIAL.sub(
            lambda m: specials[int(m.group(1))] if int(m.group(1)) < len(specials) else m.group(0), text
        )
    return text


def iso_date(value: date) -> str:
    """A date as JS `Date.toJSON()` writes it: UTC, milliseconds, `Z` (naive datetimes count as UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.isoformat() + "T00:00:00.000Z"


# ----- encodeObject -----------------------------------------------------------------------------------------------


def _utf16_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


def _encoded(value: Any, maxlen: int, specials: list[str], stack: set[int], key: Any = None) -> Any:
    """`value` as plain JSON data, applying encodeObject's replacer (cuts, `__enc__` markers)."""
    if key == "_req" or key == "_res":
        return {"__enc__": True, "type": "internal"}
    cls = value.__class__
    if cls is str:
        return value if len(value) <= maxlen else value[:maxlen] + "..."
    if cls is int or cls is bool or value is None:
        return value
    if cls is float:
        if value != value or value in (math.inf, -math.inf):
            return {"__enc__": True, "type": "number", "data": js_number_string(value)}
        return js_float(value, specials)
    if cls is dict or cls is list or cls is tuple:
        if id(value) in stack:
            return "[Circular ~]"
        stack.add(id(value))
        try:
            if cls is dict:
                return {
                    (k if k.__class__ is str else str(k)): _encoded(v, maxlen, specials, stack, k)
                    for k, v in value.items()
                }
            if len(value) > maxlen:
                return {
                    "__enc__": True,
                    "type": "array",
                    "data": [_encoded(v, maxlen, specials, stack) for v in value[:maxlen]],
                    "length": len(value),
                }
            return [_encoded(v, maxlen, specials, stack) for v in value]
        finally:
            stack.discard(id(value))
    if cls is bytes or cls is bytearray or cls is memoryview:
        data = bytes(value)
        return {"type": "Buffer", "data": list(data[:maxlen]), "__enc__": True, "length": len(data)}
    if value is UNDEFINED:
        return {"__enc__": True, "type": "undefined"}
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _encoded(float(value), maxlen, specials, stack)
    if isinstance(value, str):
        return _encoded(str(value), maxlen, specials, stack)
    if isinstance(value, dict):
        return _encoded(dict(value), maxlen, specials, stack)
    if isinstance(value, (list, tuple)):
        return _encoded(list(value), maxlen, specials, stack)
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, date):
        return iso_date(value)
    if isinstance(value, (set, frozenset)):
        items = list(value)
        return {
            "__enc__": True,
            "type": "set",
            "data": _encoded(items[:maxlen], maxlen, specials, stack),
            "length": len(items),
        }
    if isinstance(value, re.Pattern):
        return {"__enc__": True, "type": "regexp", "data": f"/{value.pattern}/"}
    if callable(value):
        return {"__enc__": True, "type": "function"}
    return "[internal]"  # sockets, requests, clients: live objects the editor cannot show


def encode_debug(value: Any, maxlen: int = DEBUG_MAX_LENGTH) -> tuple[str, str]:
    """(msg, format) as Node-RED's encodeObject gives them for a debug or context value."""
    if value is UNDEFINED:
        return "(undefined)", "undefined"
    if value is None:
        return "(undefined)", "null"
    cls = value.__class__
    if cls is str:
        fmt = f"string[{_utf16_len(value)}]"
        return (value if len(value) <= maxlen else value[:maxlen] + "..."), fmt
    if cls is bool:
        return ("true" if value else "false"), "boolean"
    if cls is int or cls is float:
        return js_number_string(value), "number"
    if cls is bytes or cls is bytearray or cls is memoryview:
        data = bytes(value)
        return data.hex()[:maxlen], f"buffer[{len(data)}]"
    specials: list[str] = []
    if cls is dict or isinstance(value, dict):
        return dumps_js(_encoded(value, maxlen, specials, set()), specials), "Object"
    if cls is list or cls is tuple or isinstance(value, (list, tuple)):
        return dumps_js(_encoded(value, maxlen, specials, set()), specials), f"array[{len(value)}]"
    if isinstance(value, BaseException):
        return dumps_js({"name": type(value).__name__, "message": str(value)}, specials), "error"
    if isinstance(value, bool):
        return ("true" if value else "false"), "boolean"
    if isinstance(value, (int, float)):
        return js_number_string(value), "number"
    if isinstance(value, str):
        return encode_debug(str(value), maxlen)
    if isinstance(value, (set, frozenset)):
        return dumps_js(_encoded(value, maxlen, specials, set()), specials), f"set[{len(value)}]"
    if isinstance(value, date):
        return iso_date(value), "Date"
    if isinstance(value, re.Pattern):
        return f"/{value.pattern}/", "RegExp"
    if callable(value):
        return "[function]", "function"
    return str(value), type(value).__name__
