"""JSONata expressions as Node-RED nodes use them, through the jsonata-python implementation.

The message is the input document; `$flowContext(key)`, `$globalContext(key)`, `$env(name)` and
`$parent`-style keys work as in Node-RED. Expressions are parsed once and cached.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jsonata

from sofiaflow.runtime.errors import NodeError

if TYPE_CHECKING:
    from sofiaflow.runtime.core.node import Node

_Lambda = jsonata.Jsonata.JLambda
_NULL = jsonata.utils.Utils.NULL_VALUE


class JsonataError(NodeError):
    """An expression failed to parse or to evaluate."""


@lru_cache(maxsize=2048)
def _compile(expr: str) -> jsonata.Jsonata:
    try:
        compiled = jsonata.Jsonata(expr)
    except Exception as exc:  # the library raises its own exception types
        raise JsonataError(f"invalid JSONata expression {expr!r}: {exc}") from exc
    # messages hold msg.req/msg.res, bytes...: Node-RED's JSONata takes them, and checking every input
    # would walk the whole message on every evaluation
    compiled.set_validate_input(False)
    compiled.set_output_convert_nulls(False)  # keeps JSONata's undefined (None) apart from null; see evaluate
    return compiled


def compile_expression(expr: str) -> jsonata.Jsonata:
    """Parse `expr` now (so a deploy can report syntax errors); raises JsonataError."""
    return _compile(expr)


def _node_bindings(node: Node | None) -> dict[str, Any]:
    if node is None:
        return {}
    return {
        "flowContext": _Lambda(lambda key, store=None: node.flow.get(key, store)),
        "globalContext": _Lambda(lambda key, store=None: node.global_.get(key, store)),
        "env": _Lambda(lambda name: node.env(name)),
    }


def evaluate(
    expr: str,
    data: Any,
    node: Node | None = None,
    bindings: dict[str, Any] | None = None,
    undefined: Any = None,
) -> Any:
    """Evaluate `expr` against `data` with the node's context functions and extra `bindings`.

    An expression that evaluates to nothing (JSONata's undefined: a path matching nothing, `$sum` of nothing)
    returns `undefined`: None unless the caller tells it apart from null (e.g. `UNDEFINED`, to leave a message
    property absent as Node-RED does)."""
    compiled = _compile(expr)
    env = _node_bindings(node)
    if bindings:
        env.update(bindings)
    try:
        result = compiled.evaluate(data, env)
    except Exception as exc:
        raise JsonataError(f"JSONata expression {expr!r} failed: {exc}") from exc
    if result is None:
        return undefined
    return _plain(result)


def _plain(value: Any) -> Any:
    """Plain Python of a raw result: JSONata's null as None and its sequences as lists, at every depth (in place
    where the containers are already plain, so a result that is part of the input is not copied)."""
    cls = value.__class__
    if cls is dict:
        for key, item in value.items():
            plain = _plain(item)
            if plain is not item:
                value[key] = plain
        return value
    if cls is list:
        for i, item in enumerate(value):
            plain = _plain(item)
            if plain is not item:
                value[i] = plain
        return value
    if isinstance(value, list):  # the library's sequence types
        return [_plain(v) for v in value]
    return None if value is _NULL else value
