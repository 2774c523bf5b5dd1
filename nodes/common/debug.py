"""debug: shows messages in the editor's debug sidebar, the log and/or the node status (21-debug.js).

The sidebar event has the shape Node-RED's editor receives on `/comms` topic `debug`:
`{id, z, path, name, topic, property, msg, format}`, with `msg` encoded as Node-RED's
`RED.util.encodeObject` does it (`encode_debug`, runtime/core/encoding.py).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import UNDEFINED, js_number_string
from sofiaflow.runtime.api import (
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    compile_expression,
    encode_debug,
    evaluate_jsonata,
    props,
)

STATUS_MAX_LENGTH = 32
"""Node-RED's `debugStatusLength` default."""


# ----- util.inspect -----------------------------------------------------------------------------------------------


def inspect_value(value: Any, depth: int = 0, max_depth: int = 2) -> str:
    """A short text for a value, like Node's util.inspect (status text, console log)."""
    if value is UNDEFINED:
        return "undefined"
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number_string(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'" if depth else value
    if isinstance(value, (bytes, bytearray)):
        return "<Buffer " + " ".join(f"{b:02x}" for b in value[:50]) + (" ... >" if len(value) > 50 else ">")
    if isinstance(value, dict):
        if not value:
            return "{}"
        if depth > max_depth:
            return "[Object]"
        parts = [f"{_ident(k)}: {inspect_value(v, depth + 1, max_depth)}" for k, v in value.items()]
        return "{ " + ", ".join(parts) + " }"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if depth > max_depth:
            return "[Array]"
        return "[ " + ", ".join(inspect_value(v, depth + 1, max_depth) for v in value) + " ]"
    return str(value)


def _ident(key: Any) -> str:
    key = str(key)
    return key if re.fullmatch(r"[A-Za-z_$][\w$]*", key) else "'" + key.replace("'", "\\'") + "'"


# ----- the node ---------------------------------------------------------------------------------------------------


class DebugConfig(NodeConfig):
    active: NRBool = Field(
        True,
        title="Active",
        description="Unchecked: the node shows nothing (the button on the node toggles it).",
    )
    tosidebar: NRBool = Field(True, title="Debug window", description="Show it in the debug sidebar.")
    console: NRBool = Field(False, title="System console", description="Also write it to the runtime's log.")
    tostatus: NRBool = Field(
        False, title="Node status", description="Also show it under the node (32 characters)."
    )
    complete: Any = Field(
        "false",
        title="Output",
        description="What is shown: a message property (payload), the complete message, or a JSONata expression.",
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "targetType",
            "x-types": ["msg", "full", "jsonata"],
        },
    )
    targetType: str | None = None
    statusVal: Any = Field(
        "",
        title="Status shows",
        description="Blank: the same as the output.",
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "statusType",
            "x-types": ["auto", "msg", "jsonata", "counter"],
            "x-show-if": {"tostatus": True},
        },
    )
    statusType: str = "auto"


