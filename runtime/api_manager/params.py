"""Reading an operation's declared parameters from a call, typed: text from the path, query string and headers
is converted to the declared type; body values (JSON) must already have it. Errors name the parameter."""

from __future__ import annotations

import math
import re
from typing import Any

from sofiaflow.runtime.api_manager.model import Parameter
from sofiaflow.runtime.errors import ValidationError

MAX_TEXT = 10_000
_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")
_NUMBER = re.compile(r"^[+-]?([0-9]{1,300}\.?[0-9]{0,300}|\.[0-9]{1,300})([eE][+-]?[0-9]{1,4})?$")
_WHOLE = re.compile(r"^[0-9]{1,13}$")
_TRUE, _FALSE = ("true", "1"), ("false", "0")


class ParameterError(ValidationError):
    """A missing, repeated or mistyped parameter (answered 400)."""


def from_text(param: Parameter, text: str) -> Any:
    """The value of `param` given as text (path, query string, header)."""
    if len(text) > MAX_TEXT:
        raise ParameterError(f"{param.location} parameter {param.name!r}: longer than {MAX_TEXT} characters")
    kind = param.type
    if kind == "string":
        return text
    if kind == "integer":
        if _INTEGER.match(text.strip()):
            return int(text)
        raise ParameterError(
            f"{param.location} parameter {param.name!r} must be an integer, got {text[:60]!r}"
        )
    if kind == "number":
        if _NUMBER.match(text.strip()):
            value = float(text)
            if math.isfinite(value):
                return (
                    int(value)
                    if value.is_integer() and "." not in text and "e" not in text.lower()
                    else value
                )
        raise ParameterError(f"{param.location} parameter {param.name!r} must be a number, got {text[:60]!r}")
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ParameterError(
        f"{param.location} parameter {param.name!r} must be true or false, got {text[:60]!r}"
    )


def from_json(param: Parameter, value: Any) -> Any:
    """The value of body parameter `param` (already JSON-decoded), checked against its type."""
    kind = param.type
    ok = (
        (kind == "string" and isinstance(value, str) and len(value) <= MAX_TEXT)
        or (kind == "boolean" and isinstance(value, bool))
        or (
            kind == "integer"
            and isinstance(value, int)
            and not isinstance(value, bool)
            and abs(value) < 2**63
        )
        or (
            kind == "number"
            and isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isfinite(value)
        )
    )
    if not ok:
        shown = repr(value)[:60]
        raise ParameterError(f"body parameter {param.name!r} must be a JSON {kind}, got {shown}")
    return value


def read(
    params: tuple[Parameter, ...],
    path: dict[str, str],
    query: dict[str, list[str]],
    headers: dict[str, str],
    body: Any,
) -> dict[str, Any]:
    """Every declared parameter given, typed; ParameterError for a missing required one or a bad value."""
    values: dict[str, Any] = {}
    for param in params:
        where = param.location
        if where == "path":
            values[param.name] = from_text(param, path[param.name])
            continue
        if where == "query":
            given = query.get(param.name)
            if given is not None and len(given) > 1:
                raise ParameterError(
                    f"query parameter {param.name!r} is given {len(given)} times; give it once"
                )
            raw: Any = given[0] if given else None
        elif where == "header":
            raw = headers.get(param.name.lower())
        else:
            if body is not None and not isinstance(body, dict):
                raise ParameterError("the body must be a JSON object holding the body parameters")
            raw = body.get(param.name) if body else None
        if raw is None:
            if param.required:
                raise ParameterError(f"{where} parameter {param.name!r} is required")
            continue
        values[param.name] = from_json(param, raw) if where == "body" else from_text(param, raw)
    return values


def paging(query: dict[str, list[str]], default: int, maximum: int) -> tuple[int, int]:
    """(limit, offset) from the query string; ParameterError naming the bad one."""
    out = []
    for name, fallback, top in (("limit", default, maximum), ("offset", 0, 10**12)):
        given = query.get(name)
        if not given:
            out.append(fallback)
            continue
        if len(given) > 1 or not _WHOLE.match(given[0].strip()):
            raise ParameterError(f"query parameter {name!r} must be a whole number, got {given!r}")
        value = int(given[0])
        low = 1 if name == "limit" else 0
        if not low <= value <= top:
            raise ParameterError(f"query parameter {name!r} must be between {low} and {top}, got {value}")
        out.append(value)
    return out[0], out[1]
