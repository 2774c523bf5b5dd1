"""Query templates: a MongoDB filter in JSON with `"{$param}"` placeholders, compiled once.

A string value that is exactly `"{$name}"` is replaced by the parameter's value as a JSON value of its declared
type (a number stays a number); a placeholder inside a longer string is replaced by the value's text and the
result stays a string. `{$context.userId}` (or the bare string `"$context.userId"`) is the caller's user name.
Values are never spliced into JSON text, so a parameter value `{"$gt": ""}` is just that string. A condition
whose optional parameter was not given is left out (and so is an operator object or `$and`/`$or` list left empty
by it).
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLACEHOLDER = re.compile(r"\{\$([A-Za-z_][A-Za-z0-9_.-]*)\}")
CONTEXT_USER = "context.userId"
_SAMPLES = {"string": "x", "integer": 1, "number": 1.5, "boolean": True}


class _Omit:
    __slots__ = ()


OMIT = _Omit()


class _Slot:
    """A whole JSON value taken from a parameter."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Text:
    """A string with placeholders inside."""

    __slots__ = ("parts",)

    def __init__(self, parts: list[str | _Slot]) -> None:
        self.parts = parts


class QueryTemplate:
    """A compiled template; `render(values, user)` gives the filter (a new dict each time)."""

    __slots__ = ("names", "_tree", "_static")

    def __init__(self, tree: Any, names: frozenset[str]) -> None:
        self._tree = tree
        self.names = names
        self._static = not names

    def render(self, values: dict[str, Any], user: str | None) -> dict[str, Any]:
        if self._static:
            return json.loads(json.dumps(self._tree))  # a fresh copy the store may not change ours through
        out = _render(self._tree, values, user)
        return {} if out is OMIT else out


def compile_template(text: Any, declared: dict[str, str]) -> QueryTemplate:
    """Compile `text` (JSON text or an already parsed object); `declared` maps parameter names to types.
    Raises SpecError (property 'query') for bad JSON, unknown placeholders or a filter the store refuses."""
    from sofiaflow.runtime.api_manager.model import SpecError

    if isinstance(text, str):
        try:
            tree = json.loads(text)
        except ValueError as exc:
            raise SpecError(f"property 'query' is not JSON: {exc}") from None
    else:
        tree = text
    if not isinstance(tree, dict):
        raise SpecError(
            f"property 'query' must be a JSON object (a MongoDB filter), got {json.dumps(tree)[:80]}"
        )
    names: set[str] = set()
    try:
        compiled = _compile(tree, declared, names)
    except ValueError as exc:
        raise SpecError(f"property 'query': {exc}") from None
    template = QueryTemplate(compiled, frozenset(names))
    _check_filter(template, declared)
    return template


def _compile(node: Any, declared: dict[str, str], names: set[str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if _PLACEHOLDER.search(key) or key == "$context.userId":
                raise ValueError(f"placeholders are values, not field names ({key!r})")
            out[key] = _compile(value, declared, names)
        return out
    if isinstance(node, list):
        return [_compile(v, declared, names) for v in node]
    if isinstance(node, str):
        if node == "$context.userId":
            names.add(CONTEXT_USER)
            return _Slot(CONTEXT_USER)
        found = list(_PLACEHOLDER.finditer(node))
        if not found:
            return node
        for m in found:
            if m.group(1) != CONTEXT_USER and m.group(1) not in declared:
                raise ValueError(
                    f"placeholder {m.group(0)} names no declared parameter "
                    f"(declared: {', '.join(sorted(declared)) or 'none'})"
                )
            names.add(m.group(1))
        if len(found) == 1 and found[0].span() == (0, len(node)):
            return _Slot(found[0].group(1))
        parts: list[str | _Slot] = []
        pos = 0
        for m in found:
            parts.append(node[pos : m.start()])
            parts.append(_Slot(m.group(1)))
            pos = m.end()
        parts.append(node[pos:])
        return _Text(parts)
    return node


def _value(slot: _Slot, values: dict[str, Any], user: str | None) -> Any:
    if slot.name == CONTEXT_USER:
        return user
    return values.get(slot.name, OMIT)


def _render(node: Any, values: dict[str, Any], user: str | None) -> Any:
    cls = node.__class__
    if cls is dict:
        out = {}
        dropped = False
        for key, value in node.items():
            rendered = _render(value, values, user)
            if rendered is OMIT:
                dropped = True
            else:
                out[key] = rendered
        return OMIT if dropped and not out else out
    if cls is list:
        items = [_render(v, values, user) for v in node]
        kept = [v for v in items if v is not OMIT]
        return OMIT if not kept and items else kept
    if cls is _Slot:
        return _value(node, values, user)
    if cls is _Text:
        text = []
        for part in node.parts:
            if part.__class__ is str:
                text.append(part)
                continue
            value = _value(part, values, user)
            if value is OMIT:
                return OMIT
            text.append(value if isinstance(value, str) else json.dumps(value))
        return "".join(text)
    return node


def _check_filter(template: QueryTemplate, declared: dict[str, str]) -> None:
    """Refuse at deploy what the store would refuse on every call ($where, unknown operators, ...)."""
    from sofiaflow.runtime.api_manager.model import SpecError
    from sofiaflow.runtime.data.rtdb import RtdbError, parse_filter

    sample = {name: _SAMPLES.get(declared.get(name, "string"), "x") for name in template.names}
    try:
        parse_filter(template.render(sample, "user"))
    except RtdbError as exc:
        raise SpecError(f"property 'query': {exc}") from None
