"""pattern: per key, "A then B within T" (`sequence`) or "N events matching X within T" (`count`).

Events are taken in event-time order: with a `timeProperty` (epoch ms or ISO text on the message) events that
arrive up to `lateness` seconds out of order are held and released sorted (time, then arrival); an event older
than what was already released is late, dropped with a warning and counted. Without one, the runtime clock at
arrival is the event time. A match sends a copy of the completing message with `msg.pattern` = {key, mode,
events: [{time (ms), payload}], first, last}; the matched events are consumed (matches do not overlap).

State (per key: the previous event and the pending partial matches) lives on the instance, so an unchanged
node keeps it across a `nodes` redeploy of other nodes. It is bounded: `maxKeys` keys (the least recently seen
dropped first) and `maxPending` partial matches per key (the oldest dropped first); each drop warns once per
burst and is counted in the status.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from sofiaflow.nodes.cep.event_keys import condition, key_getter, time_getter
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRFloat, NRInt, clone_message

RULE_ROWS: dict = {
    "x-widget": "rows",
    "x-columns": [
        {"key": "property", "title": "Property (msg.)"},
        {
            "key": "t",
            "title": "Test",
            "x-choices": [
                ["eq", "=="],
                ["neq", "!="],
                ["lt", "<"],
                ["lte", "<="],
                ["gt", ">"],
                ["gte", ">="],
                ["cont", "contains"],
                ["regex", "matches regex"],
                ["true", "is true"],
                ["false", "is false"],
                ["null", "is null"],
                ["nnull", "is not null"],
            ],
            "default": "eq",
        },
        {"key": "v", "title": "Value"},
        {
            "key": "vt",
            "title": "Value type",
            "x-choices": [["str", "string"], ["num", "number"], ["bool", "boolean"]],
            "default": "str",
        },
    ],
}
"""The editor's rows for a list of pattern rules {property, t, v, vt}."""


class PatternConfig(NodeConfig):
    mode: str = Field(
        "sequence",
        title="Pattern",
        json_schema_extra={
            "x-choices": [
                ["sequence", "A then B within a time"],
                ["count", "N matching events within a time"],
            ]
        },
    )
    key: str = Field(
        "topic",
        title="Per",
        description="What separates the devices: a msg property or a JSONata expression; blank: one for all.",
    )
    keyType: str = "msg"
    first: Any = Field(
        [],
        title="A (first event)",
        description="Rules an event must all pass (or a JSONata expression).",
        json_schema_extra={
            **RULE_ROWS,
        },
    )
    """A (sequence) or X (count): a JSONata text or a list of rules {property, t, v, vt}."""
    then: Any = Field(
        [],
        title="B (then)",
        description="Rules the following event must all pass.",
        json_schema_extra={
            **RULE_ROWS,
            "x-show-if": {"mode": "sequence"},
        },
    )
    """B (sequence only)."""
    count: NRInt = Field(2, title="Number of events", json_schema_extra={"x-show-if": {"mode": "count"}})
    within: NRFloat = Field(60.0, title="Within (seconds)")
    timeProperty: str = Field(
        "",
        title="Event time property",
        description="A msg property holding epoch ms or an ISO 8601 date; blank: arrival time.",
    )
    lateness: NRFloat = Field(
        0.0, title="Lateness (seconds)", description="With event time: how late an event may arrive."
    )
    maxKeys: NRInt = Field(10_000, title="Max keys")
    maxPending: NRInt = Field(100, title="Max partial matches per key")


@dataclass
class _KeyState:
    prev: Msg | None = None
    pending: deque[tuple[float, Msg]] = field(default_factory=deque)


