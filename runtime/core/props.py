"""Property paths as Node-RED writes them: `payload.a`, `a["b c"]`, `list[0]`, `a[msg.key]`.

`parse_path` turns an expression into parts (str keys, int indexes, or nested paths to read from
the message); `get_path`, `set_path` and `delete_path` walk a dict with them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sofiaflow.runtime.errors import ValidationError


class PropertyPathError(ValidationError):
    """A property expression cannot be parsed."""


class _MsgRef(tuple):
    """A part that is itself a path into the message (`a[msg.b]`)."""


_MISSING = object()


@lru_cache(maxsize=4096)
def parse_path(expr: str) -> tuple:
    """Parse `expr` into a tuple of parts; raises PropertyPathError naming the position."""
    if not isinstance(expr, str) or expr == "":
        raise PropertyPathError(f"empty property expression {expr!r}")
    parts: list[Any] = []
    i, n = 0, len(expr)
    start = 0
    while i < n:
        c = expr[i]
        if c == ".":
            if i == start:
                raise PropertyPathError(f"invalid property expression {expr!r}: unexpected '.' at {i}")
            parts.append(expr[start:i])
            i += 1
            start = i
            if i == n:
                raise PropertyPathError(f"invalid property expression {expr!r}: ends with '.'")
        elif c == "[":
            if i > start:
                parts.append(expr[start:i])
            elif i == 0:
                raise PropertyPathError(f"invalid property expression {expr!r}: starts with '['")
            i += 1
            if i >= n:
                raise PropertyPathError(f"invalid property expression {expr!r}: unclosed '['")
            q = expr[i]
            if q in "'\"":
                end = expr.find(q, i + 1)
                if end < 0 or end + 1 >= n or expr[end + 1] != "]":
                    raise PropertyPathError(f"invalid property expression {expr!r}: unclosed quote at {i}")
                parts.append(expr[i + 1 : end])
                i = end + 2
            else:
                depth, j = 1, i
                while j < n and depth:
                    if expr[j] == "[":
                        depth += 1
                    elif expr[j] == "]":
                        depth -= 1
                    j += 1
                if depth:
                    raise PropertyPathError(f"invalid property expression {expr!r}: unclosed '['")
                inner = expr[i : j - 1].strip()
                if inner.lstrip("-").isdigit():
                    parts.append(int(inner))
                elif inner.startswith("msg."):
                    parts.append(_MsgRef(parse_path(inner[4:])))
                else:
                    raise PropertyPathError(f"invalid property expression {expr!r}: bad index {inner!r}")
                i = j
            if i < n and expr[i] not in ".[":
                raise PropertyPathError(
                    f"invalid property expression {expr!r}: unexpected {expr[i]!r} at {i}"
                )
            if i < n and expr[i] == ".":
                i += 1
                if i == n:
                    raise PropertyPathError(f"invalid property expression {expr!r}: ends with '.'")
            start = i
        else:
            i += 1
    if start < n:
        parts.append(expr[start:])
    return tuple(parts)


def _resolve(parts: tuple, msg: Any) -> tuple:
    if not any(isinstance(p, _MsgRef) for p in parts):
        return parts
    out = []
    for p in parts:
        if isinstance(p, _MsgRef):
            v = get_parts(msg, tuple(p))
            if not isinstance(v, (str, int)):
                raise PropertyPathError(f"nested property reference resolved to {v!r}, not a key or index")
            out.append(v)
        else:
            out.append(p)
    return tuple(out)


def _step(obj: Any, part: Any) -> Any:
    if isinstance(obj, dict):
        value = obj.get(part, _MISSING)
        if value is _MISSING and isinstance(part, int):
            value = obj.get(str(part), _MISSING)
        return value
    if isinstance(obj, (list, tuple, str, bytes, bytearray)):
        if part == "length":
            return len(obj)
        try:
            return obj[int(part)]
        except (IndexError, ValueError, TypeError):
            return _MISSING
    return _MISSING


def get_parts(obj: Any, parts: tuple, default: Any = None) -> Any:
    """Read a parsed path from `obj`; `default` when any step is missing."""
    parts = _resolve(parts, obj)
    for part in parts:
        obj = _step(obj, part)
        if obj is _MISSING:
            return default
    return obj


def get_path(obj: Any, expr: str, default: Any = None) -> Any:
    """Read `expr` (a property expression) from `obj`."""
    if "." not in expr and "[" not in expr:
        return obj.get(expr, default) if isinstance(obj, dict) else default
    return get_parts(obj, parse_path(expr), default)


def has_path(obj: Any, expr: str) -> bool:
    """True when every step of `expr` exists in `obj`."""
    return get_parts(obj, parse_path(expr), _MISSING) is not _MISSING


def set_path(obj: dict, expr: str, value: Any, create: bool = True) -> None:
    """Set `expr` in `obj` to `value`, creating intermediate objects (or lists before an index)."""
    if "." not in expr and "[" not in expr:
        obj[expr] = value
        return
    parts = _resolve(parse_path(expr), obj)
    cur: Any = obj
    for i, part in enumerate(parts[:-1]):
        nxt = _step(cur, part)
        if nxt is _MISSING or nxt is None or not isinstance(nxt, (dict, list)):
            if not create:
                return
            nxt = [] if isinstance(parts[i + 1], int) else {}
            _assign(cur, part, nxt)
        cur = nxt
    _assign(cur, parts[-1], value)


def _assign(container: Any, part: Any, value: Any) -> None:
    if isinstance(container, list):
        idx = int(part)
        if idx < 0:
            idx += len(container)
        while len(container) <= idx:
            container.append(None)
        container[idx] = value
    elif isinstance(container, dict):
        container[part] = value
    else:
        raise PropertyPathError(f"cannot set {part!r} on a {type(container).__name__}")


def delete_path(obj: dict, expr: str) -> None:
    """Remove `expr` from `obj`; missing steps are ignored."""
    parts = _resolve(parse_path(expr), obj)
    parent = get_parts(obj, parts[:-1], _MISSING) if len(parts) > 1 else obj
    last = parts[-1]
    if isinstance(parent, dict):
        parent.pop(last, None)
    elif isinstance(parent, list):
        try:
            del parent[int(last)]
        except (IndexError, ValueError):
            pass
