"""JavaScript value semantics that Node-RED nodes rely on.

Node-RED's nodes are JavaScript, so what they do leans on JavaScript's conversions and
comparisons: `Number()`, `parseFloat()`, `String()`, `typeof`, `==`, `===`, `<`, regular
expressions and `JSON.parse` / `JSON.stringify`. These are the Python versions every node here
shares, so that switch, change, range, rbe, json, template, debug, ... answer as Node-RED's do.

Values are the Python ones messages carry: None is `null`, `UNDEFINED` is `undefined` (a missing
property), int and float are numbers, bytes and bytearray are Buffers. The text of numbers and
dates (`js_number_string`, `iso_date`) and `UNDEFINED` come from the runtime, which needs them to
encode values for the editor (runtime/core/encoding.py); they are re-exported here.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date
from functools import lru_cache
from typing import Any

from sofiaflow.runtime.api import UNDEFINED, NodeError, dumps_js, iso_date, js_float, js_number_string

__all__ = [
    "UNDEFINED",
    "is_number",
    "iso_date",
    "js_json_parse",
    "js_json_stringify",
    "js_less",
    "js_loose_eq",
    "js_number",
    "js_number_string",
    "js_parse_float",
    "js_regex",
    "js_strict_equal",
    "js_string",
    "js_typeof",
]

_NUMBER = (int, float)
_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_JS_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")
_JS_FLOAT_PREFIX = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


# ----- conversions ------------------------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """`typeof value === "number"` for plain int and float (bool is not a number)."""
    return value.__class__ in _NUMBER


def _string_to_number(text: str) -> int | float:
    text = text.strip()
    if text == "":
        return 0
    if _JS_DECIMAL.fullmatch(text):
        if "Infinity" in text:
            return -math.inf if text[0] == "-" else math.inf
        if text.lstrip("+-").isdigit():
            return int(text)
        return float(text)
    m = _JS_RADIX.fullmatch(text)
    if m:
        return int(m.group(1)[1:], {"x": 16, "o": 8, "b": 2}[m.group(1)[0].lower()])
    return math.nan


def js_number(value: Any) -> int | float:
    """JavaScript's `Number(value)`: NaN (math.nan) when it is not a number."""
    cls = value.__class__
    if cls is bool:
        return int(value)
    if cls in _NUMBER:
        return value
    if cls is str:
        return _string_to_number(value)
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray)):
        return _string_to_number(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, list):
        return _string_to_number(js_string(value))
    if isinstance(value, (int, float)):
        return value
    return math.nan


def js_parse_float(value: Any) -> float:
    """JavaScript's `parseFloat(value)`: the longest numeric prefix of String(value), else NaN."""
    if is_number(value):
        return float(value)
    m = _JS_FLOAT_PREFIX.match(js_string(value).lstrip())
    if not m:
        return math.nan
    text = m.group(0)
    if "Infinity" in text:
        return -math.inf if text[0] == "-" else math.inf
    return float(text)


def js_string(value: Any) -> str:
    """JavaScript's `String(value)` (what `value + ""` gives)."""
    cls = value.__class__
    if cls is str:
        return value
    if cls is bool:
        return "true" if value else "false"
    if cls in _NUMBER:
        return js_number_string(value)
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, list):
        return ",".join("" if v is None or v is UNDEFINED else js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, re.Pattern):
        return f"/{value.pattern}/"
    return str(value)


def js_typeof(value: Any) -> str:
    """JavaScript's `typeof value` for message values: undefined, boolean, number, string or object."""
    if value is UNDEFINED:
        return "undefined"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


# ----- comparisons ------------------------------------------------------------------------------------------------


def _js_kind(value: Any) -> str:
    """typeof by exact class, for the fast paths of `==` and `<` (null and undefined are handled first)."""
    cls = value.__class__
    if cls is bool:
        return "boolean"
    if cls in _NUMBER:
        return "number"
    if cls is str:
        return "string"
    return "object"


