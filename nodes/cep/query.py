"""cep query: a Siddhi-style query over the messages coming in, compiled onto the CEP operators.

The query is parsed (`query_grammar`) and compiled (`query_plan`) when the node is deployed; a query that
cannot be read or run refuses the deploy, naming what and where (line:column). Its state (windows, partial
matches) lives on the node instance, so it survives redeploys that leave this node unchanged.
"""

from __future__ import annotations

import heapq
import itertools
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from sofiaflow.nodes.cep.query_grammar import QuerySyntaxError, parse
from sofiaflow.nodes.cep.query_plan import PatternQuery, QueryError, Row, WindowQuery, plan
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRFloat, NRInt, new_message

EXAMPLE = (
    "from Temp[value > 30]#window.time(5 min)\n"
    "select deviceId, avg(value) as avgValue\n"
    "group by deviceId\n"
    "having avgValue > 35\n"
    "insert into Alerts"
)


class CepQueryConfig(NodeConfig):
    query: str = Field(
        EXAMPLE,
        title="Query",
        description="A Siddhi-style query: from Stream[filter]#window.kind(size) select ... group by ... "
        "having ... insert into Output, or a pattern: from every e1=S[...] -> e2=S[...] within 1 min select ...",
        json_schema_extra={"x-widget": "code", "x-language": "sql"},
    )
    eventTime: str = Field(
        "",
        title="Event time",
        description="A payload attribute holding the event time (epoch ms or ISO 8601); empty: arrival time",
    )
    lateness: NRFloat = Field(
        0,
        title="Lateness",
        description="With event time: seconds an event may come late (windows: behind the newest of its group; "
        "patterns: held and sorted for this long)",
    )
    maxKeys: NRInt = Field(10_000, title="Max groups", description="Windows: at most this many groups")
    maxEvents: NRInt = Field(
        100_000, title="Max events", description="Windows: at most this many events each"
    )
    maxPending: NRInt = Field(
        10_000, title="Max partial matches", description="Patterns: at most this many partial matches"
    )