class PatternNode(Node[PatternConfig]):
    type = "pattern"
    category = "cep"
    color = "#c7e9c0"
    Config = PatternConfig
    help = (
        "Detects a pattern per key. `sequence`: a message matching `first` (A) followed by one matching `then` "
        "(B) within `within` seconds. `count`: `count` messages matching `first` within `within` seconds. "
        "Conditions are a JSONata expression or a list of rules {property, t: eq|neq|lt|lte|gt|gte|cont|regex|"
        "true|false|null|nnull, v, vt: num|str|bool|json|msg|prev}; `prev` (and `$prev` in JSONata) is the "
        "previous message of the same key. The key is `key` (a msg property, or JSONata with keyType "
        "'jsonata'). With `timeProperty` (epoch ms or ISO text) events may arrive up to `lateness` seconds out "
        "of order. Output: a copy of the completing message with msg.pattern {key, mode, events, first, last}. "
        "Bounded by `maxKeys` and `maxPending` (oldest dropped, with a warning)."
    )

    def setup(self) -> None:
        cfg = self.config
        if cfg.mode not in ("sequence", "count"):
            raise NodeError(f"mode: expected 'sequence' or 'count', got {cfg.mode!r}")
        self._within = _positive(cfg.within, "within")
        self._lateness = _non_negative(cfg.lateness, "lateness")
        self._count = _whole(cfg.count, "count", 1) if cfg.mode == "count" else 2
        self._max_keys = _whole(cfg.maxKeys, "maxKeys", 1)
        self._max_pending = _whole(cfg.maxPending, "maxPending", 1)
        self._key = key_getter(self, cfg.key, cfg.keyType)
        self._time = time_getter(self, cfg.timeProperty)
        self._first = condition(self, cfg.first, "first")
        self._then = condition(self, cfg.then, "then") if cfg.mode == "sequence" else None
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        self._buffer: list[tuple[float, int, str, Msg]] = []
        self._seq = itertools.count()
        self._max_seen = float("-inf")
        self._released = float("-inf")
        self._last_arrival = 0.0
        self._flush_timer: Any = None
        self.dropped_keys = 0
        self.dropped_pending = 0
        self.late = 0
        self.matches = 0

    # ----- input ------------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        key = self._key(msg)
        if key is None:
            raise NodeError(f"key: the message has no {self.config.key!r}")
        ts = self._time(msg)
        if not self.config.timeProperty:
            self._process(ts, key, msg)
            return
        if ts < self._released:
            self.late += 1
            self.warn(f"late event dropped: time {ts * 1000:.0f} is before {self._released * 1000:.0f}")
            self._show()
            return
        heapq.heappush(self._buffer, (ts, next(self._seq), key, msg))
        self._max_seen = max(self._max_seen, ts)
        self._last_arrival = self.now()
        self._release(self._max_seen - self._lateness)
        if self._buffer and self._flush_timer is None:
            self._flush_timer = self.call_later(self._lateness, self._flush)

    def _release(self, upto: float) -> None:
        while self._buffer and self._buffer[0][0] <= upto:
            ts, _, key, msg = heapq.heappop(self._buffer)
            self._released = ts
            self._process(ts, key, msg)

    def _flush(self) -> None:
        """No event for `lateness` seconds of the clock: nothing older can still be on its way."""
        self._flush_timer = None
        if not self._buffer:
            return
        quiet = self.now() - self._last_arrival
        if quiet >= self._lateness - 1e-6:  # the clock's float arithmetic may wake us a hair early
            self._release(float("inf"))
        else:
            self._flush_timer = self.call_later(self._lateness - quiet, self._flush)

    # ----- matching ---------------------------------------------------------------------------------
    def _state(self, key: str) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            if len(self._keys) >= self._max_keys:
                self._keys.popitem(last=False)
                self.dropped_keys += 1
                if self.dropped_keys == 1 or self.dropped_keys % 1000 == 0:
                    self.warn(f"more than maxKeys={self._max_keys} keys: the least recent dropped")
                self._show()
            state = self._keys[key] = _KeyState()
        else:
            self._keys.move_to_end(key)
        return state

    def _process(self, ts: float, key: str, msg: Msg) -> None:
        state = self._state(key)
        prev, state.prev = state.prev, msg
        pending = state.pending
        while pending and ts - pending[0][0] > self._within:
            pending.popleft()
        if self._then is not None:
            if pending and self._then(msg, prev):
                self._emit(key, [*pending][:1] + [(ts, msg)])
                pending.clear()
                return
            if self._first(msg, prev):
                self._hold(pending, ts, msg)
            return
        if self._first(msg, prev):
            self._hold(pending, ts, msg)
            if len(pending) >= self._count:
                self._emit(key, list(pending))
                pending.clear()

    def _hold(self, pending: deque[tuple[float, Msg]], ts: float, msg: Msg) -> None:
        if len(pending) >= self._max_pending:
            pending.popleft()
            self.dropped_pending += 1
            if self.dropped_pending == 1 or self.dropped_pending % 1000 == 0:
                self.warn(
                    f"more than maxPending={self._max_pending} partial matches of a key: the oldest dropped"
                )
            self._show()
        pending.append((ts, msg))

    def _emit(self, key: str, events: list[tuple[float, Msg]]) -> None:
        self.matches += 1
        out = clone_message(events[-1][1])
        out["pattern"] = {
            "key": key,
            "mode": self.config.mode,
            "events": [{"time": _ms(ts), "payload": m.get("payload")} for ts, m in events],
            "first": _ms(events[0][0]),
            "last": _ms(events[-1][0]),
        }
        self.send(out)
        self._show()

    def _show(self) -> None:
        text = f"{self.matches} matches"
        drops = self.dropped_keys + self.dropped_pending + self.late
        if drops:
            text += f", dropped {self.dropped_keys} keys / {self.dropped_pending} partial / {self.late} late"
        self.status("yellow" if drops else "green", "dot", text)

    async def close(self, removed: bool) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None


def _ms(ts: float) -> float:
    value = ts * 1000.0
    return int(value) if value.is_integer() else value


def _positive(value: float | None, what: str) -> float:
    if value is None or not value > 0:
        raise NodeError(f"{what}: expected a number of seconds above 0, got {value!r}")
    return float(value)


def _non_negative(value: float | None, what: str) -> float:
    if value is None:
        return 0.0
    if not value >= 0:
        raise NodeError(f"{what}: expected a number of seconds, 0 or more, got {value!r}")
    return float(value)


def _whole(value: int | None, what: str, least: int) -> int:
    if value is None or value < least:
        raise NodeError(f"{what}: expected a whole number of at least {least}, got {value!r}")
    return int(value)
