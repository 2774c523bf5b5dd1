"""switch: route a message to the outputs whose rule matches a property (Node-RED 10-switch.js).

Comparisons follow JavaScript's (`==`, `<`, `Number()`, `String()`, regex syntax): see nodes/jsvalues.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sofiaflow.nodes.jsvalues import (
    UNDEFINED,
    is_number,
    js_json_parse,
    js_less,
    js_loose_eq,
    js_number,
    js_regex,
    js_string,
)
from sofiaflow.nodes.sequence.parts import sequence_parts
from sofiaflow.runtime.api import (
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    NRInt,
    clone_message,
    compile_expression,
    evaluate_jsonata,
    new_msgid,
    props,
    typed_getter,
)

_VALUE_RULES = frozenset(
    (
        "eq",
        "neq",
        "lt",
        "lte",
        "gt",
        "gte",
        "btwn",
        "cont",
        "regex",
        "istype",
        "head",
        "tail",
        "index",
        "hask",
        "jsonata_exp",
    )
)
_RULE_TYPES = _VALUE_RULES | {"true", "false", "null", "nnull", "empty", "nempty", "else"}


class SwitchRule(BaseModel):
    """One rule: `t` the test, `v`/`vt` and `v2`/`v2t` its operands, `case` ignores case."""

    model_config = ConfigDict(extra="allow")

    t: str = "eq"
    v: Any = None
    vt: str | None = None
    v2: Any = None
    v2t: str | None = None
    case: NRBool = False


class SwitchConfig(NodeConfig):
    property: str = "payload"
    propertyType: str = "msg"
    rules: list[SwitchRule] = [SwitchRule(t="eq", v="", vt="str")]
    checkall: str | bool = Field(
        "true",
        title="After a match",
        json_schema_extra={
            "x-choices": [["true", "checking all rules"], ["false", "stopping after the first match"]]
        },
    )
    repair: NRBool = Field(
        False,
        title="Recreate message sequences",
        description="Re-number msg.parts of a sequence for each output.",
    )
    outputs: NRInt = 1


Test = Callable[[Any, Msg], bool]


def _empty(a: Any) -> bool | None:
    """len(a) == 0 for strings, arrays, buffers and objects; None for anything else."""
    if isinstance(a, (str, list, bytes, bytearray, dict)):
        return len(a) == 0
    return None


def _has_key(a: Any, key: Any) -> bool:
    if a is None or a is UNDEFINED or isinstance(key, (dict, list)) or key is None:
        return False
    name = js_string(key)
    if isinstance(a, dict):
        return name in a
    if isinstance(a, (list, str, bytes, bytearray)):
        if name == "length":
            return True
        return name.isdigit() and int(name) < len(a) and (name == "0" or not name.startswith("0"))
    return False


def _is_json(a: Any) -> bool:
    if a is UNDEFINED:
        return False
    try:
        js_json_parse(js_string(a))
    except NodeError:
        return False
    return True


def _istype(a: Any, kind: Any) -> bool:
    if kind == "array":
        return isinstance(a, list)
    if kind == "buffer":
        return isinstance(a, (bytes, bytearray))
    if kind == "json":
        return _is_json(a)
    if kind == "null":
        return a is None
    if kind == "undefined":
        return a is UNDEFINED
    if kind == "string":
        return a.__class__ is str
    if kind == "number":
        return is_number(a)
    if kind == "boolean":
        return a.__class__ is bool
    if kind == "object":
        return not (
            a is None or a is UNDEFINED or isinstance(a, (list, bytes, bytearray, str, bool, int, float))
        )
    return False


def _parts(msg: Msg) -> dict:
    parts = msg.get("parts")
    if not isinstance(parts, dict):
        raise NodeError("switch: head/tail/index rules need msg.parts (a message sequence)")
    return parts


class SwitchNode(Node[SwitchConfig]):
    type = "switch"
    category = "function"
    color = "#e2d96e"
    Config = SwitchConfig
    help = (
        "Routes each message to the outputs whose rule matches a property: comparisons, ranges, "
        "regex, type checks, sequence position or a JSONata test. `checkall` false stops at the first match."
    )

    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        return max(len(getattr(config, "rules", []) or []), 1)

    # ----- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.config
        self._prev: Any = None
        self._checkall = not (cfg.checkall is False or str(cfg.checkall).strip().lower() == "false")
        self._repair = bool(cfg.repair)
        self._get_property = self._compile_property(cfg.property, cfg.propertyType or "msg")
        self._tests: list[tuple[bool, Test]] = []
        needs_count = self._repair
        for index, rule in enumerate(cfg.rules):
            if rule.t not in _RULE_TYPES:
                raise NodeError(f"rules[{index}]: unknown rule type {rule.t!r}")
            needs_count = needs_count or rule.t == "tail"
            try:
                self._tests.append((rule.t == "else", self._compile_rule(rule)))
            except NodeError as exc:
                raise NodeError(f"rules[{index}] ({rule.t}): {exc}") from None
        self._needs_count = needs_count
        # Messages of a sequence are held until it is complete: finish them ourselves.
        self.auto_done = not needs_count
        self._pending_in: dict[Any, dict] = {}
        self._pending_out: dict[Any, list[list[Msg | None]]] = {}
        self._received: dict[Any, int] = {}

    def _compile_property(self, prop: str, ptype: str) -> Callable[[Msg], Any]:
        if ptype == "msg":
            try:
                parts = props.parse_path(str(prop))
            except props.PropertyPathError as exc:
                raise NodeError(f"property: {exc}") from None
            if len(parts) == 1 and isinstance(parts[0], str):
                key = parts[0]
                return lambda msg: msg.get(key, UNDEFINED)
            return lambda msg: self._safe_get(msg, parts)
        if ptype == "jsonata":
            expr = str(prop)
            try:
                compile_expression(expr)
            except NodeError as exc:
                raise NodeError(f"property: {exc}") from None

            return lambda msg: evaluate_jsonata(expr, msg, self, undefined=UNDEFINED)
        return self._value_getter(prop, ptype, "property")

    @staticmethod
    def _safe_get(msg: Msg, parts: tuple) -> Any:
        try:
            return props.get_parts(msg, parts, UNDEFINED)
        except props.PropertyPathError:
            return UNDEFINED

    def _value_getter(
        self, value: Any, vtype: str | None, what: str, bindings: bool = False
    ) -> Callable[[Msg], Any]:
        """A function msg -> operand, as Node-RED's evaluateNodeProperty reads a rule value."""
        if vtype == "prev":
            return lambda msg: self._prev
        if vtype == "msg":
            return self._compile_property(value, "msg")
        if vtype == "num":
            number = js_number(value)
            if isinstance(number, float) and math.isnan(number):
                raise NodeError(f"{what}: {value!r} is not a number")
            return lambda msg: number
        if vtype == "jsonata":
            expr = str(value)
            compile_expression(expr)
            if bindings:

                def jsonata_value(msg: Msg) -> Any:
                    parts = sequence_parts(msg)
                    extra = None if parts is None else {"I": parts.get("index"), "N": parts.get("count")}
                    return evaluate_jsonata(expr, msg, self, extra, undefined=UNDEFINED)

                return jsonata_value
            return lambda msg: evaluate_jsonata(expr, msg, self, undefined=UNDEFINED)
        if vtype in ("str", "bool", "json", "bin", "re", "date", "flow", "global", "env"):
            try:
                getter = typed_getter(self, value, vtype)
            except NodeError as exc:
                raise NodeError(f"{what}: {exc}") from None
            if vtype in ("flow", "global", "env"):

                def context_value(msg: Msg) -> Any:
                    got = getter(msg)
                    return UNDEFINED if got is None else got

                return context_value
            if vtype in ("str", "bool"):
                constant = getter(None)
                return lambda msg: constant
            return getter
        # any other type (istype's "string", "number", ...): the stored value as is
        return lambda msg: value

    def _operand(self, rule: SwitchRule, second: bool) -> tuple[Callable[[Msg], Any], bool, Any]:
        """(getter, is_constant, constant) for v (or v2), with Node-RED's default type guess."""
        value = rule.v2 if second else rule.v
        vtype = rule.v2t if second else rule.vt
        if not vtype:
            vtype = "str" if value is None or math.isnan(js_number(value)) else "num"
        if not second and rule.t == "istype":
            # istype stores the type name in v (and vt); compare with it as a constant
            return (lambda msg: value), True, value
        if vtype == "null":  # Node-RED reads this type as the text "null"
            return (lambda msg: "null"), True, "null"
        getter = self._value_getter(
            value, vtype, "v2" if second else "v", bindings=(not second and rule.t == "jsonata_exp")
        )
        constant = vtype in ("num", "str", "bool")
        return getter, constant, getter({}) if constant else None

    def _compile_rule(self, rule: SwitchRule) -> Test:
        t = rule.t
        if t == "true":
            return lambda a, msg: a is True
        if t == "false":
            return lambda a, msg: a is False
        if t == "null":
            return lambda a, msg: a is None or a is UNDEFINED
        if t == "nnull":
            return lambda a, msg: not (a is None or a is UNDEFINED)
        if t == "empty":
            return lambda a, msg: _empty(a) is True
        if t == "nempty":
            return lambda a, msg: _empty(a) is False
        if t == "else":
            return lambda a, msg: False  # handled by the caller through the else flag

        v1, const1, c1 = self._operand(rule, False)
        if t == "eq":
            if const1:
                return lambda a, msg: js_loose_eq(a, c1)
            return lambda a, msg: js_loose_eq(a, v1(msg))
        if t == "neq":
            if const1:
                return lambda a, msg: not js_loose_eq(a, c1)
            return lambda a, msg: not js_loose_eq(a, v1(msg))
        if t in ("lt", "lte", "gt", "gte"):
            eq = t.endswith("e")
            if t.startswith("l"):
                return lambda a, msg: js_less(a, v1(msg), eq)
            return lambda a, msg: js_less(v1(msg), a, eq)
        if t == "cont":
            if rule.case:
                return lambda a, msg: js_string(v1(msg)).lower() in js_string(a).lower()
            return lambda a, msg: js_string(v1(msg)) in js_string(a)
        if t == "regex":
            ignore = bool(rule.case)
            if const1:
                try:
                    pattern = js_regex(js_string(c1), ignore)
                except re.error as exc:
                    raise NodeError(f"invalid regular expression {c1!r}: {exc}") from None
                return lambda a, msg: pattern.search(js_string(a)) is not None

            def regex_test(a: Any, msg: Msg) -> bool:
                value = v1(msg)
                source = value.pattern if isinstance(value, re.Pattern) else js_string(value)
                try:
                    return js_regex(source, ignore).search(js_string(a)) is not None
                except re.error as exc:
                    raise NodeError(f"invalid regular expression {source!r}: {exc}") from None

            return regex_test
        if t == "istype":
            return lambda a, msg: _istype(a, c1)
        if t == "hask":
            return lambda a, msg: _has_key(a, v1(msg))
        if t == "jsonata_exp":
            return lambda a, msg: v1(msg) is True
        if t == "head":
            return lambda a, msg: js_less(_parts(msg).get("index", UNDEFINED), js_number(v1(msg)))
        if t == "tail":

            def tail_test(a: Any, msg: Msg) -> bool:
                parts = _parts(msg)
                count = parts.get("count", UNDEFINED)
                first = (math.nan if count is UNDEFINED else js_number(count)) - js_number(v1(msg))
                return js_less(first, parts.get("index", UNDEFINED), True)

            return tail_test

        v2, _, _ = self._operand(rule, True) if rule.v2 is not None else ((lambda msg: UNDEFINED), True, None)
        if t == "btwn":

            def between(a: Any, msg: Msg) -> bool:
                lo, hi = v1(msg), v2(msg)
                return (js_less(lo, a, True) and js_less(a, hi, True)) or (
                    js_less(a, lo, True) and js_less(hi, a, True)
                )

            return between

        # index
        def index_test(a: Any, msg: Msg) -> bool:
            index = _parts(msg).get("index", UNDEFINED)
            return js_less(js_number(v1(msg)), index, True) and js_less(index, js_number(v2(msg)), True)

        return index_test

    # ----- messages ----------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        if not self._needs_count:
            onward = self._route(msg)
            if onward is not None:
                self.send(onward)
            return
        parts = sequence_parts(msg)
        if parts is not None:
            self._hold(msg, parts)
        else:
            self._process(msg)
            self.done(msg)

    def _route(self, msg: Msg) -> list[Msg | None] | None:
        """Apply the rules: one entry per rule evaluated (msg or None); None when nothing is sent."""
        try:
            prop = self._get_property(msg)
        except NodeError as exc:
            if self.config.propertyType == "jsonata":  # Node-RED warns and drops the message
                self.warn(f"Invalid JSONata expression: {exc}")
                return None
            raise
        onward: list[Msg | None] = []
        append = onward.append
        else_flag = True
        checkall = self._checkall
        for is_else, test in self._tests:
            if is_else:
                matched = else_flag
                else_flag = True
            else:
                matched = test(prop, msg)
            if matched:
                append(msg)
                else_flag = False
                if not checkall:
                    break
            else:
                append(None)
        self._prev = prop
        return onward

    def _process(self, msg: Msg) -> None:
        onward = self._route(msg)
        if onward is None:
            return
        parts = sequence_parts(msg) if self._repair else None
        if parts is not None:
            self._send_group_messages(onward, msg, parts)
        else:
            self.send(onward)

    def _hold(self, msg: Msg, parts: dict) -> None:
        """Keep the messages of a sequence until its count is known, then route them in order."""
        group = self._pending_in.setdefault(parts["id"], {"count": None, "msgs": []})
        group["msgs"].append(msg)
        if "count" in parts:
            group["count"] = parts["count"]
        if group["count"] != len(group["msgs"]):
            return
        del self._pending_in[parts["id"]]
        count = group["count"]
        for held in group["msgs"]:
            held["parts"]["count"] = count
            try:
                self._process(held)
            except Exception as exc:  # noqa: BLE001 - one failing message must not stop the group
                self.error(exc, held)
            else:
                self.done(held)

    def _send_group_messages(self, onward: list[Msg | None], msg: Msg, parts: dict) -> None:
        """`repair`: once a sequence has gone through, resend it with parts rewritten per output."""
        gid = parts["id"]
        self._received[gid] = self._received.get(gid, 0) + 1
        ports = len(self._tests)
        self._pending_out.setdefault(gid, []).append(onward + [None] * (ports - len(onward)))
        if self._received[gid] != parts.get("count"):
            return
        onwards = self._pending_out.pop(gid)
        del self._received[gid]
        counts = [sum(1 for o in onwards if o[j] is not None) for j in range(ports)]
        ids = [new_msgid() for _ in range(ports)]
        indexes = [0] * ports
        for entry in onwards:
            out: list[Msg | None] = []
            for j in range(ports):
                original = entry[j]
                if original is None:
                    out.append(None)
                    continue
                copy = clone_message(original)
                copy["parts"] = dict(copy["parts"], id=ids[j], index=indexes[j], count=counts[j])
                indexes[j] += 1
                out.append(copy)
            self.send(out)

    async def close(self, removed: bool) -> None:
        self._pending_in.clear()
        self._pending_out.clear()
        self._received.clear()