class CepQueryNode(Node[CepQueryConfig]):
    type = "cep-query"
    category = "cep"
    label = "cep query"
    color = "#C7E9C0"
    Config = CepQueryConfig
    help = """Runs a Siddhi-style query over the messages coming in.

    from Temp[value > 30]#window.time(5 min)
    select deviceId, avg(value) as avgValue group by deviceId having avgValue > 35
    insert into Alerts

    from every e1=Temp[value > 30] -> e2=Temp[deviceId == e1.deviceId and value > e1.value] within 1 min
    select e1.deviceId, e1.value as first, e2.value as second insert into Rising

**Streams.** A message is an event of stream `S` when `msg.topic` is `S` (or `msg.ontology`, as the ontology
nodes set it); its attributes are `msg.payload`'s keys. What the query sends has `msg.topic` the output
stream (`insert into`) and `msg.payload` the selected attributes.

**Filters** `[...]`: comparisons (`== != < <= > >=`), `and`, `or`, `not`, arithmetic (`+ - * / %`), texts,
numbers, `true`, `false`, `null`, nested attributes (`location.city`).

**Windows** `#window.length(n)` (the last n events, sent on every event), `time(5 min)` (the last 5 minutes),
`lengthBatch(n)` (every n events), `timeBatch(1 min)` (whole minutes, aligned to the clock). Windows are kept
per group (`group by`), as the window node keeps them per key. Units: ms, sec, min, hour (and long forms).

**Select** attributes and aggregates: `count()`, `sum`, `avg`, `min`, `max`, `stddev`, `distinctCount`, named
with `as`; `having` filters the rows by their selected names.

**Patterns** `every e1=S[...] -> e2=S[...] -> ... within t`: later steps may refer to earlier events
(`e1.value`); every event matching the first step starts a partial match (without `every`: only when none is
pending); the first later event fulfilling the next step advances it.

**Time.** Arrival time (the runtime clock), or `eventTime`, a payload attribute (epoch ms or ISO 8601 date),
with `lateness` seconds of allowed disorder. **Bounds.** `maxKeys` groups and `maxEvents` events per window,
`maxPending` partial matches: over them the oldest is dropped, counted and warned about once."""

    def setup(self) -> None:
        cfg = self.config
        try:
            query = parse(cfg.query)
            lateness = float(cfg.lateness or 0)
            if lateness < 0 or lateness != lateness:
                raise NodeError(f"lateness: {cfg.lateness!r} seconds is negative")
            self._arrival = not cfg.eventTime
            self.plan = plan(
                query,
                arrival=self._arrival,
                lateness=lateness * 1000,
                max_keys=_at_least_one("maxKeys", cfg.maxKeys),
                max_events=_at_least_one("maxEvents", cfg.maxEvents),
                max_pending=_at_least_one("maxPending", cfg.maxPending),
            )
        except QuerySyntaxError as exc:
            raise NodeError(f"query: {exc}") from None
        self._lateness = lateness
        self._time_path = cfg.eventTime.split(".") if cfg.eventTime else []
        self._streams = self.plan.streams if isinstance(self.plan, PatternQuery) else {self.plan.stream}
        self._timer: Any = None
        self._timer_due: float | None = None
        # patterns with event time: events held up to `lateness` and released in time order
        self._buffer: list[tuple[float, int, str, Any]] = []
        self._seq = itertools.count()
        self._newest = float("-inf")
        self._released = float("-inf")
        self._last_arrival = 0.0
        self.late = 0
        self._warned: set[str] = set()

    # ----- events in ---------------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        stream = msg.get("topic")
        if stream.__class__ is not str or stream not in self._streams:
            stream = msg.get("ontology")
            if stream.__class__ is not str or stream not in self._streams:
                return
        event = msg.get("payload")
        if not isinstance(event, dict):
            raise NodeError(f"msg.payload is {type(event).__name__}: an event of {stream!r} is an object")
        t = round(self.now() * 1000) if self._arrival else self._event_time(event)
        query = self.plan
        try:
            if isinstance(query, WindowQuery):
                rows = query.take(event, t)
                if rows is None:
                    self.late += 1
                    self._status()
                    return
                self._send(rows)
                self._warn_bounds()
                if self._arrival and query.batch and query.window.kind == "timeBatch":
                    self._arm()
            elif self._arrival:
                self._send(query.take(stream, event, t))
                self._warn_bounds()
            else:
                self._hold(stream, event, t)
        except QueryError as exc:
            raise NodeError(str(exc)) from None

    def _event_time(self, event: dict[str, Any]) -> float:
        raw: Any = event
        for name in self._time_path:
            raw = raw.get(name) if isinstance(raw, dict) else None
        if (
            isinstance(raw, (int, float))
            and not isinstance(raw, bool)
            and raw == raw
            and abs(raw) != float("inf")
        ):
            return float(raw)
        if isinstance(raw, str):
            try:
                when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
            except ValueError:
                pass
            else:
                return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000
        raise NodeError(
            f"msg.payload.{self.config.eventTime} is {raw!r}: the event time must be epoch milliseconds or an "
            "ISO 8601 date"
        )

    def _send(self, rows: list[Row]) -> None:
        stream = self.plan.output
        for row in rows:
            self.send(new_message(topic=stream, payload=row))

    # ----- patterns with event time: a reorder buffer --------------------------------------------------------
    def _hold(self, stream: str, event: Any, t: float) -> None:
        if t < self._released:
            self.late += 1
            self._warn_once(
                "late", f"an event {self._released - t:.0f} ms older than one already matched: dropped"
            )
            self._status()
            return
        heapq.heappush(self._buffer, (t, next(self._seq), stream, event))
        self._newest = max(self._newest, t)
        self._last_arrival = self.now()
        self._release(self._newest - self._lateness * 1000)
        if self._buffer and self._timer is None:
            self._timer = self.call_later(self._lateness, self._flush)

    def _release(self, upto: float) -> None:
        query = self.plan
        assert isinstance(query, PatternQuery)
        while self._buffer and self._buffer[0][0] <= upto:
            t, _, stream, event = heapq.heappop(self._buffer)
            self._released = t
            self._send(query.take(stream, event, t))
        self._warn_bounds()

    def _flush(self) -> None:
        self._timer = None
        if not self._buffer:
            return
        quiet = self.now() - self._last_arrival
        if quiet >= self._lateness - 1e-6:  # the clock's float arithmetic may wake us a hair early
            self._release(float("inf"))
        else:
            self._timer = self.call_later(self._lateness - quiet, self._flush)

    # ----- arrival-time batches close on the clock ------------------------------------------------------------
    def _arm(self) -> None:
        query = self.plan
        assert isinstance(query, WindowQuery)
        due = query.base.next_due()
        if due is None or (
            self._timer is not None and self._timer_due is not None and self._timer_due <= due
        ):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self.call_later(max((due - self.now() * 1000) / 1000, 0.0), self._tick)

    def _tick(self) -> None:
        query = self.plan
        assert isinstance(query, WindowQuery)
        self._timer = self._timer_due = None
        now = round(self.now() * 1000)
        self._send(query.close_due(now))
        due = query.base.next_due()
        if due is not None and due <= now:
            self._timer_due = due
            self._timer = self.call_later(0.001, self._tick)
        else:
            self._arm()

    # ----- bounds and status ------------------------------------------------------------------------------------
    def _warn_bounds(self) -> None:
        query = self.plan
        if isinstance(query, WindowQuery):
            for store in query.stores:
                if store.warnings:
                    warnings, store.warnings = store.warnings, []
                    for text in warnings if store is query.base else ():
                        self._warn_once(text, text)
        elif query.dropped:
            self._warn_once(
                "pending",
                f"more than maxPending ({query.max_pending}) partial matches: the oldest are dropped "
                "(counted in droppedPending)",
            )

    def _warn_once(self, kind: str, text: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self.warn(text)
            self._status()

    def _status(self) -> None:
        counters = self.counters
        dropped = sum(counters.values())
        self.status(
            "yellow" if dropped else "green", "dot", ", ".join(f"{v} {k}" for k, v in counters.items())
        )

    @property
    def counters(self) -> dict[str, int]:
        """Late events dropped; groups, window events and partial matches dropped over the bounds."""
        query = self.plan
        if isinstance(query, WindowQuery):
            base = query.stores[0] if query.stores else None
            return {
                "late": self.late,
                "evictedKeys": base.evicted_keys if base else 0,
                "evictedEvents": base.evicted_events if base else 0,
            }
        return {"late": self.late, "droppedPending": query.dropped}

    async def close(self, removed: bool) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _at_least_one(name: str, value: int | None) -> int:
    if value is None or value < 1:
        raise NodeError(f"{name}: {value!r} must be at least 1")
    return int(value)
