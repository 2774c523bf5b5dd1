"""window: keyed time, count and session windows with an aggregate (count, sum, avg, min, max, stddev,
percentile, first, last, distinct), sent on every event or when a window closes.

The windows live on the node instance (`nodes/cep/state.py`), so they survive a `nodes` or `flows` redeploy
that leaves this node unchanged; a full redeploy, or a change to this node, starts afresh.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field

from sofiaflow.nodes.cep.aggregates import NAMES, NUMERIC, is_number
from sofiaflow.nodes.cep.state import Emission, Spec, WindowStore
from sofiaflow.runtime.api import (
    JsonataError,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRFloat,
    NRInt,
    new_message,
    typed_getter,
)

_UNITS = {"milliseconds": 1, "seconds": 1_000, "minutes": 60_000, "hours": 3_600_000}
Aggregate = Literal["count", "sum", "avg", "min", "max", "stddev", "percentile", "first", "last", "distinct"]
assert set(Aggregate.__args__) == set(NAMES)  # type: ignore[attr-defined]


class WindowConfig(NodeConfig):
    property: str = Field("payload", description="The msg property holding the value to aggregate")
    key: str = Field(
        "topic",
        description="What groups events into their own windows (one per device): a msg property such as "
        "topic or payload.deviceId, or a JSONata expression; empty: one group for all",
    )
    keyType: Literal["msg", "jsonata"] = Field("msg", description="How `key` is read")
    window: Literal["tumbling", "sliding", "session"] = Field(
        "tumbling",
        description="tumbling: back-to-back windows (batches); sliding: the last `size` up to each event; "
        "session: events less than `gap` apart",
    )
    measure: Literal["time", "count"] = Field(
        "time", description="Whether `size` is a duration or a number of events (sessions are time only)"
    )
    size: NRFloat = Field(60, description="Window length, in `units` (time) or events (count)")
    gap: NRFloat = Field(30, description="Session windows: the silence, in `units`, that ends a session")
    units: Literal["milliseconds", "seconds", "minutes", "hours"] = Field(
        "seconds", description="Units of `size` and `gap`"
    )
    aggregate: Aggregate = Field("avg", description="What is computed over each window's values")
    percentile: NRFloat = Field(50, description="For the percentile aggregate: 0 to 100")
    emit: Literal["event", "close"] = Field(
        "close",
        description="event: send the window's aggregate on every event; close: once, when the window ends "
        "(tumbling and session windows)",
    )
    timeSource: Literal["arrival", "msg"] = Field(
        "arrival", description="Event time: when the message arrives, or a msg property"
    )
    timeProperty: str = Field(
        "timestamp",
        description="With event time from the msg: the property holding epoch milliseconds or an ISO 8601 date",
    )
    late: Literal["drop", "include"] = Field(
        "drop",
        description="Events older than the newest of their key: drop them (counted), or include them when "
        "no more than `lateness` older (later ones are dropped, counted)",
    )
    lateness: NRFloat = Field(0, description="Allowed lateness in seconds (late: include)")
    maxKeys: NRInt = Field(10_000, description="At most this many keys; over it the least recent is dropped")
    maxEvents: NRInt = Field(
        100_000, description="At most this many events per window; over it the oldest is dropped"
    )


class WindowNode(Node[WindowConfig]):
    type = "window"
    category = "cep"
    color = "#C7E9C0"
    Config = WindowConfig
    help = """Groups messages by a key (`msg.topic`, a property path such as `payload.deviceId`, or a JSONata
expression) into windows and computes an aggregate of a property (`msg.payload`) over each one.

**Windows.** *tumbling*: back-to-back windows of `size` (time, aligned to the epoch, or a count of events: a
batch); *sliding*: for every event, the last `size` of time or events up to it; *session*: events of a key
less than `gap` apart, ending `gap` after the last one.

**Aggregates.** count, sum, avg, min, max, stddev (population), percentile (linear interpolation), first,
last (earliest and latest event time), distinct (number of different values). Numeric aggregates refuse a
message whose value is not a number.

**Emit.** *event*: the message goes on with `msg.payload` set to the aggregate of its window; *close*: a new
message when a tumbling or session window ends.

**Time.** Arrival time (the runtime clock) or event time from a msg property (epoch ms or ISO 8601 date).
With event time a key's windows close when a newer event of that key passes their end (plus the allowed
lateness); an event older than the newest of its key (beyond the allowed lateness) is late: dropped and
counted.