def js_loose_eq(a: Any, b: Any) -> bool:
    """JavaScript's `a == b`: null == undefined, "5" == 5, true == 1, objects by identity."""
    if a.__class__ is b.__class__ and a.__class__ in (int, float, str):
        return a == b
    a_nullish = a is None or a is UNDEFINED
    b_nullish = b is None or b is UNDEFINED
    if a_nullish or b_nullish:
        return a_nullish and b_nullish
    ka, kb = _js_kind(a), _js_kind(b)
    if ka == kb:
        return a is b if ka in ("object", "boolean") else a == b
    if ka == "boolean":
        return js_loose_eq(int(a), b)
    if kb == "boolean":
        return js_loose_eq(a, int(b))
    if ka == "number" and kb == "string":
        return a == js_number(b)
    if ka == "string" and kb == "number":
        return js_number(a) == b
    if ka == "object":
        return js_loose_eq(js_string(a), b)
    return js_loose_eq(a, js_string(b))


def _number_like(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def js_strict_equal(a: Any, b: Any) -> bool:
    """JavaScript's `a === b` for JSON-like values: numbers, strings and booleans by value, objects by identity."""
    if _number_like(a) and _number_like(b):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if isinstance(a, bool) and isinstance(b, bool):
        return a == b
    return a is b


def _primitive(value: Any) -> Any:
    if value is None or value is UNDEFINED or _js_kind(value) != "object":
        return value
    return js_string(value)


def js_less(a: Any, b: Any, or_equal: bool = False) -> bool:
    """JavaScript's `a < b` (or `a <= b`): strings compare as strings, anything else as numbers."""
    if is_number(a) and is_number(b):
        return a <= b if or_equal else a < b
    pa, pb = _primitive(a), _primitive(b)
    if pa.__class__ is str and pb.__class__ is str:
        return pa <= pb if or_equal else pa < pb
    x = math.nan if pa is UNDEFINED else js_number(pa)
    y = math.nan if pb is UNDEFINED else js_number(pb)
    return x <= y if or_equal else x < y


# ----- regular expressions ----------------------------------------------------------------------------------------

_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")
_NAMED_REF = re.compile(r"\\k<([A-Za-z_][A-Za-z0-9_]*)>")


@lru_cache(maxsize=1024)
def js_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a JavaScript regular expression (named groups `(?<n>..)`, `\\k<n>`) with Python's re."""
    text = _NAMED_GROUP.sub("(?P<", pattern)
    text = _NAMED_REF.sub(r"(?P=\1)", text)
    return re.compile(text, re.IGNORECASE if ignore_case else 0)


# ----- JSON.stringify -----------------------------------------------------------------------------------------------


def _jsonable(value: Any, specials: list[str], stack: set[int]) -> Any:
    """Plain JSON data as JSON.stringify would see `value` (Buffers, Dates, odd floats)."""
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is float:
        if value != value or value in (math.inf, -math.inf):
            return None
        return js_float(value, specials)
    if cls is dict or cls is list or cls is tuple:
        if id(value) in stack:
            raise NodeError("Converting circular structure to JSON")
        stack.add(id(value))
        try:
            if cls is dict:
                return {
                    (k if k.__class__ is str else _key(k)): _jsonable(v, specials, stack)
                    for k, v in value.items()
                }
            return [_jsonable(v, specials, stack) for v in value]
        finally:
            stack.discard(id(value))
    if cls is bytes or cls is bytearray or cls is memoryview:
        return {"type": "Buffer", "data": list(bytes(value))}
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _jsonable(float(value), specials, stack)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, date):
        return iso_date(value)
    if isinstance(value, dict):
        return _jsonable(dict(value), specials, stack)
    if isinstance(value, (list, tuple)):
        return _jsonable(list(value), specials, stack)
    if isinstance(value, (set, frozenset)):
        return {}  # JSON.stringify(new Set([1])) === "{}"
    return str(value)


