"""MongoDB filter language: validation into a small AST, and a pure-Python reference matcher.

Supported: implicit equality, $eq $ne $gt $gte $lt $lte $in $nin $exists $regex (+ $options "i"),
$not (on a field), $and $or $nor (top level of a filter object), dotted paths through nested
objects and arrays (MongoDB's traversal: an array on the way is searched element by element; at
the end, a value matches if it or one of its elements matches).

Refused with UnsupportedFilterError because no SQL translation here matches MongoDB exactly:
- equality with an embedded object (MongoDB compares field order; PostgreSQL's JSONB does not keep it);
- arrays containing objects as equality operands (same reason);
- null equality ($eq/$in/$ne/$nin with null) on a dotted path (MongoDB's rule for missing
  fields inside arrays differs from version to version);
- $gt/$gte/$lt/$lte with anything but a number or a string;
- path components that are not identifiers (array indexes like "a.0", special characters);
- regular expressions outside a portable subset (see `check_regex`), $options other than "i",
  and "i" with a non-ASCII pattern (case folding differs between PCRE, Python and PostgreSQL);
- $not directly inside $not; operators outside this list ($elemMatch, $size, $all, $type, $expr...).
Invalid shapes (unknown operators, $in without an array, mixed operator/field objects, NaN...) raise
InvalidFilterError. Both errors name the operator and the path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sofiaflow.runtime.data.rtdb.base import InvalidFilterError, UnsupportedFilterError, check_path

# ---------------------------------------------------------------- AST


@dataclass(frozen=True)
class Cond:
    path: tuple[str, ...]
    op: str  # eq gt gte lt lte in exists regex
    value: Any  # regex: (pattern, "i" or "")


@dataclass(frozen=True)
class And:
    items: tuple


@dataclass(frozen=True)
class Or:
    items: tuple


@dataclass(frozen=True)
class Not:
    item: Any


TRUE = And(())

_CMP = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}
_FIELD_OPS = {
    "$eq",
    "$ne",
    "$gt",
    "$gte",
    "$lt",
    "$lte",
    "$in",
    "$nin",
    "$exists",
    "$regex",
    "$options",
    "$not",
}
_KNOWN_UNSUPPORTED = {
    "$elemMatch",
    "$size",
    "$all",
    "$type",
    "$mod",
    "$expr",
    "$where",
    "$text",
    "$jsonSchema",
    "$bitsAllSet",
    "$bitsAnySet",
    "$bitsAllClear",
    "$bitsAnyClear",
    "$geoWithin",
    "$geoIntersects",
    "$near",
    "$nearSphere",
    "$comment",
}


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


MAX_ARRAY_NESTING = 10
"""Arrays nested deeper in an equality operand are refused (SQL backends compile each level into the query)."""


def _check_literal(value, path: str, op: str, _depth: int = 0):
    """An equality operand: null, bool, number, string, or an array of those (nested arrays ok)."""
    if value is None or isinstance(value, (bool, str)) or _is_num(value):
        if isinstance(value, float) and value != value:
            raise InvalidFilterError(f"{op} on {path!r}: NaN is not allowed")
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            raise InvalidFilterError(f"{op} on {path!r}: infinity is not allowed")
        return
    if isinstance(value, list):
        if _depth >= MAX_ARRAY_NESTING:
            raise UnsupportedFilterError(
                f"{op} on {path!r}: arrays nested deeper than {MAX_ARRAY_NESTING} levels"
            )
        for v in value:
            if isinstance(v, dict):
                raise UnsupportedFilterError(
                    f"{op} on {path!r}: arrays holding objects cannot be compared exactly "
                    "(object field order)"
                )
            _check_literal(v, path, op, _depth + 1)
        return
    if isinstance(value, dict):
        raise UnsupportedFilterError(
            f"{op} on {path!r}: equality with an embedded object is not supported "
            "(MongoDB compares field order, which SQL JSON storage does not keep); "
            "compare its fields with dotted paths instead"
        )
    raise InvalidFilterError(f"{op} on {path!r}: {type(value).__name__} is not a JSON value")


def _eq_cond(parts, path, value, op):
    _check_literal(value, path, op)
    if value is None and len(parts) > 1:
        raise UnsupportedFilterError(
            f"{op} null on dotted path {path!r} is not supported (missing fields inside arrays "
            "have no exact translation); use {$exists: false} or test the parent"
        )
    return Cond(parts, "eq", value)


# Portable regex subset: literal characters, escaped punctuation, . ^ $ * + ? | ( ) and [...]
# classes (no POSIX [:classes:]), lazy quantifiers. Refused: \d \w \s \b and other letter escapes,
# (?...) groups, {m,n}, possessive quantifiers, backreferences.
_ESCAPABLE = set(".^$*+?()[]{}|\\/-")


def check_regex(pattern: str, options: str, path: str) -> None:
    if not isinstance(pattern, str):
        raise InvalidFilterError(f"$regex on {path!r} must be a string, got {pattern!r}")
    if not isinstance(options, str) or set(options) - {"i"}:
        raise UnsupportedFilterError(f"$options {options!r} on {path!r}: only 'i' is supported")
    if "i" in options and not pattern.isascii():
        raise UnsupportedFilterError(
            f"$regex on {path!r}: case-insensitive matching of non-ASCII patterns is not portable"
        )
    i, n, in_class = 0, len(pattern), False
    prev_quant = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n or pattern[i + 1] not in _ESCAPABLE:
                esc = pattern[i : i + 2]
                raise UnsupportedFilterError(
                    f"$regex on {path!r}: escape {esc!r} is not in the portable subset "
                    "(only escaped punctuation)"
                )
            i += 2
            prev_quant = False
            continue
        if in_class:
            if c == "[" and i + 1 < n and pattern[i + 1] in ":.=":
                raise UnsupportedFilterError(f"$regex on {path!r}: POSIX classes are not supported")
            if c == "]":
                in_class = False
            i += 1
            continue
        if c == "[":
            in_class = True
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            if i < n and pattern[i] == "]":
                i += 1
            prev_quant = False
            continue
        if c in "{}":
            raise UnsupportedFilterError(f"$regex on {path!r}: '{{m,n}}' quantifiers are not supported")
        if c == "(" and i + 1 < n and pattern[i + 1] == "?":
            raise UnsupportedFilterError(f"$regex on {path!r}: '(?...)' groups are not supported")
        if c in "*+?":
            if prev_quant and c == "+":
                raise UnsupportedFilterError(f"$regex on {path!r}: possessive quantifiers are not supported")
            if i > 0 and pattern[i - 1] in "^$" and (i < 2 or pattern[i - 2] != "\\"):
                raise UnsupportedFilterError(f"$regex on {path!r}: quantified anchors are not supported")
            prev_quant = c != "?" or not prev_quant
            i += 1
            continue
        prev_quant = False
        i += 1
    if in_class:
        raise InvalidFilterError(f"$regex on {path!r}: unterminated character class")
    try:
        re.compile(pattern)
    except re.error as e:
        raise InvalidFilterError(f"$regex on {path!r}: {e}") from None


def regex_to_postgres(pattern: str) -> str:
    """Translate a checked pattern to a PostgreSQL ARE with PCRE's newline rules:
    '.' does not match a newline, '$' also matches before a final newline."""
    out, i, n, in_class = [], 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            out.append(pattern[i:j])
            in_class = True
            i = j
            continue
        if c == ".":
            out.append("[^\n]")
        elif c == "$":
            out.append("(?:\n?$)")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _field_ops(parts, path, spec: dict) -> list:
    """Conditions for one field's operator object {$op: value, ...}."""
    out: list = []
    if "$options" in spec and "$regex" not in spec:
        raise InvalidFilterError(f"$options on {path!r} needs $regex")
    for op, value in spec.items():
        if op in _KNOWN_UNSUPPORTED:
            raise UnsupportedFilterError(f"operator {op} (on {path!r}) is not supported")
        if op not in _FIELD_OPS:
            raise InvalidFilterError(f"unknown operator {op!r} on {path!r}")
        if op == "$eq":
            out.append(_eq_cond(parts, path, value, op))
        elif op == "$ne":
            out.append(Not(_eq_cond(parts, path, value, op)))
        elif op in _CMP:
            if isinstance(value, bool) or not (_is_num(value) or isinstance(value, str)):
                raise UnsupportedFilterError(
                    f"{op} on {path!r}: only numbers and strings can be compared, got {value!r}"
                )
            _check_literal(value, path, op)
            out.append(Cond(parts, _CMP[op], value))
        elif op in ("$in", "$nin"):
            if not isinstance(value, list):
                raise InvalidFilterError(f"{op} on {path!r} needs an array, got {value!r}")
            for v in value:
                _eq_cond(parts, path, v, op)
            c = Cond(parts, "in", tuple(tuple(v) if isinstance(v, list) else v for v in value))
            out.append(c if op == "$in" else Not(c))
        elif op == "$exists":
            if not isinstance(value, (bool, int)):
                raise InvalidFilterError(f"$exists on {path!r} needs true or false, got {value!r}")
            c = Cond(parts, "exists", True)
            out.append(c if value else Not(c))
        elif op == "$regex":
            options = spec.get("$options", "")
            check_regex(value, options, path)
            out.append(Cond(parts, "regex", (value, options)))
        elif op == "$not":
            if not isinstance(value, dict) or not value or not all(k.startswith("$") for k in value):
                raise InvalidFilterError(f"$not on {path!r} needs an operator object, got {value!r}")
            if "$not" in value:
                raise UnsupportedFilterError(f"nested $not on {path!r} is not supported")
            inner = _field_ops(parts, path, value)
            out.append(Not(inner[0] if len(inner) == 1 else And(tuple(inner))))
    return out


