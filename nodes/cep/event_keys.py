"""What the pattern and absence nodes read from a message: its key, its event time, and conditions on it.

A key is a message property path (`topic`, `payload.device`) or a JSONata expression. An event time is the
message's own timestamp (a property holding epoch milliseconds or an ISO-8601 text) or, when no property is
configured, the runtime clock at arrival. A condition is either a JSONata expression (true matches) or a list
of rules on message properties, all of which must hold; `$prev` (JSONata) and the `prev` value type (rules)
name the previous event of the same key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from sofiaflow.nodes.jsvalues import UNDEFINED, js_less, js_loose_eq, js_number, js_regex, js_string
from sofiaflow.runtime.api import (
    JsonataError,
    Msg,
    Node,
    NodeError,
    compile_expression,
    evaluate_jsonata,
    props,
)

Condition = Callable[[Msg, Msg | None], bool]
"""(message, previous message of its key or None) -> matches."""

_OPS = ("eq", "neq", "lt", "lte", "gt", "gte", "cont", "regex", "true", "false", "null", "nnull")
_UNARY = ("true", "false", "null", "nnull")


class Rule(BaseModel):
    """`property` (a msg path) compared by `t` with `v` of type `vt` (num, str, bool, json, prev)."""

    model_config = ConfigDict(extra="allow")

    property: str = "payload"
    t: str = "eq"
    v: Any = None
    vt: str = "str"


def path_getter(path: str, what: str) -> Callable[[Msg], Any]:
    """msg -> the value at `path` (UNDEFINED when missing); NodeError naming `what` for a bad path."""
    try:
        parts = props.parse_path(str(path))
    except props.PropertyPathError as exc:
        raise NodeError(f"{what}: {exc}") from None

    def get(msg: Msg) -> Any:
        try:
            return props.get_parts(msg, parts, UNDEFINED)
        except props.PropertyPathError:
            return UNDEFINED

    return get


def key_getter(node: Node, key: str, key_type: str) -> Callable[[Msg], Any]:
    """msg -> its key as a hashable text (None when the message has none)."""
    if key_type == "jsonata":
        try:
            compile_expression(str(key))
        except JsonataError as exc:
            raise NodeError(f"key: {exc}") from None

        def by_expression(msg: Msg) -> Any:
            return _key_text(evaluate_jsonata(str(key), msg, node))

        return by_expression
    if key_type != "msg":
        raise NodeError(f"keyType: expected 'msg' or 'jsonata', got {key_type!r}")
    get = path_getter(key, "key")
    return lambda msg: _key_text(get(msg))


def _key_text(value: Any) -> str | None:
    if value is None or value is UNDEFINED:
        return None
    return value if isinstance(value, str) else js_string(value)


def time_getter(node: Node, path: str) -> Callable[[Msg], float]:
    """msg -> event time in seconds: the clock at arrival, or the value at `path` (epoch ms or ISO text)."""
    if not path:
        return lambda msg: node.now()
    get = path_getter(path, "timeProperty")

    def event_time(msg: Msg) -> float:
        value = get(msg)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value) / 1000.0
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                pass
        raise NodeError(f"msg.{path}: expected epoch milliseconds or an ISO-8601 time, got {value!r}")

    return event_time


def condition(node: Node, spec: Any, what: str) -> Condition:
    """Compile a condition: a JSONata text, or a list of rules (all must hold). An empty list always holds."""
    if isinstance(spec, str):
        try:
            compile_expression(spec)
        except JsonataError as exc:
            raise NodeError(f"{what}: {exc}") from None

        def by_expression(msg: Msg, prev: Msg | None) -> bool:
            return evaluate_jsonata(spec, msg, node, {"prev": prev}) is True

        return by_expression
    if not isinstance(spec, list):
        raise NodeError(f"{what}: expected a JSONata text or a list of rules, got {type(spec).__name__}")
    tests = []
    for index, raw in enumerate(spec):
        try:
            rule = Rule.model_validate(raw)
            tests.append(_rule(rule))
        except (NodeError, ValueError) as exc:
            raise NodeError(f"{what}[{index}]: {exc}") from None
    return lambda msg, prev: all(test(msg, prev) for test in tests)


def _operand(rule: Rule) -> Callable[[Msg, Msg | None], Any]:
    if rule.vt == "prev":
        get = path_getter(rule.property, "property")
        return lambda msg, prev: UNDEFINED if prev is None else get(prev)
    if rule.vt == "msg":
        other = path_getter(str(rule.v), "v")
        return lambda msg, prev: other(msg)
    if rule.vt == "num":
        number = js_number(rule.v)
        if isinstance(number, float) and math.isnan(number):
            raise NodeError(f"v: {rule.v!r} is not a number")
        return lambda msg, prev: number
    if rule.vt == "bool":
        flag = rule.v is True or str(rule.v).lower() == "true"
        return lambda msg, prev: flag
    if rule.vt in ("str", "json"):
        value = rule.v if rule.vt == "json" or isinstance(rule.v, str) else js_string(rule.v)
        return lambda msg, prev: value
    raise NodeError(f"vt: unknown value type {rule.vt!r} (num, str, bool, json, msg, prev)")


def _rule(rule: Rule) -> Condition:
    if rule.t not in _OPS:
        raise NodeError(f"t: unknown test {rule.t!r} ({', '.join(_OPS)})")
    get = path_getter(rule.property, "property")
    t = rule.t
    if t in _UNARY:
        unary: dict[str, Callable[[Any], bool]] = {
            "true": lambda a: a is True,
            "false": lambda a: a is False,
            "null": lambda a: a is None or a is UNDEFINED,
            "nnull": lambda a: not (a is None or a is UNDEFINED),
        }
        check = unary[t]
        return lambda msg, prev: check(get(msg))
    value = _operand(rule)
    if t == "regex":
        if rule.vt not in ("str", "json"):
            raise NodeError("regex: the pattern must be a constant text (vt 'str')")
        try:
            pattern = js_regex(js_string(rule.v))
        except re.error as exc:
            raise NodeError(f"invalid regular expression {rule.v!r}: {exc}") from None
        return lambda msg, prev: pattern.search(js_string(get(msg))) is not None
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "eq": js_loose_eq,
        "neq": lambda a, b: not js_loose_eq(a, b),
        "lt": lambda a, b: js_less(a, b),
        "lte": lambda a, b: js_less(a, b, True),
        "gt": lambda a, b: js_less(b, a),
        "gte": lambda a, b: js_less(b, a, True),
        "cont": lambda a, b: js_string(b) in js_string(a),
    }
    op = compare[t]
    return lambda msg, prev: op(get(msg), value(msg, prev))
