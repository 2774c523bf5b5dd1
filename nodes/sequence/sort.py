"""sort: sort an array property, or a whole `msg.parts` sequence (Node-RED 4.1 semantics).

`targetType: "msg"` sorts the array at `target` in place, by element value (`msgKeyType: "elem"`)
or by a JSONata key evaluated per element. `targetType: "seq"` holds the messages of a sequence
until all `parts.count` have arrived, then re-sends them ordered by the `seqKey` property (or
JSONata key evaluated per message) with `parts.index` rewritten. Values compare as JavaScript's
`>` does; `as_num` compares them as numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from functools import cmp_to_key
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_strict_equal
from sofiaflow.nodes.sequence.parts import sequence_parts
from sofiaflow.runtime.api import (
    JsonataError,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    compile_expression,
    evaluate_jsonata,
    props,
)

_UNDEF = object()
"""JavaScript's undefined (a missing property), which compares unlike null."""

_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_RADIX = {"0x": 16, "0o": 8, "0b": 2}
_NAN = float("nan")


# ----- JavaScript comparison ----------------------------------------------------------------------
def _array_text(value: list) -> str:
    return ",".join("" if v is None or v is _UNDEF else _to_text(v) for v in value)


def _to_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        return repr(value)
    if isinstance(value, list):
        return _array_text(value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if value is None:
        return "null"
    return str(value)


def _to_primitive(value: Any) -> Any:
    if isinstance(value, (list, dict, bytes, bytearray)):
        return _to_text(value)
    return value


def js_number(value: Any) -> float:
    """JavaScript's Number(value)."""
    if value is _UNDEF:
        return _NAN
    if value is None:
        return 0.0
    if isinstance(value, (bool, int)):
        return float(value)
    if isinstance(value, float):
        return value
    value = _to_primitive(value)
    if not isinstance(value, str):
        return _NAN
    text = value.strip()
    if not text:
        return 0.0
    if _DECIMAL.fullmatch(text):
        return float(text)
    if text in ("Infinity", "+Infinity"):
        return math.inf
    if text == "-Infinity":
        return -math.inf
    base = _RADIX.get(text[:2].lower())
    if base:
        try:
            return float(int(text[2:], base))
        except ValueError:
            return _NAN
    return _NAN


def js_greater(a: Any, b: Any) -> bool:
    """JavaScript's `a > b`: strings compare as strings, anything else as numbers (NaN is never greater)."""
    a, b = _to_primitive(a), _to_primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        return a > b
    x, y = js_number(a), js_number(b)
    return x > y  # False when either is NaN


def comparator(direction: int, as_num: bool) -> Callable[[Any, Any], int]:
    """Node-RED's sort comparison: 0 when `===`, `direction` when greater, else `-direction`."""
    if as_num:

        def compare(x: Any, y: Any) -> int:
            xp, yp = js_number(x), js_number(y)
            if xp == yp:
                return 0
            return direction if xp > yp else -direction
    else:

        def compare(x: Any, y: Any) -> int:
            if js_strict_equal(x, y):
                return 0
            return direction if js_greater(x, y) else -direction

    return compare


# ----- the node -------------------------------------------------------------------------------------
class SortConfig(NodeConfig):
    order: str | None = Field(
        "ascending",
        title="Order",
        json_schema_extra={"x-choices": [["ascending", "ascending"], ["descending", "descending"]]},
    )
    as_num: NRBool = Field(False, title="As number")
    target: str | None = Field(
        "payload",
        title="Sort",
        description="A msg property holding an array, or the message sequence.",
        json_schema_extra={"x-widget": "typed", "x-type-key": "targetType", "x-types": ["msg", "seq"]},
    )
    targetType: str | None = "msg"
    msgKey: str | None = Field(
        "payload",
        title="Array key",
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "msgKeyType",
            "x-types": ["elem", "jsonata"],
            "x-show-if": {"target": "msg"},
        },
    )
    msgKeyType: str | None = "elem"
    seqKey: str | None = Field(
        "payload",
        title="Sequence key",
        json_schema_extra={"x-widget": "typed", "x-type-key": "seqKeyType", "x-types": ["msg", "jsonata"]},
    )
    seqKeyType: str | None = "msg"


