"""trigger: send a message, then optionally a second one after a time (Node-RED's core `trigger` node).

As Node-RED 4.1: a message sends `op1` (a copy of the message with the payload replaced) and arms
a timer of `duration` `units`; when it fires, `op2` is sent (to output 2 when `outputs` is 2).
While armed, further messages are ignored, or with `extend` they restart the timer. Duration 0
waits for a reset instead; a negative duration resends `op1` every |duration| until reset.
`msg.reset`, or a payload whose text equals `reset`, cancels. With `bytopic: "topic"` every value
of the `topic` message property gets its own timer. `overrideDelay` lets `msg.delay` (ms) set the
time. Value types: str (with {{mustache}} templates), num, bool, json, bin, date, env, flow, global,
jsonata, msg, `pay` (the incoming payload), `payl` (op2: the latest message), `nul` (send nothing);
`val` is the legacy type: "true"/"false" are booleans, "null" is null, anything else a string.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import chevron
from pydantic import Field

from sofiaflow.runtime.api import (
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    NRInt,
    clone_message,
    clone_value,
    props,
    typed_getter,
)

_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "hr": 3600.0}
_SPECIAL = frozenset(("pay", "payl", "nul"))
_FLOAT_PREFIX = re.compile(r"\s*([+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")
_NONE = "_none"


# ----- JavaScript-like text, for reset matching and mustache templates ---------------------------------
def js_string(value: Any) -> str:
    """String(value) as JavaScript writes it."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        return re.sub(r"e([+-])0*(\d)", r"e\1\2", text)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return ",".join("" if v is None else js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def js_parse_float(value: Any) -> float | None:
    """JavaScript's parseFloat(value), with None for NaN."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value else None
    m = _FLOAT_PREFIX.match(str(value))
    return float(m.group(1).replace("Infinity", "inf")) if m else None


_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    "/": "&#x2F;",
    "`": "&#x60;",
    "=": "&#x3D;",
}
_ESCAPE_RE = re.compile(r"[&<>\"'`=/]")
_SIMPLE_TAG = re.compile(r"\{\{\{\s*([^{}]*?)\s*\}\}\}|\{\{\s*(&)?\s*([^{}]+?)\s*\}\}")
_COMPLEX_TAG = re.compile(r"\{\{\s*[#^/!>=]")


def _lookup(view: Any, name: str) -> Any:
    if name == ".":
        return view
    cur = view
    for part in name.split("."):
        if isinstance(cur, dict):
            if part not in cur:
                return None
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def compile_mustache(template: str) -> Callable[[Msg], str]:
    """A renderer of `template` over a message, as mustache.js renders it (HTML-escaped {{x}})."""
    if _COMPLEX_TAG.search(template):
        # sections, partials, comments: the full engine
        return lambda msg: chevron.render(template, msg)

    def render(msg: Msg) -> str:
        def sub(m: re.Match) -> str:
            if m.group(1) is not None:
                name, raw = m.group(1), True
            else:
                name, raw = m.group(3), m.group(2) is not None
            value = _lookup(msg, name)
            if value is None:
                return ""
            text = js_string(value)
            return text if raw else _ESCAPE_RE.sub(lambda e: _ESCAPES[e.group(0)], text)

        return _SIMPLE_TAG.sub(sub, template)

    return render


# ----- the node ------------------------------------------------------------------------------------------
class TriggerConfig(NodeConfig):
    op1: Any = Field(
        "1",
        title="Send",
        description="What is sent first.",
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "op1type",
            "x-types": [
                "str",
                "num",
                "bool",
                "json",
                "date",
                "pay",
                "payl",
                "nul",
                "flow",
                "global",
                "env",
                "bin",
            ],
        },
    )
    op2: Any = Field(
        "0",
        title="Then send",
        description="What is sent after the wait.",
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "op2type",
            "x-types": [
                "str",
                "num",
                "bool",
                "json",
                "date",
                "pay",
                "payl",
                "nul",
                "flow",
                "global",
                "env",
                "bin",
            ],
        },
    )
    op1type: str | None = "val"
    op2type: str | None = "val"
    duration: float | str | None = Field("250", title="Then wait for", description="0: wait until reset.")
    extend: NRBool = Field(False, title="Extend delay if new message arrives")
    overrideDelay: NRBool = Field(False, title="Override delay with msg.delay")
    units: str | None = Field(
        "ms",
        title="Units",
        json_schema_extra={
            "x-choices": [["ms", "milliseconds"], ["s", "seconds"], ["min", "minutes"], ["hr", "hours"]]
        },
    )
    reset: Any = Field(
        "",
        title="Reset the trigger if msg.payload is",
        description="Also reset by msg.reset; blank: only msg.reset.",
        json_schema_extra={"x-widget": "text"},
    )
    bytopic: str | None = Field(
        "all",
        title="Handling",
        json_schema_extra={
            "x-choices": [
                ["all", "all messages"],
                ["topic", "each msg.topic (or the property below) separately"],
            ]
        },
    )
    topic: str | None = Field(
        "topic", title="Per property", json_schema_extra={"x-show-if": {"bytopic": "topic"}}
    )
    outputs: NRInt = Field(
        1,
        title="Outputs",
        json_schema_extra={
            "x-choices": [["1", "one output"], ["2", "a second output for the second message"]]
        },
    )


class _Slot:
    """The state of one topic (or of the whole node with bytopic "all")."""

    __slots__ = ("armed", "handle", "m2")

    def __init__(self) -> None:
        self.armed = False  # a timer runs, or it waits for a reset (Node-RED: tout set or 0)
        self.handle: Any = None
        self.m2: Any = None


class TriggerNode(Node[TriggerConfig]):
    type = "trigger"
    category = "function"
    color = "#e6e0f8"
    auto_done = False
    Config = TriggerConfig
    help = (
        "On a message sends a first value, then after a time a second one (optionally on a second "
        "output); meanwhile it ignores messages or extends the time. Can wait for a reset instead, or "
        "repeat the first value. msg.reset or a matching payload cancels; per topic if asked."
    )

    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        outputs = getattr(config, "outputs", 1)
        return 2 if outputs == 2 or outputs == "2" else 1

    def setup(self) -> None:
        c = self.config
        self._op1type, op1 = self._resolve_type(c.op1type, c.op1 or "1")
        self._op2type, op2 = self._resolve_type(c.op2type, c.op2 or "0")
        self._op1 = self._compile("op1", op1, self._op1type)
        self._op2 = self._compile("op2", op2, self._op2type)
        # flow and global op2 values are read again when the timer fires
        self._op2_late = self._op2type in ("flow", "global")

        units = c.units or "ms"
        if units not in _UNITS:
            raise NodeError(f"units: unknown unit {units!r}; use one of {', '.join(_UNITS)}")
        raw = c.duration
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            duration = 250.0
        else:
            parsed = js_parse_float(raw)
            if parsed is None or math.isinf(parsed):
                raise NodeError(f"duration: {raw!r} is not a number")
            duration = parsed
        self._loop = duration < 0
        self._extend = bool(c.extend) and not self._loop
        self._duration_ms = abs(duration) * _UNITS[units] * 1000.0
        self._override = bool(c.overrideDelay)

        bytopic = c.bytopic or "all"
        if bytopic not in ("all", "topic"):
            raise NodeError(f'bytopic: must be "all" or "topic", not {bytopic!r}')
        self._bytopic = bytopic == "topic"
        path = c.topic or "topic"
        try:
            parts = props.parse_path(path)
        except Exception as exc:  # noqa: BLE001 - a bad path refuses the deploy
            raise NodeError(f"topic: invalid property {path!r}: {exc}") from None
        self._topic_of: Callable[[Msg], Any] = (
            (lambda msg: msg.get(path))
            if len(parts) == 1 and parts[0] == path
            else (lambda msg: props.get_parts(msg, parts))
        )
        reset = c.reset
        self._reset = "" if not reset else js_string(reset)
        self._second = self.output_count(c) == 2
        # state
        self._topics: dict[Any, _Slot] = {}
        self._latest: dict[Any, Msg] = {}  # payl: the latest message per topic

    @staticmethod
    def _resolve_type(vtype: str | None, value: Any) -> tuple[str, Any]:
        vtype = vtype or "str"
        if vtype == "val":
            if value in ("true", "false"):
                return "bool", value
            if value == "null":
                return "null", None
            return "str", value
        return vtype, value

    def _compile(self, prop: str, value: Any, vtype: str) -> Callable[[Msg], Any] | None:
        if vtype in _SPECIAL:
            return None
        if vtype == "null":
            return lambda msg: None
        if vtype == "str" and "{{" in str(value):
            return compile_mustache(str(value))
        try:
            return typed_getter(self, value, vtype)
        except NodeError as exc:
            raise NodeError(f"{prop} ({vtype}): {exc}") from None

    # ----- messages -------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        self._process(msg)
        self.done(msg)

    def _key(self, msg: Msg) -> Any:
        if not self._bytopic:
            return _NONE
        topic = self._topic_of(msg)
        if not topic:
            return _NONE
        if isinstance(topic, str):
            return topic
        return js_string(topic)

    def _is_reset(self, msg: Msg) -> bool:
        if "reset" in msg:
            return True
        if self._reset == "" or "payload" not in msg:
            return False
        payload = msg["payload"]
        return payload is not None and js_string(payload) == self._reset

    def _process(self, msg: Msg) -> None:
        key = self._key(msg)
        delay_ms = self._duration_ms
        if self._override and "delay" in msg:
            value = js_parse_float(msg["delay"])
            if value is not None:
                delay_ms = value
        if self._is_reset(msg):
            slot = self._topics.pop(key, None)
            if slot is not None and slot.handle is not None:
                slot.handle.cancel()
            self._latest.pop(key, None)
            self._show()
            return
        if self._op2type == "payl":
            self._latest[key] = msg  # (copied below when this message is also sent as op1)
        slot = self._topics.get(key)
        if slot is None:
            slot = self._topics[key] = _Slot()
        if not slot.armed or self._loop:
            self._fire(key, slot, msg, delay_ms)
        elif self._extend and delay_ms > 0:
            self._extend_timer(key, slot, msg, delay_ms)

    def _fire(self, key: Any, slot: _Slot, msg: Msg, delay_ms: float) -> None:
        """A message that starts a trigger: evaluate op2 then op1, arm the timer, send op1."""
        if self._op2type == "payl":
            self._latest[key] = clone_message(msg)
        elif self._op2type == "pay":
            slot.m2 = clone_value(msg.get("payload"))
        elif self._op2 is not None:
            slot.m2 = self._op2(msg)
        if self._op1 is not None:
            msg["payload"] = self._op1(msg)
        send_op1 = self._op1type != "nul"
        if slot.handle is not None:
            slot.handle.cancel()
            slot.handle = None
        slot.armed = True
        if delay_ms == 0:
            pass  # wait for a reset
        elif self._loop:
            if send_op1:
                template = clone_message(msg)
                interval = abs(delay_ms) / 1000.0
                self._repeat(slot, template, interval)
        else:
            kept = clone_message(msg) if self._op2type not in ("nul", "payl") else None
            slot.handle = self.call_later(max(delay_ms, 0.0) / 1000.0, lambda: self._timeout(key, slot, kept))
        self._show()
        if send_op1:
            self.send(msg)

    def _repeat(self, slot: _Slot, template: Msg, interval: float) -> None:
        def tick() -> None:
            slot.handle = self.call_later(interval, tick)
            self.send(clone_message(template))

        slot.handle = self.call_later(interval, tick)

    def _timeout(self, key: Any, slot: _Slot, kept: Msg | None) -> None:
        """The timer armed by the first message fired: send op2."""
        if self._topics.get(key) is not slot:
            return
        out: Msg | None = None
        if self._op2type == "payl":
            out = self._latest.pop(key, None)
        elif self._op2type != "nul" and kept is not None:
            if self._op2_late:
                slot.m2 = self._op2(kept)  # type: ignore[misc]
            kept["payload"] = slot.m2
            out = kept
        del self._topics[key]
        self._show()
        self._send_op2(out)

    def _extend_timer(self, key: Any, slot: _Slot, msg: Msg, delay_ms: float) -> None:
        """A message while armed, with extend: restart the timer; op2 is then based on this message."""
        if self._op2type == "payl":
            slot.m2 = clone_value(msg.get("payload"))
        if slot.handle is not None:
            slot.handle.cancel()

        def fire() -> None:
            if self._topics.get(key) is not slot:
                return
            out: Msg | None = None
            if self._op2type != "nul":
                if self._op2_late:
                    slot.m2 = self._op2(msg)  # type: ignore[misc]
                msg["payload"] = slot.m2
                out = msg
            del self._topics[key]
            self._latest.pop(key, None)
            self._show()
            self._send_op2(out)

        slot.handle = self.call_later(delay_ms / 1000.0, fire)

    def _send_op2(self, out: Msg | None) -> None:
        if out is None:
            return
        self.send([None, out] if self._second else out)

    def _show(self) -> None:
        count = len(self._topics)
        if count == 0:
            st: dict[str, Any] = {}
        elif count == 1:
            st = {"fill": "blue", "shape": "dot"}
        else:
            st = {"fill": "blue", "shape": "dot", "text": str(count)}
        if st != self.last_status:
            self.status(st)

    async def close(self, removed: bool) -> None:
        for slot in self._topics.values():
            if slot.handle is not None:
                slot.handle.cancel()
        self._topics.clear()
        self._latest.clear()
        self.status()