def parse_filter(flt: Any, _where: str = "filter"):
    """Validate a MongoDB filter and return its AST; raises InvalidFilterError/UnsupportedFilterError."""
    if flt is None:
        return TRUE
    if not isinstance(flt, dict):
        raise InvalidFilterError(f"{_where} must be an object, got {flt!r}")
    items: list = []
    for key, value in flt.items():
        if not isinstance(key, str):
            raise InvalidFilterError(f"{_where}: key {key!r} is not a string")
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                raise InvalidFilterError(f"{key} needs a non-empty array of filters")
            subs = tuple(parse_filter(v, f"{key}[{i}]") for i, v in enumerate(value))
            if key == "$and":
                items.append(And(subs))
            elif key == "$or":
                items.append(Or(subs))
            else:
                items.append(Not(Or(subs)))
            continue
        if key.startswith("$"):
            if key in _KNOWN_UNSUPPORTED:
                raise UnsupportedFilterError(f"operator {key} is not supported")
            raise InvalidFilterError(f"unknown top-level operator {key!r}")
        parts = check_path(key)
        if isinstance(value, dict) and value and any(k.startswith("$") for k in value):
            if not all(isinstance(k, str) and k.startswith("$") for k in value):
                raise InvalidFilterError(f"{key!r}: cannot mix operators and fields in {value!r}")
            items.extend(_field_ops(parts, key, value))
        else:
            items.append(_eq_cond(parts, key, value, "equality"))
    if len(items) == 1:
        return items[0]
    return And(tuple(items))


