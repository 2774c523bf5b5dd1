"""split: turn one message into a sequence of messages carrying `msg.parts` (Node-RED 4.1 semantics).

Strings split on a separator (`spltType: "str"`, `"\\n"` escapes as Node-RED stores them), on a byte
sequence (`"bin"`, a JSON array) or into fixed lengths (`"len"`); arrays split into chunks of
`arraySplt`; objects into one message per key; byte buffers like strings. Each part is a clone
of the message with the property replaced. `stream` carries the remainder over to the next message.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import Field

from sofiaflow.nodes.sequence.parts import unescape
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, clone_message, new_msgid, props

_MISSING = object()
_INT_PREFIX = re.compile(r"\s*([+-]?\d+)")


def parse_int(value: Any) -> int | None:
    """JavaScript's parseInt(value): the leading integer of its text, or None (NaN)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    found = _INT_PREFIX.match(str(value))
    return int(found.group(1)) if found else None


class SplitConfig(NodeConfig):
    splt: str | int | float | None = Field(
        "\\n",
        title="String / buffer: split using",
        json_schema_extra={"x-widget": "typed", "x-type-key": "spltType", "x-types": ["str", "bin", "len"]},
    )
    spltType: str = "str"
    arraySplt: int | str | float | None = Field(
        1, title="Array: split into chunks of length", json_schema_extra={"x-widget": "text"}
    )
    arraySpltType: str = Field("len", title="Array split type", json_schema_extra={"x-widget": "hidden"})
    stream: NRBool = Field(False, title="Handle as a stream of messages")
    addname: str | None = Field("", title="Object: copy the key to msg.", description="Blank: do not copy.")
    property: str = Field("payload", title="Split", description="The msg property split (msg.payload).")


