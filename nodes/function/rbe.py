"""rbe (palette "filter"): report by exception, or pass only values outside/inside a band (Node-RED rbe.js)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_number, js_parse_float, js_strict_equal, js_string
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, clone_value, props

_FUNCS = frozenset(("rbe", "rbei", "deadband", "deadbandEq", "narrowband", "narrowbandEq"))
_MISSING = object()
_NO_TOPIC = "_no_topic"


class FilterConfig(NodeConfig):
    func: str = Field(
        "rbe",
        title="Mode",
        json_schema_extra={
            "x-choices": [
                ["rbe", "block unless value changes"],
                ["rbei", "block unless value changes (ignore initial value)"],
                ["deadband", "block unless value change is greater than"],
                ["deadbandEq", "block unless value change is greater or equal to"],
                ["narrowband", "block if value change is greater than"],
                ["narrowbandEq", "block if value change is greater or equal to"],
            ]
        },
    )
    gap: str | float | int | None = Field(
        "",
        title="Change",
        description="A number, or a percentage like 10%.",
        json_schema_extra={
            "x-widget": "text",
            "x-show-if": {"func": ["deadband", "deadbandEq", "narrowband", "narrowbandEq"]},
        },
    )
    start: str | float | int | None = Field(
        "",
        title="Start value",
        description="Blank: the first value received.",
        json_schema_extra={"x-widget": "text", "x-show-if": {"func": ["narrowband", "narrowbandEq"]}},
    )
    inout: str = Field(
        "out",
        title="Compared with",
        json_schema_extra={
            "x-choices": [["out", "the last valid output value"], ["in", "the last input value"]],
            "x-show-if": {"func": ["deadband", "deadbandEq", "narrowband", "narrowbandEq"]},
        },
    )
    septopics: NRBool = Field(True, title="Apply the mode separately for each")
    property: str = Field("payload", title="Property", description="The msg property compared.")
    topi: str = Field("topic", title="Per property", json_schema_extra={"x-show-if": {"septopics": True}})


def _is_object(value: Any) -> bool:
    """JavaScript's typeof value === "object" (null, arrays, buffers and objects)."""
    return not isinstance(value, (str, bool, int, float))


def js_equal(a: Any, b: Any) -> bool:
    """RED.util.compareObjects: deep equality, with JavaScript's strict equality for primitives."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    if isinstance(a, (bytes, bytearray)) and isinstance(b, (bytes, bytearray)):
        return bytes(a) == bytes(b)
    if isinstance(a, list) or isinstance(b, list):
        if not (isinstance(a, list) and isinstance(b, list)) or len(a) != len(b):
            return False
        return all(js_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        if len(a) != len(b):
            return False
        return all(k in b and js_equal(v, b[k]) for k, v in a.items())
    if _is_object(a) or _is_object(b):
        return a == b if type(a) is type(b) else False
    return js_strict_equal(a, b)


class FilterNode(Node[FilterConfig]):
    type = "rbe"
    label = "filter"
    category = "function"
    color = "#e2d96e"
    Config = FilterConfig
    help = (
        "Report by exception: passes a message only when its value changed (`rbe`, `rbei`), or moved more "
        "than a gap (`deadband`) or less than a gap (`narrowband`) from the last value, per topic. "
        "`msg.reset` clears the remembered values."
    )

    def setup(self) -> None:
        cfg = self.config
        if cfg.func not in _FUNCS:
            raise NodeError(f"func: {cfg.func!r} is not one of {', '.join(sorted(_FUNCS))}")
        if cfg.inout not in ("out", "in"):
            raise NodeError(f"inout: {cfg.inout!r} is not 'out' or 'in'")
        gap: Any = cfg.gap if cfg.gap not in (None, "") else "0"
        self._percent = isinstance(gap, str) and gap.strip().endswith("%")
        number = js_parse_float(gap) if self._percent else js_number(gap)
        if math.isnan(number):
            raise NodeError(f"gap: {cfg.gap!r} is not a number or a percentage")
        self._gap = float(number)
        start = cfg.start
        if start is None or (isinstance(start, str) and start.strip() == ""):
            self._start: float | None = None
        else:
            parsed = js_parse_float(start)
            if math.isnan(parsed):
                raise NodeError(f"start: {start!r} is not a number")
            self._start = parsed
        self._func = cfg.func
        self._out = cfg.inout == "out"
        self._septopics = bool(cfg.septopics)
        try:
            self._value_parts = props.parse_path(cfg.property or "payload")
            self._topic_parts = props.parse_path(cfg.topi or "topic")
        except props.PropertyPathError as exc:
            raise NodeError(f"property: {exc}") from None
        self._previous: dict[Any, Any] = {}

    def _get(self, msg: Msg, parts: tuple) -> Any:
        if len(parts) == 1 and isinstance(parts[0], str):
            return msg.get(parts[0], _MISSING)
        try:
            return props.get_parts(msg, parts, _MISSING)
        except props.PropertyPathError:
            return _MISSING

    def on_input(self, msg: Msg) -> None:
        topic = self._get(msg, self._topic_parts)
        if "reset" in msg:
            if self._septopics and isinstance(topic, str) and topic != "":
                self._previous.pop(topic, None)
            else:
                self._previous.clear()
        value = self._get(msg, self._value_parts)
        if value is _MISSING:
            return  # no value: nothing to compare, nothing sent
        key: Any = _NO_TOPIC
        if self._septopics and topic is not _MISSING and topic not in (None, "", 0, False):
            key = topic if isinstance(topic, str) else js_string(topic)
        if self._func in ("rbe", "rbei"):
            self._by_exception(msg, value, key)
        else:
            self._band(msg, value, key)

    def _by_exception(self, msg: Msg, value: Any, key: Any) -> None:
        previous = self._previous
        send = self._func != "rbei" or key in previous
        if _is_object(value):
            last = previous.get(key, _MISSING)
            if last is _MISSING or not _is_object(last):
                last = previous[key] = {}
            if not js_equal(value, last):
                previous[key] = clone_value(value)
                if send:
                    self.send(msg)
        else:
            last = previous.get(key, _MISSING)
            if last is _MISSING or _is_object(last) or not js_strict_equal(value, last):
                previous[key] = value
                if send:
                    self.send(msg)

    def _band(self, msg: Msg, value: Any, key: Any) -> None:
        n = js_parse_float(value)
        if math.isnan(n):
            self.warn("no number found in payload")
            return
        func = self._func
        previous = self._previous
        last = previous.get(key)
        if last is None and func in ("narrowband", "narrowbandEq"):
            last = previous[key] = n if self._start is None else self._start
        if self._percent:
            gap = abs(last * self._gap / 100) if last is not None else 0.0
            if math.isnan(gap):
                gap = 0.0
        else:
            gap = self._gap
        if last is None:
            last = previous[key] = n - gap - 1
        diff = abs(n - last)
        passed = False
        if diff == gap:
            passed = func in ("deadbandEq", "narrowband")
        elif diff > gap:
            passed = func in ("deadband", "deadbandEq")
        elif diff < gap:
            passed = func in ("narrowband", "narrowbandEq")
        if passed:
            if self._out:
                previous[key] = n
            self.send(msg)
        if not self._out:
            previous[key] = n
