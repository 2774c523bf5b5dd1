"""switch: route a message to the outputs whose rule matches a property (Node-RED 10-switch.js).

Also home of the small JavaScript value helpers (`==`, `<`, `Number()`, `String()`, regex syntax)
that the function-category nodes share, so their comparisons behave as Node-RED's do.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict

from runtime.api import (
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

# ----- JavaScript value semantics -----------------------------------------------------------------


class _Undefined:
    """JavaScript's `undefined`: a missing property (Python's None stands for `null`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()

_NUMBER = (int, float)
_JS_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")
_JS_RADIX = re.compile(r"0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)")
_JS_FLOAT_PREFIX = re.compile(r"[+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


def _is_number(value: Any) -> bool:
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
    if _is_number(value):
        return float(value)
    m = _JS_FLOAT_PREFIX.match(js_string(value).lstrip())
    if not m:
        return math.nan
    text = m.group(0)
    if "Infinity" in text:
        return -math.inf if text[0] == "-" else math.inf
    return float(text)


def js_number_string(value: float | int) -> str:
    """How JavaScript prints a number (`5`, `0.1`, `1e-7`, `NaN`, `Infinity`)."""
    if value.__class__ is int:
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    mag = abs(value)
    if 1e-6 <= mag < 1e21:
        return format(Decimal(repr(value)), "f")
    mantissa, _, exp = repr(value).partition("e")
    sign = "-" if exp.startswith("-") else "+"
    return f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"


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


def _js_kind(value: Any) -> str:
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


def _primitive(value: Any) -> Any:
    if value is None or value is UNDEFINED or _js_kind(value) != "object":
        return value
    return js_string(value)


def js_less(a: Any, b: Any, or_equal: bool = False) -> bool:
    """JavaScript's `a < b` (or `a <= b`): strings compare as strings, anything else as numbers."""
    if _is_number(a) and _is_number(b):
        return a <= b if or_equal else a < b
    pa, pb = _primitive(a), _primitive(b)
    if pa.__class__ is str and pb.__class__ is str:
        return pa <= pb if or_equal else pa < pb
    x = math.nan if pa is UNDEFINED else js_number(pa)
    y = math.nan if pb is UNDEFINED else js_number(pb)
    return x <= y if or_equal else x < y


_NAMED_GROUP = re.compile(r"\(\?<(?![=!])")
_NAMED_REF = re.compile(r"\\k<([A-Za-z_][A-Za-z0-9_]*)>")


@lru_cache(maxsize=1024)
def js_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile a JavaScript regular expression (named groups `(?<n>..)`, `\\k<n>`) with Python's re."""
    text = _NAMED_GROUP.sub("(?P<", pattern)
    text = _NAMED_REF.sub(r"(?P=\1)", text)
    return re.compile(text, re.IGNORECASE if ignore_case else 0)


# ----- the switch node ------------------------------------------------------------------------------

_VALUE_RULES = frozenset(("eq", "neq", "lt", "lte", "gt", "gte", "btwn", "cont", "regex", "istype",
                          "head", "tail", "index", "hask", "jsonata_exp"))
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
    checkall: str | bool = "true"
    repair: NRBool = False
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
        json.loads(js_string(a), parse_constant=_reject_constant)
    except ValueError:
        return False
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


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
        return _is_number(a)
    if kind == "boolean":
        return a.__class__ is bool
    if kind == "object":
        return not (a is None or a is UNDEFINED or isinstance(a, (list, bytes, bytearray, str, bool, int, float)))
    return False


def _parts(msg: Msg) -> dict:
    parts = msg.get("parts")
    if not isinstance(parts, dict):
        raise NodeError("switch: head/tail/index rules need msg.parts (a message sequence)")
    return parts


class SwitchNode(Node):
    type = "switch"
    category = "function"
    color = "#e2d96e"
    Config = SwitchConfig
    help = ("Routes each message to the outputs whose rule matches a property: comparisons, ranges, "
            "regex, type checks, sequence position or a JSONata test. `checkall` false stops at the first match.")

    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        return max(len(getattr(config, "rules", []) or []), 1)

    # ----- setup -----------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg: SwitchConfig = self.config  # type: ignore[assignment]
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

            def jsonata_property(msg: Msg) -> Any:
                value = evaluate_jsonata(expr, msg, self)
                return UNDEFINED if value is None else value

            return jsonata_property
        return self._value_getter(prop, ptype, "property")

    @staticmethod
    def _safe_get(msg: Msg, parts: tuple) -> Any:
        try:
            return props.get_parts(msg, parts, UNDEFINED)
        except props.PropertyPathError:
            return UNDEFINED

    def _value_getter(self, value: Any, vtype: str | None, what: str, bindings: bool = False
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
                    parts = msg.get("parts")
                    extra = None
                    if isinstance(parts, dict) and "id" in parts and "index" in parts:
                        extra = {"I": parts.get("index"), "N": parts.get("count")}
                    return evaluate_jsonata(expr, msg, self, extra)
                return jsonata_value
            return lambda msg: evaluate_jsonata(expr, msg, self)
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
        getter = self._value_getter(value, vtype, "v2" if second else "v",
                                    bindings=(not second and rule.t == "jsonata_exp"))
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
                    js_less(a, lo, True) and js_less(hi, a, True))
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
        parts = msg.get("parts")
        if isinstance(parts, dict) and "id" in parts and "index" in parts:
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
        parts = msg.get("parts")
        if self._repair and isinstance(parts, dict) and "id" in parts and "index" in parts:
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
