"""join: combine a sequence of messages into one (Node-RED 4.1 semantics).

`auto` reverses a split using `msg.parts` (nested parts, object keys, string/buffer joiners,
array chunks). `custom` (manual) builds a string, buffer, array, key/value object or merged
object, and sends when `count` parts arrived, after `timeout` seconds, or on `msg.complete`;
`msg.reset` drops the pending group, `msg.restartTimeout` restarts its timer. `reduce` folds a
`msg.parts` sequence with the JSONata `reduceExp` (`$A` accumulator, `$I` index, `$N` count).
The output is based on the last message received. Pending groups live on the instance (join_group.py);
JavaScript's value conversions are join_values.py's.
"""

from __future__ import annotations

import json
from functools import cmp_to_key
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import UNDEFINED, js_typeof
from sofiaflow.nodes.sequence.join_group import JoinGroup
from sofiaflow.nodes.sequence.join_values import MISSING, array_index, count_number, group_key, js_string
from sofiaflow.nodes.sequence.parts import unescape
from sofiaflow.runtime.api import (
    JsonataError,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    NRFloat,
    clone_message,
    compile_expression,
    evaluate_jsonata,
    props,
    typed_getter,
)

_BUILDS = ("string", "buffer", "array", "object", "merged")


# ----- configuration ------------------------------------------------------------------------------
class JoinConfig(NodeConfig):
    mode: str = Field(
        "auto",
        title="Mode",
        json_schema_extra={
            "x-choices": [["auto", "automatic"], ["custom", "manual"], ["reduce", "reduce sequence"]]
        },
    )
    build: str | None = Field(
        "object",
        title="Combine each",
        json_schema_extra={
            "x-choices": [
                ["string", "a String"],
                ["buffer", "a Buffer"],
                ["array", "an Array"],
                ["object", "a key/value Object"],
                ["merged", "a merged Object"],
            ],
            "x-show-if": {"mode": "custom"},
        },
    )
    property: str | None = Field(
        "payload",
        title="Property",
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "propertyType",
            "x-types": ["msg", "full"],
            "x-show-if": {"mode": "custom"},
        },
    )
    propertyType: str | None = "msg"
    key: str | None = Field(
        "topic",
        title="Using the value of msg.",
        description="as the key",
        json_schema_extra={"x-show-if": {"mode": "custom", "build": "object"}},
    )
    joiner: str | None = Field(
        "\\n",
        title="Joined using",
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "joinerType",
            "x-types": ["str", "bin"],
            "x-show-if": {"mode": "custom", "build": ["string", "buffer"]},
        },
    )
    joinerType: str | None = "str"
    useparts: NRBool = Field(False, title="Use existing msg.parts", json_schema_extra={"x-widget": "hidden"})
    accumulate: NRBool = Field(
        False, title="And every subsequent message", json_schema_extra={"x-show-if": {"mode": "custom"}}
    )
    timeout: NRFloat = Field(
        None,
        title="After a timeout following the first message (seconds)",
        json_schema_extra={"x-show-if": {"mode": "custom"}},
    )
    count: NRFloat = Field(
        None, title="After a number of message parts", json_schema_extra={"x-show-if": {"mode": "custom"}}
    )
    reduceRight: NRBool = Field(
        False,
        title="Evaluate in reverse order (last to first)",
        json_schema_extra={"x-show-if": {"mode": "reduce"}},
    )
    reduceExp: str | None = Field(
        None,
        title="Reduce exp",
        description="A JSONata expression: $A is the accumulated value, payload the current message's.",
        json_schema_extra={"x-show-if": {"mode": "reduce"}},
    )
    reduceInit: Any = Field(
        None,
        title="Initial value",
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "reduceInitType",
            "x-types": ["num", "str", "json", "bool", "bin", "jsonata"],
            "x-show-if": {"mode": "reduce"},
        },
    )
    reduceInitType: str | None = None
    reduceFixup: str | None = Field(
        None,
        title="Fixup exp",
        description="A JSONata expression run on the result; $N is the number of messages.",
        json_schema_extra={"x-show-if": {"mode": "reduce"}},
    )