# ---------------------------------------------------------------- the reference matcher


def reached(doc: Any, parts: tuple[str, ...]) -> list:
    """The values a dotted path reaches, MongoDB style (arrays on the way searched element-wise)."""
    cur = [doc]
    for k in parts:
        nxt = []
        for v in cur:
            if isinstance(v, dict):
                if k in v:
                    nxt.append(v[k])
            elif isinstance(v, list):
                for e in v:
                    if isinstance(e, dict) and k in e:
                        nxt.append(e[k])
        cur = nxt
    return cur


def _bracket(v) -> int:
    if v is None:
        return 0
    if isinstance(v, bool):
        return 4
    if _is_num(v):
        return 1
    if isinstance(v, str):
        return 2
    if isinstance(v, dict):
        return 3
    return 5  # list


def values_equal(a, b) -> bool:
    """Exact equality (no array expansion), numbers compared by value across int/float."""
    if _bracket(a) != _bracket(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _candidates(values: list) -> list:
    out = []
    for v in values:
        out.append(v)
        if isinstance(v, list):
            out.extend(v)
    return out


def _eq(values: list, target) -> bool:
    if target is None and not values:
        return True
    if isinstance(target, tuple):
        target = _untuple(target)
    return any(values_equal(c, target) for c in _candidates(values))


def _untuple(v):
    return [_untuple(x) for x in v] if isinstance(v, (tuple, list)) else v


_CMP_FN = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def _match(node, doc) -> bool:
    if isinstance(node, And):
        return all(_match(n, doc) for n in node.items)
    if isinstance(node, Or):
        return any(_match(n, doc) for n in node.items)
    if isinstance(node, Not):
        return not _match(node.item, doc)
    values = reached(doc, node.path)
    op = node.op
    if op == "eq":
        return _eq(values, node.value)
    if op == "in":
        return any(_eq(values, t) for t in node.value)
    if op == "exists":
        return bool(values)
    if op == "regex":
        pattern, options = node.value
        rx = re.compile(pattern, re.IGNORECASE if "i" in options else 0)
        return any(isinstance(c, str) and rx.search(c) for c in _candidates(values))
    fn = _CMP_FN[op]
    b = _bracket(node.value)
    return any(_bracket(c) == b and fn(c, node.value) for c in _candidates(values))


def matches(doc: dict, flt) -> bool:
    """Does doc match the filter (a filter object, or an AST from parse_filter)?"""
    node = flt if isinstance(flt, (Cond, And, Or, Not)) else parse_filter(flt)
    return _match(node, doc)


def sort_key(doc: dict, parts: tuple[str, ...]):
    """MongoDB's order for scalar sort values: null/missing < numbers < strings < booleans.
    Arrays and objects (which MongoDB orders by their elements/fields) are refused."""
    cur: Any = doc
    for k in parts:
        if isinstance(cur, list):
            break
        cur = cur.get(k) if isinstance(cur, dict) else None
    if isinstance(cur, (list, dict)):
        raise UnsupportedFilterError(
            f"sort on {'.'.join(parts)!r}: a document holds an array or object there"
        )
    b = _bracket(cur)
    return (b, 0) if cur is None else (b, cur)
