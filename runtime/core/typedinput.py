"""Node-RED TypedInputs: a value plus a type saying how to read it.

Types: msg, flow, global, str, num, bool, json, bin, re, date, jsonata, env, full (whole msg).
`getter(node, value, vtype)` compiles once into a function of the message; constants are parsed
at deploy, so a bad number or JSON is a deploy error naming the node.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.core import jsonata_expr, props
from sofiaflow.runtime.core.message import clone_value
from sofiaflow.runtime.errors import NodeError

if TYPE_CHECKING:
    from sofiaflow.runtime.core.node import Node
    from sofiaflow.runtime.types import Msg

Getter = Callable[["Msg | None"], Any]

_ENV_TEMPLATE = re.compile(r"\$\{([^}]+)\}")


def parse_number(value: Any) -> int | float:
    """Node-RED's Number(value): numeric strings become int or float; raises NodeError otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        if text.lower().startswith(("0x", "-0x")):
            return int(text, 16)
        return float(text)
    except ValueError:
        raise NodeError(f"{value!r} is not a number") from None


def env_template(node: Node, text: str) -> Any:
    """Resolve `NAME` or a `${A}-${B}` template through the node's env chain."""
    if "${" not in text:
        return node.env(text)
    return _ENV_TEMPLATE.sub(
        lambda m: str(node.env(m.group(1)) if node.env(m.group(1)) is not None else ""), text
    )


def date_value(fmt: Any = "") -> Any:
    """The inject/change `date` type: ms timestamp, or `iso` / `object` formats."""
    if fmt == "iso":
        return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if fmt == "object":
        return datetime.now(UTC)
    if fmt == "s":
        return int(time.time())
    return int(time.time() * 1000)


def getter(node: Node, value: Any, vtype: str | None) -> Getter:
    """Compile a TypedInput into a function `msg -> value`."""
    vtype = vtype or "str"
    if vtype == "msg":
        path = str(value)
        if "." not in path and "[" not in path:
            return lambda msg: msg.get(path) if msg is not None else None
        parts = props.parse_path(path)
        return lambda msg: props.get_parts(msg, parts) if msg is not None else None
    if vtype == "full":
        return lambda msg: msg
    if vtype == "flow":
        key = str(value)
        return lambda msg: node.flow.get(key)
    if vtype == "global":
        key = str(value)
        return lambda msg: node.global_.get(key)
    if vtype == "str":
        text = "" if value is None else str(value)
        return lambda msg: text
    if vtype == "num":
        number = parse_number(value)
        return lambda msg: number
    if vtype == "bool":
        flag = value is True or str(value).strip().lower() == "true"
        return lambda msg: flag
    if vtype == "json":
        try:
            data = json.loads(value) if isinstance(value, str) else value
        except json.JSONDecodeError as exc:
            raise NodeError(f"invalid JSON {value!r}: {exc.msg} at position {exc.pos}") from None
        if isinstance(data, (dict, list)):
            return lambda msg: clone_value(data)
        return lambda msg: data
    if vtype == "bin":
        try:
            raw = json.loads(value) if isinstance(value, str) and value.strip() else (value or [])
            blob = bytes(raw) if isinstance(raw, list) else str(raw).encode()
        except (ValueError, TypeError) as exc:
            raise NodeError(f"invalid buffer {value!r}: {exc}") from None
        return lambda msg: bytearray(blob)
    if vtype == "re":
        try:
            pattern = re.compile(str(value))
        except re.error as exc:
            raise NodeError(f"invalid regular expression {value!r}: {exc}") from None
        return lambda msg: pattern
    if vtype == "date":
        return lambda msg: date_value(value)
    if vtype == "jsonata":
        expr = str(value)
        jsonata_expr.compile_expression(expr)
        return lambda msg: jsonata_expr.evaluate(expr, msg, node)
    if vtype == "env":
        text = str(value)
        return lambda msg: env_template(node, text)
    if vtype in ("node", "cred", "conf-type"):
        return lambda msg: value
    raise NodeError(f"unknown value type {vtype!r}")


def evaluate(node: Node, value: Any, vtype: str | None, msg: Msg | None = None) -> Any:
    """Evaluate a TypedInput once (prefer `getter` in hot paths)."""
    return getter(node, value, vtype)(msg)