class JoinNode(Node[JoinConfig]):
    type = "join"
    category = "sequence"
    color = "#E2D96E"
    Config = JoinConfig
    auto_done = False
    help = (
        "Joins a sequence of messages into one: automatically reverses a split (`msg.parts`), builds a "
        "string, buffer, array or object after a count, a timeout or `msg.complete`, or reduces a sequence "
        "with a JSONata expression."
    )

    def setup(self) -> None:
        cfg = self.config
        fields = cfg.model_fields_set
        self._mode = cfg.mode or "auto"
        if self._mode not in ("auto", "custom", "reduce"):
            raise NodeError(f"mode: unknown join mode {self._mode!r} (expected auto, custom or reduce)")
        self._full = cfg.propertyType == "full"
        self._property = "payload" if self._full else (cfg.property or "payload")
        self._key = cfg.key or "topic"
        try:
            props.parse_path(self._property)
            props.parse_path(self._key)
        except Exception as exc:
            raise NodeError(f"property: {exc}") from None
        self._timer = 0.0 if self._mode == "auto" else float(cfg.timeout or 0)
        self._count = float(cfg.count or 0)
        self._count_blank = cfg.count is None
        self._useparts = (
            bool(cfg.useparts) if "useparts" in fields else True
        )  # absent: Node-RED 3.x behaviour
        self._build = (cfg.build if "build" in fields else None) or "array"
        if self._mode == "custom" and self._build not in _BUILDS:
            raise NodeError(
                f"build: unknown output type {self._build!r} (expected one of {', '.join(_BUILDS)})"
            )
        self._accumulate = cfg.accumulate is True
        joiner = (cfg.joiner if "joiner" in fields else None) or ""
        if (cfg.joinerType or "str") == "bin":
            try:
                raw = json.loads(joiner or "[]") if isinstance(joiner, str) else joiner
                if not isinstance(raw, list):
                    raise ValueError("not an array")
                self._joiner: Any = bytes(int(v) & 0xFF for v in raw)
            except (ValueError, TypeError) as exc:
                raise NodeError(f"joiner: {joiner!r} is not a JSON array of bytes ({exc})") from None
        else:
            self._joiner = unescape(js_string(joiner))
        if self._mode == "reduce":
            self._setup_reduce()
        self._inflight: dict[Any, JoinGroup] = {}
        self._pending: dict[Any, dict[str, Any]] = {}

    def _setup_reduce(self) -> None:
        cfg = self.config
        if not isinstance(cfg.reduceExp, str) or not cfg.reduceExp.strip():
            raise NodeError("reduceExp: Invalid JSONata expression: the reduce expression is empty")
        try:
            compile_expression(cfg.reduceExp)
            if cfg.reduceFixup:
                compile_expression(cfg.reduceFixup)
        except JsonataError as exc:
            raise NodeError(f"Invalid JSONata expression: {exc}") from None
        self._reduce_exp = cfg.reduceExp
        self._fixup = cfg.reduceFixup or None
        self._reduce_right = bool(cfg.reduceRight)
        vtype, value = cfg.reduceInitType, cfg.reduceInit
        if not vtype:
            self._init: Any = lambda msg: value
        elif vtype == "num" and (value is None or str(value).strip() == ""):
            self._init = lambda msg: 0
        else:
            try:
                self._init = typed_getter(self, value, vtype)
            except NodeError as exc:
                raise NodeError(f"reduceInit: {exc}") from None

    # ----- input ---------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        mode = self._mode
        if mode == "reduce":
            self._reduce_input(msg)
            return
        parts = msg.get("parts")
        if mode == "auto":
            if not isinstance(parts, dict) or "id" not in parts:
                if "reset" in msg:
                    self._drop_all()
                else:
                    self.warn("Message missing msg.parts property - cannot join in 'auto' mode")
                self.done(msg)
                return
        elif "parts" in msg and not self._useparts:
            if isinstance(parts, dict) and "parts" in parts:
                msg["parts"] = {"parts": parts["parts"]}
            else:
                del msg["parts"]
            parts = msg.get("parts")
        if not isinstance(parts, dict):
            parts = None

        pid: Any = "_"
        key: Any = MISSING
        index: Any = MISSING
        array_len: Any = None
        if mode == "auto":
            assert parts is not None
            pid = group_key(parts["id"])
            kind = parts.get("type")
            target: Any = parts.get("count")
            join_char = parts.get("ch", MISSING)
            key = parts.get("key", MISSING)
            array_len = parts.get("len")
            index = parts.get("index", MISSING)
            value = props.get_path(msg, parts.get("property") or "payload", MISSING)
        else:
            value = msg if self._full else props.get_path(msg, self._property, MISSING)
            kind = self._build
            target = self._count
            join_char = self._joiner
            if self._count_blank and parts is not None:
                target = parts.get("count") or 0
                if "id" in parts:
                    pid = group_key(parts["id"])
            if kind == "object":
                key = props.get_path(msg, self._key, MISSING)

        if "restartTimeout" in msg:
            group = self._inflight.get(pid)
            if group is not None:
                if group.timer is not None:
                    group.timer.cancel()
                    group.timer = None
                if self._timer > 0:
                    group.timer = self.call_later(self._timer, lambda: self._complete(pid))

        if "reset" in msg:
            group = self._inflight.pop(pid, None)
            if group is not None:
                self._release(group)
            self.done(msg)
            return

        if kind == "object" and (key is MISSING or key is None or key == ""):
            if mode == "auto":
                self.warn("Message missing 'msg.parts.key' property - cannot add to object")
            elif "complete" in msg:
                group = self._inflight.get(pid)
                if group is not None:
                    group.msg["complete"] = msg["complete"]
                    self._complete(pid)
            else:
                self.warn(f"Message missing key property 'msg.{self._key}' - cannot add to object")
            self.done(msg)
            return

        group = self._inflight.get(pid)
        if group is None:
            group = JoinGroup("object" if kind in ("object", "merged") else kind, target, clone_message(msg))
            if kind == "string" or kind == "buffer":
                group.join_char = join_char
            elif kind == "array":
                group.array_len = array_len
            if self._timer > 0:
                group.timer = self.call_later(self._timer, lambda: self._complete(pid))
            group.prop = (parts.get("property") if mode == "auto" and parts else self._property) or "payload"
            self._inflight[pid] = group
        group.held.append(msg)

        if kind == "buffer" and value is not MISSING:
            if isinstance(value, (bytes, bytearray, str, list)):
                group.buffer_len += len(value)
            else:
                group.held.pop()
                raise NodeError(f"Cannot join {js_typeof(value)} to buffer")
        stored = None if value is MISSING else value
        if kind == "object":
            group.payload[js_string(key)] = stored
            group.count = len(group.payload)
        elif kind == "merged":
            if isinstance(value, dict):
                payload = group.payload
                for k, v in value.items():
                    if k != "_msgid":
                        payload[k] = v
                group.count = len(payload)
            elif value is not None and "complete" not in msg:
                self.warn("Cannot merge non-object types")
        else:
            slot = array_index(index)
            if slot is not None:
                group.put(slot, stored)
            elif value is not MISSING:
                group.payload.append(value)
                group.count += 1

        group.msg.update(msg)
        tcnt = group.target
        if parts is not None:
            tcnt = tcnt or parts.get("count")
            group.target = tcnt
        number = count_number(tcnt)
        if (number is not None and number > 0 and group.count >= number) or "complete" in msg:
            self._complete(pid)

    # ----- completion ------------------------------------------------------------------------------
    def _complete(self, pid: Any) -> None:
        group = self._inflight.get(pid)
        if group is None:
            return
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        if self._mode == "auto" or not self._accumulate or "complete" in group.msg:
            del self._inflight[pid]
        kind = group.type
        out = group.result(self._accumulate)
        msg = group.msg
        if self._full and kind != "string":
            msg = clone_message(msg)
            group.msg = msg
        props.set_path(msg, group.prop, out)
        parts = msg.get("parts")
        if isinstance(parts, dict) and "parts" in parts:
            msg["parts"] = parts["parts"]
        else:
            msg.pop("parts", None)
        msg.pop("complete", None)
        self.send(clone_message(msg))
        self._release(group)

    def _release(self, group: JoinGroup) -> None:
        if group.timer is not None:
            group.timer.cancel()
            group.timer = None
        held, group.held = group.held, []
        for m in held:
            self.done(m)

    def _drop_all(self) -> None:
        groups, self._inflight = self._inflight, {}
        for group in groups.values():
            self._release(group)

    # ----- reduce mode -----------------------------------------------------------------------------
    def _reduce_input(self, msg: Msg) -> None:
        if "parts" not in msg:
            self.send(msg)
            self.done(msg)
            return
        parts = msg["parts"] if isinstance(msg["parts"], dict) else {}
        gid = group_key(parts.get("id"))
        group = self._pending.get(gid)
        if group is None:
            group = self._pending[gid] = {"count": parts.get("count"), "msgs": []}
        if "count" in parts and group["count"] is None:
            group["count"] = parts["count"]
        group["msgs"].append(msg)
        if len(group["msgs"]) == group["count"]:
            del self._pending[gid]
            self._reduce_group(group["msgs"], group["count"])

    def _reduce_group(self, msgs: list[Msg], count: Any) -> None:
        flag = -1 if self._reduce_right else 1

        def by_index(x: Msg, y: Msg) -> int:
            ix, iy = x["parts"].get("index"), y["parts"].get("index")
            try:
                if ix < iy:
                    return -flag
                if ix > iy:
                    return flag
            except TypeError:
                pass
            return 0

        ordered = sorted(msgs, key=cmp_to_key(by_index))
        try:
            acc = self._init({})
            for m in ordered:
                bindings = {"A": None if acc is UNDEFINED else acc, "I": m["parts"].get("index"), "N": count}
                acc = evaluate_jsonata(self._reduce_exp, m, self, bindings, undefined=UNDEFINED)
            if self._fixup:
                bindings = {"N": count, "A": None if acc is UNDEFINED else acc}
                acc = evaluate_jsonata(self._fixup, {}, self, bindings, undefined=UNDEFINED)
        except NodeError:
            for m in msgs[:-1]:
                self.done(m)
            raise
        last = ordered[-1]
        if acc is UNDEFINED:  # JSONata's undefined: no payload (Node-RED's msg.payload = undefined)
            last.pop("payload", None)
        else:
            last["payload"] = acc
        self.send(last)
        for m in msgs:
            self.done(m)

    async def close(self, removed: bool) -> None:
        self._drop_all()
        pending, self._pending = self._pending, {}
        for group in pending.values():
            for m in group["msgs"]:
                self.done(m)