**Output.** `msg.payload` the aggregate, `msg.topic` the key (closed windows), `msg.window`: `key`, `start`,
`end` (epoch ms), `count`, `aggregate`, `closed`.

**Bounds.** `maxKeys` keys and `maxEvents` events per window: over them the oldest is dropped, counted and
warned about once. The status shows keys, late and dropped events. Windows survive redeploys that leave the
node unchanged."""

    def setup(self) -> None:
        cfg = self.config
        unit = _UNITS[cfg.units]
        size = _positive("size", cfg.size)
        if cfg.window == "session":
            if cfg.measure != "time":
                raise NodeError("measure: session windows are time windows (measure must be time)")
            gap = _positive("gap", cfg.gap) * unit
        else:
            gap = 0.0
        if cfg.window == "sliding" and cfg.emit == "close":
            raise NodeError(
                "emit: a sliding window ends with every event; use emit event (or a tumbling window)"
            )
        max_keys = _at_least_one("maxKeys", cfg.maxKeys)
        max_events = _at_least_one("maxEvents", cfg.maxEvents)
        if cfg.measure == "count":
            if not float(size).is_integer():
                raise NodeError(f"size: {cfg.size!r} is not a whole number of events")
            if size > max_events:
                raise NodeError(f"size: a window of {int(size)} events is over maxEvents ({max_events})")
        else:
            size *= unit
        percentile = 50.0 if cfg.percentile is None else float(cfg.percentile)
        if not 0 <= percentile <= 100:
            raise NodeError(f"percentile: {cfg.percentile!r} is not between 0 and 100")
        lateness = 0.0
        if cfg.late == "include" and cfg.timeSource == "msg":
            lateness = float(cfg.lateness or 0) * 1000
            if lateness < 0:
                raise NodeError(f"lateness: {cfg.lateness!r} seconds is negative")
        if not cfg.property:
            raise NodeError("property: name the msg property holding the value")
        if cfg.keyType == "jsonata" and not cfg.key:
            raise NodeError("key: a JSONata key needs an expression")
        if cfg.timeSource == "msg" and not cfg.timeProperty:
            raise NodeError("timeProperty: name the msg property holding the event time")
        spec = Spec(
            window=cfg.window,
            measure=cfg.measure,
            size=size,
            aggregate=cfg.aggregate,
            gap=gap,
            percentile=percentile,
            emit=cfg.emit,
            lateness=lateness,
            max_keys=max_keys,
            max_events=max_events,
        )
        self._arrival = cfg.timeSource == "arrival"
        self.store = WindowStore(spec, arrival=self._arrival)
        self._numeric = cfg.aggregate in NUMERIC
        self._value = typed_getter(self, cfg.property, "msg")
        try:
            self._key = typed_getter(self, cfg.key, cfg.keyType) if cfg.key else (lambda msg: None)
        except (NodeError, JsonataError) as exc:
            raise NodeError(f"key: {exc}") from None
        self._time = typed_getter(self, cfg.timeProperty, "msg")
        self._timer: Any = None
        self._timer_due: float | None = None
        self._status_at = -1.0
        self._seen = 0
        self._aggregate = cfg.aggregate
        self._emit_close = cfg.emit == "close"
        # arrival-time windows that end on their own: tumbling and session time windows
        self._timed = self._arrival and cfg.measure == "time" and cfg.window != "sliding"
        if cfg.window == "sliding" and cfg.measure == "time":
            self.on_input = self._on_slide  # type: ignore[method-assign]
        # plain msg properties (no path) read with one dict lookup
        self._value_name = cfg.property if _plain(cfg.property) else None
        self._key_name = cfg.key if cfg.keyType == "msg" and _plain(cfg.key) else None

    # ----- events in ---------------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        value = self._value(msg)
        if self._numeric and not (type(value) is float and value - value == 0.0 or is_number(value)):
            cfg = self.config
            raise NodeError(
                f"msg.{cfg.property} is {_show(value)}, not a number: the {cfg.aggregate} aggregate needs numbers"
            )
        key = self._key(msg)
        if key is not None and type(key) is not str and not isinstance(key, (int, float, bool)):
            key = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
        t = round(self.now() * 1000) if self._arrival else self._event_time(msg)
        store = self.store
        out = store.add(key, t, value)
        if out:
            self._send_all(out, msg)
        if store.warnings:
            for text in store.warnings:
                self.warn(text)
            store.warnings.clear()
        if self._timed:
            self._arm()
        self._seen += 1
        if out is None or self._seen & 255 == 1:
            self._show_status()

    def _on_slide(self, msg: Msg) -> None:
        """`on_input` for sliding time windows: one emission per event, the message sent on."""
        name = self._value_name
        value = msg.get(name) if name is not None else self._value(msg)
        if self._numeric and not (type(value) is float and value - value == 0.0 or is_number(value)):
            cfg = self.config
            raise NodeError(
                f"msg.{cfg.property} is {_show(value)}, not a number: the {cfg.aggregate} aggregate needs numbers"
            )
        name = self._key_name
        key = msg.get(name) if name is not None else self._key(msg)
        if key is not None and type(key) is not str and not isinstance(key, (int, float, bool)):
            key = json.dumps(key, sort_keys=True, separators=(",", ":"), default=str)
        t = round(self.now() * 1000) if self._arrival else self._event_time(msg)
        store = self.store
        out = store.slide(key, t, value)
        if out is not None:
            msg["payload"] = out[1]
            msg["window"] = {
                "key": key,
                "start": out[2],
                "end": out[3],
                "count": out[4],
                "aggregate": self._aggregate,
                "closed": False,
            }
            self.send(msg)
        if store.warnings:
            for text in store.warnings:
                self.warn(text)
            store.warnings.clear()
        self._seen += 1
        if out is None or self._seen & 255 == 1:
            self._show_status()

    def _event_time(self, msg: Msg) -> float:
        raw = self._time(msg)
        if isinstance(raw, bool):
            raw = None
        if isinstance(raw, (int, float)) and raw == raw and abs(raw) != float("inf"):
            return float(raw)
        if isinstance(raw, datetime):
            return raw.timestamp() * 1000
        if isinstance(raw, str):
            try:
                when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000
        raise NodeError(
            f"msg.{self.config.timeProperty} is {_show(raw)}: the event time must be epoch milliseconds or "
            "an ISO 8601 date"
        )

    def _send_all(self, out: list[Emission], msg: Msg) -> None:
        for key, value, start, end, count, closed in out:
            info = {
                "key": key,
                "start": start,
                "end": end,
                "count": count,
                "aggregate": self._aggregate,
                "closed": closed,
            }
            if self._emit_close:
                sent = new_message(payload=value, window=info)
                if key is not None:
                    sent["topic"] = key
                self.send(sent)
            else:
                msg["payload"] = value
                msg["window"] = info
                self.send(msg)

    # ----- arrival time: windows close on the clock ----------------------------------------------------------
    def _arm(self) -> None:
        due = self.store.next_due()
        if due is None or (
            self._timer is not None and self._timer_due is not None and self._timer_due <= due
        ):
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max((due - self.now() * 1000) / 1000, 0.0)
        self._timer_due = due
        self._timer = self.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = self._timer_due = None
        now = round(self.now() * 1000)
        out = self.store.close_due(now)
        if out:
            self._send_all(out, {})
        due = self.store.next_due()
        if not out and due is not None and due <= now + 1:
            # woken a hair early by the clock's float arithmetic: look again a millisecond later
            self._timer_due = due
            self._timer = self.call_later(0.001, self._tick)
        else:
            self._arm()
        self._show_status()

    def _show_status(self) -> None:
        now = self.now()
        if now - self._status_at < 1.0:
            return
        self._status_at = now
        store = self.store
        text = f"{len(store.keys)} keys, {store.late} late"
        dropped = store.evicted_keys + store.evicted_events
        if dropped:
            text += f", {store.evicted_keys} keys and {store.evicted_events} events dropped"
        self.status("yellow" if store.late or dropped else "green", "dot", text)

    @property
    def counters(self) -> dict[str, int]:
        """Late events dropped, keys and events dropped over the bounds."""
        store = self.store
        return {"late": store.late, "evictedKeys": store.evicted_keys, "evictedEvents": store.evicted_events}

    async def close(self, removed: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _plain(path: str) -> bool:
    return bool(path) and path.isidentifier()


def _positive(name: str, value: float | None) -> float:
    if value is None or not value > 0 or value == float("inf"):
        raise NodeError(f"{name}: {value!r} must be a number above 0")
    return float(value)


def _at_least_one(name: str, value: int | None) -> int:
    if value is None or value < 1:
        raise NodeError(f"{name}: {value!r} must be at least 1")
    return int(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