class DebugNode(Node[DebugConfig]):
    type = "debug"
    category = "common"
    color = "#87a980"
    inputs = 1
    outputs = 0
    Config = DebugConfig
    help = (
        "Shows `msg.payload`, another property, a JSONata result or the whole message in the debug "
        "sidebar, and optionally in the log (`console`) and the node status (`tostatus`)."
    )

    def setup(self) -> None:
        cfg = self.config
        self.active = bool(cfg.active)
        self._expr: str | None = None
        self._full = False
        self._parts: tuple | None = None
        complete: str | None
        if cfg.targetType == "jsonata":
            self._expr = str(cfg.complete or "")
            _compile(self._expr, "complete")
            complete = None
        else:
            raw = cfg.complete
            if raw is True:
                complete = "true"
            elif raw is False or raw is None or raw == "" or raw == "false":
                complete = "payload"
            else:
                complete = str(raw)
            self._full = complete == "true"
            if not self._full:
                self._parts = _path(complete, "complete")
        self._property = complete
        status_val = cfg.statusVal or complete
        self._status_type = cfg.statusType or "auto"
        if not cfg.tostatus:
            self._status_type = "auto"  # not shown: its settings do not matter
        elif self._status_type not in ("auto", "msg", "jsonata", "counter"):
            raise NodeError(f"statusType must be auto, msg, jsonata or counter, not {self._status_type!r}")
        self._status_expr: str | None = None
        self._status_parts: tuple | None = None
        if self._status_type == "jsonata":
            self._status_expr = str(status_val or "")
            _compile(self._status_expr, "statusVal")
        elif self._status_type == "msg":
            self._status_parts = _path(str(status_val or "payload"), "statusVal")
        self._old_state: tuple | None = None
        self._counter = 0
        self._last_time = 0.0
        self._timer: Any = None
        self._base = {"id": self.id, "z": self.z}
        if self.alias != self.id:
            self._base["_alias"] = self.alias
        self._base["path"] = _flow_path(self)
        self._base["name"] = self.name

    async def start(self) -> None:
        if not self.config.tostatus:
            return
        if self._status_type == "counter":
            self.status("blue", "ring", "0")
        self._old_state = ()

    async def close(self, removed: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._old_state is not None:
            self.status()

    def set_active(self, active: bool) -> None:
        """Turn sidebar output on or off (the editor's button: POST /debug/:id/enable|disable)."""
        self.active = bool(active)

    # -- input --
    def on_input(self, msg: Msg) -> None:
        status = msg.get("status")
        if isinstance(status, dict):
            source = status.get("source")
            if isinstance(source, dict) and source.get("id") == self.id:
                return  # our own status coming back through a status node
        if self.config.tostatus:
            self._show_status(msg)
        if self._full:
            if self.config.console:
                self.log("\n" + inspect_value(msg, max_depth=10))
            if self.active and self.config.tosidebar:
                self._publish(msg, None, msg)
            return
        if self._expr is not None:
            try:
                value = evaluate_jsonata(self._expr, msg, self, undefined=UNDEFINED)
            except NodeError:
                self.error(f"Invalid JSONata expression: {self._expr}")
                return
        else:
            value = props.get_parts(msg, self._parts, UNDEFINED)
        if self.config.console:
            if isinstance(value, str):
                self.log(("\n" if "\n" in value else "") + value)
            elif isinstance(value, (dict, list)):
                self.log("\n" + inspect_value(value, max_depth=10))
            else:
                self.log(inspect_value(value))
        if self.active and self.config.tosidebar:
            self._publish(msg, self._property, value)

    def _publish(self, msg: Msg, prop: str | None, value: Any) -> None:
        event = dict(self._base)
        if "topic" in msg:
            event["topic"] = msg["topic"]
        if prop is not None:
            event["property"] = prop
        event["msg"], event["format"] = encode_debug(value)
        # The debug node is the one node allowed to publish on the runtime's event bus directly:
        # its whole purpose is to feed the editor's debug sidebar (Node-RED's RED.comms.publish).
        self.publish_event("debug", event)

    # -- status --
    def _show_status(self, msg: Msg) -> None:
        if self._status_type == "counter":
            self._count()
            return
        if self._status_type == "auto":
            if self._full:
                output = msg.get("payload", UNDEFINED)
            elif self._expr is not None:
                try:
                    output = evaluate_jsonata(self._expr, msg, self, undefined=UNDEFINED)
                except NodeError:
                    self.error(f"Invalid JSONata expression: {self._expr}")
                    return
            else:
                output = props.get_parts(msg, self._parts, UNDEFINED)
        elif self._status_expr is not None:
            try:
                output = evaluate_jsonata(self._status_expr, msg, self, undefined=UNDEFINED)
            except NodeError:
                self.error(f"Invalid JSONata expression: {self._status_expr}")
                return
        else:
            output = props.get_parts(msg, self._status_parts, UNDEFINED)
        text = output if isinstance(output, str) else inspect_value(output)
        fill, shape = "grey", "dot"
        if isinstance(output, dict) and output.get("fill") and output.get("shape") and output.get("text"):
            fill, shape, text = output["fill"], output["shape"], output["text"]
        if self._status_type == "auto":
            if "error" in msg:
                error = msg["error"]
                fill = "red"
                text = error.get("message") if isinstance(error, dict) else error
            status = msg.get("status", UNDEFINED)
            if status is not UNDEFINED:
                status = status if isinstance(status, dict) else {}
                fill = status.get("fill") or "grey"
                shape = status.get("shape") or "ring"
                text = status.get("text") or ""
        text = text if isinstance(text, str) else inspect_value(text)
        if len(text) > STATUS_MAX_LENGTH:
            text = text[:STATUS_MAX_LENGTH] + "..."
        state = (fill, shape, text)
        if state != self._old_state:
            self._old_state = state
            self.status({"fill": fill, "shape": shape, "text": text})

    def _count(self) -> None:
        now = self.now()
        elapsed, self._last_time = now - self._last_time, now
        self._counter += 1
        if elapsed > 0.1:
            self.status("blue", "ring", str(self._counter))
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.call_later(0.2, self._show_count)

    def _show_count(self) -> None:
        self._timer = None
        self.status("blue", "ring", str(self._counter))


def _compile(expr: str, field: str) -> None:
    try:
        compile_expression(expr)
    except NodeError as exc:
        raise NodeError(f"{field}: Invalid JSONata expression: {expr} ({exc})") from None


def _path(expr: str, field: str) -> tuple:
    if expr.startswith("msg."):
        expr = expr[4:]
    try:
        return props.parse_path(expr)
    except props.PropertyPathError as exc:
        raise NodeError(f"{field}: {exc}") from None


def _flow_path(node: Node) -> str:
    """Node-RED's `node._flow.path`: the tab id, then subflow instance ids (`tab/instance`)."""
    parts: list[str] = []
    scope = node.flow_scope
    while scope is not None and scope.parent is not None:
        parts.append(scope.id)
        scope = scope.parent
    return "/".join(reversed(parts)) or (node.z or "global")