def _key(key: Any) -> str:
    if key is True or key is False:
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return js_number_string(key)
    return "null" if key is None else str(key)


def js_json_stringify(value: Any, indent: int | None = None) -> str:
    """JSON.stringify(value, null, indent) with JS number formatting; NodeError on a circular structure."""
    specials: list[str] = []
    return dumps_js(_jsonable(value, specials, set()), specials, indent)


# ----- JSON.parse ---------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def js_json_parse(text: str) -> Any:
    """JSON.parse: the value, or NodeError with the message V8 (Node.js 18-20) gives."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise NodeError(_v8_message(text, exc.msg, exc.pos)) from None
    except ValueError as exc:  # NaN / Infinity / -Infinity, which JSON.parse refuses
        name = str(exc)
        pos = text.find(name)
        if name.startswith("-"):
            raise NodeError(f"No number after minus sign in JSON at position {pos + 1}") from None
        raise NodeError(_unexpected_token(text, max(pos, 0))) from None


def _v8_message(text: str, msg: str, pos: int) -> str:
    if msg.startswith("Expecting value"):
        if pos >= len(text) or not text[pos:].strip():
            return "Unexpected end of JSON input"
        if text[pos] == "-":
            return f"No number after minus sign in JSON at position {pos + 1}"
        literal = _LITERALS.get(text[pos])
        if literal:  # V8 reports the first character that breaks true/false/null
            i = 0
            while i < len(literal) and pos + i < len(text) and text[pos + i] == literal[i]:
                i += 1
            if pos + i >= len(text):
                return "Unexpected end of JSON input"
            pos += i
        return _unexpected_token(text, pos)
    if msg.startswith("Expecting property name"):
        if pos < len(text) and text[pos] == "}":
            return f"Expected double-quoted property name in JSON at position {pos}"
        return f"Expected property name or '}}' in JSON at position {pos}"
    if msg.startswith("Expecting ':'"):
        return f"Expected ':' after property name in JSON at position {pos}"
    if msg.startswith("Expecting ','"):
        if _innermost(text, pos) == "[":
            return f"Expected ',' or ']' after array element in JSON at position {pos}"
        return f"Expected ',' or '}}' after property value in JSON at position {pos}"
    if msg.startswith("Unterminated string"):
        return f"Unterminated string in JSON at position {len(text)}"
    if msg.startswith("Invalid control character"):
        return f"Bad control character in string literal in JSON at position {pos}"
    if msg.startswith("Invalid \\u"):
        return f"Bad Unicode escape in JSON at position {pos}"
    if msg.startswith("Invalid \\escape"):
        return f"Bad escaped character in JSON at position {pos}"
    if msg.startswith("Extra data"):
        return f"Unexpected non-whitespace character after JSON at position {pos}"
    return f"{msg} in JSON at position {pos}"


_LITERALS = {"t": "true", "f": "false", "n": "null"}


def _unexpected_token(text: str, pos: int) -> str:
    token = text[pos] if pos < len(text) else ""
    if text in ("NaN", "Infinity", "undefined", "[object Object]"):
        return f'"{text}" is not valid JSON'
    if len(text) < 21:
        return f"Unexpected token '{token}', \"{text}\" is not valid JSON"
    if pos < 10:
        return f"Unexpected token '{token}', \"{text[: pos + 10]}\"... is not valid JSON"
    if pos < len(text) - 10:
        return f"Unexpected token '{token}', ...\"{text[pos - 10 : pos + 10]}\"... is not valid JSON"
    return f"Unexpected token '{token}', ...\"{text[pos - 10 :]}\" is not valid JSON"


def _innermost(text: str, pos: int) -> str:
    """The bracket ('[' or '{') open at `pos`, skipping strings."""
    stack: list[str] = []
    in_str = esc = False
    for ch in text[:pos]:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""
