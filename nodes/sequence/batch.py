"""batch: regroup messages into new `msg.parts` sequences (Node-RED 4.1 semantics).

`count` sends a sequence every `count` messages, keeping the last `overlap` for the next one
(and, with `honourParts`, also ends a sequence at the last message of an incoming one).
`interval` sends what arrived in each `interval` seconds (an empty `payload: null` sequence with
`allowEmptySequence`). `concat` waits for one complete sequence of each topic in `topics` and
sends them concatenated in the listed order. `msg.reset` drops what is pending.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sofiaflow.runtime.api import (
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    NRFloat,
    NRInt,
    clone_message,
    new_message,
    new_msgid,
)


class BatchConfig(NodeConfig):
    mode: str = Field(
        "count",
        title="Mode",
        json_schema_extra={
            "x-choices": [
                ["count", "group by number of messages"],
                ["interval", "group by time interval"],
                ["concat", "concatenate sequences"],
            ]
        },
    )
    count: NRInt = Field(10, title="Number of messages", json_schema_extra={"x-show-if": {"mode": "count"}})
    overlap: NRInt = Field(0, title="Overlap", json_schema_extra={"x-show-if": {"mode": "count"}})
    interval: NRFloat = Field(
        10, title="Interval (seconds)", json_schema_extra={"x-show-if": {"mode": "interval"}}
    )
    allowEmptySequence: NRBool = Field(
        False,
        title="Send an empty message when no message arrives",
        json_schema_extra={"x-show-if": {"mode": "interval"}},
    )
    honourParts: NRBool = Field(False, title="Honour msg.parts", json_schema_extra={"x-widget": "hidden"})
    topics: list[dict[str, Any]] | None = Field(
        [{"topic": ""}],
        title="Topics",
        description="The sequences concatenated, by msg.topic, in this order.",
        json_schema_extra={
            "x-widget": "rows",
            "x-columns": [{"key": "topic", "title": "Topic"}],
            "x-show-if": {"mode": "concat"},
        },
    )


def _same(a: Any, b: Any) -> bool:
    """JavaScript `===` for topics."""
    return type(a) is type(b) and a == b


class BatchNode(Node[BatchConfig]):
    type = "batch"
    category = "sequence"
    color = "#E2D96E"
    Config = BatchConfig
    auto_done = False
    help = (
        "Regroups messages into sequences (new `msg.parts`): every N messages with optional overlap, per "
        "time interval, or by concatenating complete sequences of the listed topics in order."
    )

    def setup(self) -> None:
        cfg = self.config
        self._mode = cfg.mode or "count"
        self._timer: Any = None
        if self._mode == "count":
            self._count = cfg.count if cfg.count else 1
            self._overlap = cfg.overlap or 0
            if self._count < 1 or self._overlap < 0 or self._count <= self._overlap:
                raise NodeError(
                    f"Invalid count and overlap: count {cfg.count!r} must be at least 1 and more "
                    f"than overlap {cfg.overlap!r}"
                )
            self._queue: list[Msg] = []
            self._eof = False
        elif self._mode == "interval":
            self._interval = float(cfg.interval or 0)
            if self._interval <= 0:
                raise NodeError(f"Invalid interval: {cfg.interval!r} (seconds, more than 0)")
            self._queue = []
        elif self._mode == "concat":
            self._topics = [t.get("topic") for t in (cfg.topics or []) if isinstance(t, dict)]
            self._pending: dict[Any, dict[str, Any]] = {}
        else:
            raise NodeError(f"mode: unexpected mode {self._mode!r} (expected count, interval or concat)")
        self._honour = bool(cfg.honourParts)

    async def start(self) -> None:
        if self._mode == "interval":
            self._arm()

    # ----- shared ------------------------------------------------------------------------------
    def _send_sequence(self, msgs: list[Msg], clone: bool) -> None:
        seq_id = msgs[0].get("_msgid") or new_msgid()
        count = len(msgs)
        for i, original in enumerate(msgs):
            msg = clone_message(original) if clone else original
            parts = msg.get("parts")
            if not isinstance(parts, dict):
                parts = msg["parts"] = {}
            parts["id"] = seq_id
            parts["index"] = i
            parts["count"] = count
            self.send(msg)

    def _done_all(self, msgs: list[Msg]) -> None:
        for m in msgs:
            self.done(m)

    def on_input(self, msg: Msg) -> None:
        if self._mode == "count":
            self._count_input(msg)
        elif self._mode == "interval":
            self._interval_input(msg)
        else:
            self._concat_input(msg)

    # ----- count -------------------------------------------------------------------------------
    def _count_input(self, msg: Msg) -> None:
        if "reset" in msg:
            queue, self._queue = self._queue, []
            self._eof = False
            self._done_all(queue)
            self.done(msg)
            return
        parts = msg.get("parts")
        if self._honour and isinstance(parts, dict):
            index, total = parts.get("index"), parts.get("count")
            if isinstance(index, (int, float)) and not isinstance(index, bool) and index + 1 == total:
                self._eof = True
        queue = self._queue
        queue.append(msg)
        if len(queue) == self._count or self._eof:
            overlap = self._overlap
            self._send_sequence(queue, overlap > 0)
            self._done_all(queue[: len(queue) - overlap])
            self._queue = queue[-overlap:] if overlap else []
            self._eof = False

    # ----- interval ----------------------------------------------------------------------------
    def _arm(self) -> None:
        self._timer = self.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        self._arm()
        queue, self._queue = self._queue, []
        if queue:
            self._send_sequence(queue, False)
            self._done_all(queue)
        elif self.config.allowEmptySequence:
            self.send(new_message(payload=None, parts={"id": new_msgid(), "index": 0, "count": 1}))

    def _interval_input(self, msg: Msg) -> None:
        if "reset" in msg:
            if self._timer is not None:
                self._timer.cancel()
            queue, self._queue = self._queue, []
            self._done_all(queue)
            self.done(msg)
            self._arm()
            return
        self._queue.append(msg)

    # ----- concat ------------------------------------------------------------------------------
    def _concat_input(self, msg: Msg) -> None:
        if "reset" in msg:
            self._drop_concat()
            self.done(msg)
            return
        topic = msg.get("topic")
        if "topic" not in msg or not any(_same(t, topic) for t in self._topics):
            return  # as Node-RED: other topics are ignored
        parts = msg.get("parts")
        if not isinstance(parts, dict) or "id" not in parts or "index" not in parts or "count" not in parts:
            raise NodeError("no parts property in message")
        by_topic = self._pending.setdefault(topic, {"groups": {}, "gids": []})
        gid = parts["id"]
        if not isinstance(gid, (str, int, float, bool, type(None))):
            gid = repr(gid)
        group = by_topic["groups"].get(gid)
        if group is None:
            group = by_topic["groups"][gid] = {"msgs": [], "count": None}
            by_topic["gids"].append(gid)
        group["msgs"].append(msg)
        if group["count"] is None:
            group["count"] = parts["count"]
        self._try_concat()

    def _first_group(self, topic: Any) -> dict[str, Any] | None:
        by_topic = self._pending.get(topic)
        if not by_topic or not by_topic["gids"]:
            return None
        return by_topic["groups"][by_topic["gids"][0]]

    def _try_concat(self) -> None:
        for topic in self._topics:
            group = self._first_group(topic)
            if group is None or group["count"] != len(group["msgs"]):
                return
        msgs: list[Msg] = []
        for topic in self._topics:
            msgs.extend(self._first_group(topic)["msgs"])  # type: ignore[index]
        for topic in self._topics:
            by_topic = self._pending[topic]
            if by_topic["gids"]:
                del by_topic["groups"][by_topic["gids"].pop(0)]
        self._send_sequence(msgs, True)
        self._done_all(msgs)

    def _drop_concat(self) -> None:
        pending, self._pending = self._pending, {}
        for by_topic in pending.values():
            for group in by_topic["groups"].values():
                self._done_all(group["msgs"])

    async def close(self, removed: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._mode == "concat":
            self._drop_concat()
        else:
            queue, self._queue = self._queue, []
            self._done_all(queue)
