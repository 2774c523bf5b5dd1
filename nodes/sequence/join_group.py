"""One pending group of the join node (auto and manual modes): the parts gathered so far and what they combine
into once the group completes (a string, buffer, array, key/value object or merged object)."""

from __future__ import annotations

from typing import Any

from sofiaflow.nodes.sequence.join_values import HOLE, MISSING, count_number, join_text, js_string, to_bytes
from sofiaflow.runtime.api import Msg, NodeError

MAX_INDEX = 10_000_000
"""How far past an array's end msg.parts.index may point (the array grows to it)."""


class JoinGroup:
    __slots__ = (
        "array_len",
        "buffer_len",
        "count",
        "extra",
        "held",
        "join_char",
        "msg",
        "payload",
        "prop",
        "target",
        "timer",
        "type",
    )

    def __init__(self, kind: str, target: Any, msg: Msg) -> None:
        self.type = kind
        self.payload: Any = {} if kind == "object" else []
        self.extra: dict[str, Any] = {}
        self.count = 0
        self.target = target
        self.msg = msg
        self.held: list[Msg] = []
        self.timer: Any = None
        self.prop = "payload"
        self.join_char: Any = MISSING
        self.array_len: Any = None
        self.buffer_len = 0

    def put(self, slot: int | str, value: Any) -> None:
        """`payload[slot] = value` as JavaScript does it on an array (a str slot is a property of it)."""
        if isinstance(slot, str):
            if self.extra.get(slot) is None:
                self.count += 1
            self.extra[slot] = value
            return
        arr = self.payload
        if slot >= len(arr):
            if slot > len(arr) + MAX_INDEX:
                raise NodeError(f"msg.parts.index {slot} is too large")
            arr.extend([HOLE] * (slot + 1 - len(arr)))
            self.count += 1
        elif arr[slot] is HOLE or arr[slot] is None:
            self.count += 1
        arr[slot] = value

    def result(self, accumulate: bool) -> Any:
        """What the parts combine into (an accumulating group keeps a flattened array as its payload)."""
        kind = self.type
        out: Any = self.payload
        if kind == "object":
            pass
        elif kind == "string":
            char = self.join_char
            sep = "" if char is MISSING else js_string(char)
            out = sep.join(join_text(v) for v in out)
        elif kind == "buffer":
            char = self.join_char
            pieces = [b"" if v is HOLE or v is None else to_bytes(v) for v in out]
            data = (b"" if char is MISSING else to_bytes(char)).join(pieces)
            out = bytes(data)
        elif kind == "array" and (count_number(self.array_len) or 0) > 1:
            flat: list[Any] = []
            for item in out:
                if item is HOLE:
                    continue
                if isinstance(item, list):
                    flat.extend(None if v is HOLE else v for v in item)
                else:
                    flat.append(item)
            out = flat
            if accumulate:
                self.payload = flat
        else:
            out = [None if v is HOLE else v for v in out]
        return out