class SortNode(Node[SortConfig]):
    type = "sort"
    category = "sequence"
    color = "#E2D96E"
    Config = SortConfig
    auto_done = False
    help = (
        "Sorts an array property by element value or a JSONata key, or buffers a whole `msg.parts` "
        "sequence and re-sends it sorted by a message property or JSONata key."
    )

    def setup(self) -> None:
        cfg = self.config
        fields = cfg.model_fields_set
        self._direction = 1 if (cfg.order or "ascending") == "ascending" else -1
        self._compare = cmp_to_key(comparator(self._direction, bool(cfg.as_num)))
        # Node-RED sorts a sequence unless targetType is exactly "msg"
        self._on_property = "targetType" in fields and cfg.targetType == "msg"
        self._target = cfg.target or "payload"
        self._key_prop = cfg.seqKey or "payload"
        key_type = cfg.msgKeyType if self._on_property else cfg.seqKeyType
        self._key_exp: str | None = None
        if key_type == "jsonata":
            expr = cfg.msgKey if self._on_property else cfg.seqKey
            try:
                compile_expression(str(expr or ""))
            except JsonataError as exc:
                raise NodeError(f"Invalid JSONata expression in sort node: {exc}") from None
            self._key_exp = str(expr or "")
        try:
            props.parse_path(self._target)
            props.parse_path(self._key_prop)
        except Exception as exc:
            raise NodeError(f"property: {exc}") from None
        self._pending: dict[Any, dict[str, Any]] = {}
        self._seq = 0

    def _evaluate(self, data: Any) -> Any:
        try:
            return evaluate_jsonata(self._key_exp, data, self, undefined=_UNDEF)  # type: ignore[arg-type]
        except JsonataError as exc:
            raise NodeError(f"Invalid JSONata expression in sort node: {exc}") from None

    def on_input(self, msg: Msg) -> None:
        if self._on_property:
            self._sort_property(msg)
            self.done(msg)
            return
        parts = sequence_parts(msg)
        if parts is None:
            self.done(msg)
            return
        gid = parts["id"]
        if not isinstance(gid, (str, int, float, bool, type(None))):
            gid = _to_text(gid)
        group = self._pending.get(gid)
        if group is None:
            group = self._pending[gid] = {"count": None, "msgs": [], "seq": self._seq}
            self._seq += 1
        group["msgs"].append(msg)
        if "count" in parts:
            group["count"] = parts["count"]
        if group["count"] == len(group["msgs"]):
            del self._pending[gid]
            self._sort_group(group["msgs"])

    def _sort_property(self, msg: Msg) -> None:
        data = props.get_path(msg, self._target)
        if not isinstance(data, list):
            return  # not an array: nothing is sent
        if self._key_exp is None:
            data.sort(key=self._compare)
        else:
            keyed = [(self._evaluate(elem), elem) for elem in data]
            keyed.sort(key=lambda pair: self._compare(pair[0]))
            props.set_path(msg, self._target, [elem for _, elem in keyed])
        self.send(msg)

    def _sort_group(self, msgs: list[Msg]) -> None:
        try:
            if self._key_exp is None:
                prop = self._key_prop
                keyed = [(props.get_path(m, prop, _UNDEF), m) for m in msgs]
            else:
                keyed = [(self._evaluate(m), m) for m in msgs]
        except NodeError:
            for m in msgs[:-1]:
                self.done(m)
            raise
        keyed.sort(key=lambda pair: self._compare(pair[0]))
        for i, (_, m) in enumerate(keyed):
            m["parts"]["index"] = i
            self.send(m)
        for _, m in keyed:
            self.done(m)

    async def close(self, removed: bool) -> None:
        pending, self._pending = self._pending, {}
        for group in pending.values():
            self.log("clear pending message in sort node")
            for m in group["msgs"]:
                self.done(m)