class SplitNode(Node[SplitConfig]):
    type = "split"
    category = "sequence"
    color = "#E2D96E"
    Config = SplitConfig
    auto_done = False
    help = (
        "Splits a string or buffer (by separator or fixed length), an array (into chunks) or an object "
        "(one message per key) into a sequence of messages with `msg.parts`, which join can reverse."
    )

    def setup(self) -> None:
        cfg = self.config
        self._stream = cfg.stream is True
        self._kind = cfg.spltType or "str"
        self._addname = cfg.addname or ""
        self._property = cfg.property or "payload"
        try:
            props.parse_path(self._property)
            if self._addname:
                props.parse_path(self._addname)
        except Exception as exc:
            raise NodeError(f"property: {exc}") from None
        self._sep_text = ""
        self._sep_bytes = b""
        self._ch: Any = None
        self._len = 0
        if self._kind == "str":
            self._sep_text = unescape(str(cfg.splt or "\\n"))
            self._sep_bytes = self._sep_text.encode()
            self._ch = self._sep_text
        elif self._kind == "bin":
            try:
                raw = json.loads(cfg.splt) if isinstance(cfg.splt, str) else cfg.splt
                if not isinstance(raw, list):
                    raise ValueError("not an array")
                self._sep_bytes = bytes(raw)
            except (ValueError, TypeError) as exc:
                raise NodeError(
                    f"Invalid split property: splt {cfg.splt!r} is not a JSON array of bytes ({exc})"
                ) from None
            if not self._sep_bytes:
                raise NodeError("Invalid split property: splt is an empty byte sequence")
            self._sep_text = self._sep_bytes.decode("utf-8", errors="replace")
            self._ch = raw
        elif self._kind == "len":
            size = parse_int(cfg.splt)
            if size is None or size < 1:
                raise NodeError(f"Invalid split property: invalid split length: {cfg.splt!r}")
            self._len = size
        else:
            raise NodeError(f"Invalid split property: spltType {self._kind!r} (expected str, bin or len)")
        chunk = 1 if "arraySplt" not in cfg.model_fields_set else parse_int(cfg.arraySplt)
        if chunk is None or chunk < 1:
            raise NodeError(f"Invalid split property: invalid array split length: {cfg.arraySplt!r}")
        self._chunk = chunk
        self._c = 0
        self._remainder = ""
        self._buffer = b""
        self._pending_done: list[Msg] = []

    # ----- helpers ------------------------------------------------------------------------------
    def _set(self, msg: Msg, value: Any) -> None:
        props.set_path(msg, self._property, value)

    def _emit(self, msg: Msg, value: Any, index: int, set_value: bool = True) -> None:
        if set_value:
            self._set(msg, value)
        msg["parts"]["index"] = index
        self.send(clone_message(msg))

    def _flush_dones(self) -> None:
        if self._pending_done:
            pending, self._pending_done = self._pending_done, []
            for m in pending:
                self.done(m)

    # ----- input -------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        prop = self._property
        value = msg.get(prop, _MISSING) if prop == "payload" else props.get_path(msg, prop, _MISSING)
        if value is _MISSING:
            return  # Node-RED ignores the message (and never calls done for it)
        if value is None:
            raise NodeError("Cannot convert undefined or null to object")
        parts: dict[str, Any] = {"parts": msg["parts"]} if "parts" in msg else {}
        parts["id"] = new_msgid()
        if prop != "payload":
            parts["property"] = prop
        msg["parts"] = parts
        msg.pop("_msgid", None)
        if isinstance(value, str):
            self._split_string(msg, parts, value)
        elif isinstance(value, list):
            self._split_array(msg, parts, value)
        elif isinstance(value, dict):
            self._split_object(msg, parts, value)
        elif isinstance(value, (bytes, bytearray)):
            self._split_buffer(msg, parts, value)
        else:
            self.done(msg)  # other types are dropped

    def _split_string(self, msg: Msg, parts: dict, value: str) -> None:
        value = self._remainder + value
        parts["type"] = "string"
        if self._kind == "len":
            size = self._len
            parts["ch"] = ""
            parts["len"] = size
            count = math.ceil(len(value) / size)
            if not self._stream:
                parts["count"] = count
                self._c = 0
            pos = 0
            for _ in range(count - 1):
                self._emit(msg, value[pos : pos + size], self._c)
                self._c += 1
                pos += size
            if count > 1:
                self._flush_dones()
            self._remainder = value[pos:]
            if not self._stream or len(self._remainder) == size:
                self._emit(msg, self._remainder, self._c)
                self._c += 1
                self._flush_dones()
                self.done(msg)
                self._remainder = ""
            else:
                self._pending_done.append(msg)
            return
        pieces = value.split(self._sep_text)
        parts["ch"] = self._ch
        n = len(pieces)
        for piece in pieces[:-1]:
            if not self._stream:
                parts["count"] = n
            self._emit(msg, piece, self._c)
            self._c += 1
        if not self._stream:
            parts["count"] = n
            self._emit(msg, pieces[-1], self._c)
            self._c = 0
        else:
            self._remainder = pieces[-1]
        self.done(msg)

    def _split_array(self, msg: Msg, parts: dict, value: list) -> None:
        size = self._chunk
        parts["type"] = "array"
        count = math.ceil(len(value) / size)
        parts["count"] = count
        parts["len"] = size
        template = clone_message(msg)
        for i in range(count):
            chunk: Any = value[i * size : (i + 1) * size]
            if size == 1:
                chunk = chunk[0]
            self._emit(template, chunk, i)
        self.done(msg)

    def _split_object(self, msg: Msg, parts: dict, value: dict) -> None:
        parts["type"] = "object"
        count = len(value)
        addname = self._addname
        for j, (key, item) in enumerate(list(value.items())):
            self._set(msg, item)
            if addname:
                props.set_path(msg, addname, key)
            parts["key"] = key
            parts["count"] = count
            self._emit(msg, item, j, set_value=False)
        self.done(msg)

    def _split_buffer(self, msg: Msg, parts: dict, value: bytes | bytearray) -> None:
        kind = type(value)
        buff = bytes(self._buffer) + bytes(value)
        parts["type"] = "buffer"
        if self._kind == "len":
            size = self._len
            count = math.ceil(len(buff) / size)
            if not self._stream:
                parts["count"] = count
                self._c = 0
            parts["len"] = size
            pos = 0
            for _ in range(count - 1):
                self._emit(msg, kind(buff[pos : pos + size]), self._c)
                self._c += 1
                pos += size
            if count > 1:
                self._flush_dones()
            self._buffer = buff[pos:]
            if not self._stream or len(self._buffer) == size:
                self._emit(msg, kind(self._buffer), self._c)
                self._c += 1
                self._flush_dones()
                self.done(msg)
                self._buffer = b""
            else:
                self._pending_done.append(msg)
            return
        sep = self._sep_bytes
        parts["ch"] = self._ch
        count = buff.count(sep) + 1
        if not self._stream:
            parts["count"] = count
            self._c = 0
        p = 0
        pos = buff.find(sep)
        while pos > -1:
            self._emit(msg, kind(buff[p:pos]), self._c)
            self._c += 1
            p = pos + len(sep)
            pos = buff.find(sep, p)
        if count > 1:
            self._flush_dones()
        if not self._stream and p < len(buff):
            # Node-RED 4.1 also leaves its counter at count + 1 here, so that the next string split
            # starts at a wrong index; the counter is reset instead (a deliberate fix)
            parts["count"] = self._c + 1
            self._emit(msg, kind(buff[p:]), self._c)
            self._c = 0
            self._flush_dones()
        else:
            self._buffer = buff[p:]
            if self._buffer:
                self._pending_done.append(msg)
        if not self._buffer:
            self.done(msg)

    async def close(self, removed: bool) -> None:
        self._flush_dones()
