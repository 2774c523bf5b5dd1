"""A brute-force evaluator of keyed windows, written from the window node's stated semantics, to check it against.

It keeps every accepted event and recomputes each window from scratch; nothing is incremental. Times in ms.

- An event is late when it is more than `lateness` older than the newest accepted event of its key.
- tumbling time: window k = [k*size, (k+1)*size), closes when the key's newest time >= end + lateness.
- tumbling count: consecutive runs of `size` accepted events of a key.
- sliding time: for each event at t, the key's accepted events so far with times in (t - size, t].
- sliding count: the key's last `size` accepted events.
- session: the key's accepted events sorted by time, split where two neighbours are `gap` or more apart; a
  session closes when the key's newest time >= its last time + gap + lateness.
- arrival time: the same, with the clock (every key's) in place of a key's newest time, closing also between
  events and at the end.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

Out = tuple[Any, Any, float, float, int, bool]
"""(key, value, start, end, count, closed)."""


@dataclass
class Step:
    """What one event brought: windows closed (sorted), then the event's own output; `late` when dropped."""

    closed: list[Out] = field(default_factory=list)
    event: Out | None = None
    late: bool = False


def aggregate(name: str, events: list[tuple[int, float, Any]], p: float) -> Any:
    """`events` are (arrival index, time, value)."""
    values = [v for _, _, v in events]
    if name == "count":
        return len(values)
    if name == "sum":
        return sum(values)
    if name == "avg":
        return statistics.fmean(values)
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "stddev":
        return statistics.pstdev(values)
    if name == "percentile":
        xs = sorted(values)
        position = p / 100 * (len(xs) - 1)
        below = int(position)
        if below == len(xs) - 1:
            return xs[below]
        return xs[below] * (1 - (position - below)) + xs[below + 1] * (position - below)
    if name == "first":
        return min(events, key=lambda e: (e[1], e[0]))[2]
    if name == "last":
        return max(events, key=lambda e: (e[1], e[0]))[2]
    if name == "distinct":
        return len(set(values))
    raise ValueError(name)


def sort_key(out: Out) -> tuple:
    return (out[3], out[2], str(out[0]))


class Reference:
    def __init__(
        self,
        window: str,
        measure: str,
        size: float,
        aggregate: str,
        gap: float = 0,
        percentile: float = 50,
        emit: str = "event",
        lateness: float = 0,
        arrival: bool = False,
    ) -> None:
        self.window, self.measure, self.size, self.agg = window, measure, size, aggregate
        self.gap, self.p, self.emit, self.lateness, self.arrival = gap, percentile, emit, lateness, arrival
        self.accepted: list[tuple[int, Any, float, Any]] = []  # (arrival index, key, time, value)
        self.newest: dict[Any, float] = {}
        self.emitted: set[tuple] = set()
        self.clock = -math.inf

    # ----- windows, from scratch ---------------------------------------------------------------------------
    def _events(self, key: Any) -> list[tuple[int, float, Any]]:
        return [(i, t, v) for i, k, t, v in self.accepted if k == key]

    def _closable(self, key: Any) -> list[tuple[tuple, list[tuple[int, float, Any]], float, float]]:
        """(identity, events, start, end, due) of the key's time windows that can close."""
        events = self._events(key)
        found = []
        if self.window == "tumbling" and self.measure == "time":
            for k in sorted({int(t // self.size) for _, t, _ in events}):
                inside = [e for e in events if int(e[1] // self.size) == k]
                end = (k + 1) * self.size
                found.append((("t", key, k), inside, k * self.size, end, end + self.lateness))
        elif self.window == "session":
            ordered = sorted(events, key=lambda e: (e[1], e[0]))
            runs: list[list] = []
            for e in ordered:
                if runs and e[1] - runs[-1][-1][1] < self.gap:
                    runs[-1].append(e)
                else:
                    runs.append([e])
            for run in runs:
                lo, hi = run[0][1], run[-1][1]
                found.append((("s", key, lo), run, lo, hi + self.gap, hi + self.gap + self.lateness))
        return found

    def _close(self, keys: list[Any], now_of: Any) -> list[Out]:
        out = []
        for key in keys:
            for ident, events, start, end, due in self._closable(key):
                if ident not in self.emitted and due <= now_of(key):
                    self.emitted.add(ident)
                    if self.emit == "close":
                        out.append((key, aggregate(self.agg, events, self.p), start, end, len(events), True))
        return sorted(out, key=sort_key)

    def _keys(self) -> list[Any]:
        return list(dict.fromkeys(k for _, k, _, _ in self.accepted))

    # ----- events in ---------------------------------------------------------------------------------------
    def step(self, index: int, key: Any, t: float, value: Any) -> Step:
        step = Step()
        if self.arrival:
            self.clock = t
            step.closed = self._close(self._keys(), lambda _k: t)
        elif key in self.newest and t < self.newest[key] - self.lateness:
            step.late = True
            return step
        self.newest[key] = max(self.newest.get(key, t), t)
        if not self.arrival:
            step.closed = self._close([key], lambda k: self.newest[k])
        self.accepted.append((index, key, t, value))
        events = self._events(key)
        mine = (index, t, value)
        if self.window == "tumbling" and self.measure == "count":
            run = events[(len(events) - 1) // int(self.size) * int(self.size) :]
            full = len(run) == self.size
            if self.emit == "event" or full:
                out = (key, aggregate(self.agg, run, self.p), min(e[1] for e in run), max(e[1] for e in run))
                item = (*out, len(run), full)
                if self.emit == "event":
                    step.event = item
                else:
                    step.closed.append(item)
            return step
        if self.window == "sliding":
            if self.measure == "count":
                run = events[-int(self.size) :]
                start, end = min(e[1] for e in run), max(e[1] for e in run)
            else:
                run = [e for e in events if t - self.size < e[1] <= t]
                start, end = t - self.size, t
            step.event = (key, aggregate(self.agg, run, self.p), start, end, len(run), False)
            return step
        if self.emit == "event":
            for ident, inside, start, end, _due in self._closable(key):
                if mine in inside and ident not in self.emitted:
                    step.event = (key, aggregate(self.agg, inside, self.p), start, end, len(inside), False)
        return step

    def finish(self) -> list[Out]:
        """Arrival time: what closes when the clock runs on past every window."""
        return self._close(self._keys(), lambda _k: math.inf)


# ----- the cep query node's windowed queries -------------------------------------------------------------------
QUERY_WINDOWS = {
    # query window -> (window, measure, emit) of the reference
    "length": ("sliding", "count", "event"),
    "time": ("sliding", "time", "event"),
    "lengthBatch": ("tumbling", "count", "close"),
    "timeBatch": ("tumbling", "time", "close"),
}


class QueryReference:
    """A windowed cep query from scratch: `where` filters the events, `group` keys them, one `Reference` per
    aggregate (and one for the window's events: its count, or its latest event for batches) computes the
    windows, `select(event, aggregate values)` builds a row and `having(row)` keeps it. Rows of sliding windows
    take the current event's attributes, rows of batches the latest event's of the batch."""

    def __init__(self, kind, size, aggregates, select, group, where, having, lateness=0, arrival=False):
        window, measure, emit = QUERY_WINDOWS[kind]
        self.batch = emit == "close"
        base = "last" if self.batch else "count"
        self.refs = [
            Reference(window, measure, size, name, emit=emit, lateness=lateness, arrival=arrival)
            for name in [base, *(name for name, _ in aggregates)]
        ]
        self.args = [arg for _, arg in aggregates]
        self.arrival = arrival
        self.select, self.group, self.where, self.having = select, group, where, having
        self.index = 0

    def step(self, event: dict, t: float) -> list[dict] | None:
        """The rows one event sends; None when it is late."""
        self.index += 1
        if not self.where(event):
            if not self.arrival:
                return []
            # the clock moves on all the same: batches whose time is up close
            return self._rows([ref._close(ref._keys(), lambda _k: t) for ref in self.refs], None)
        key = self.group(event)
        values = [event if self.batch else 1, *(arg(event) for arg in self.args)]
        steps = [ref.step(self.index, key, t, v) for ref, v in zip(self.refs, values, strict=True)]
        if steps[0].late:
            return None
        outs = [[*s.closed, *([s.event] if s.event else [])] for s in steps]
        return self._rows(outs, event)

    def finish(self) -> list[dict]:
        return self._rows([ref.finish() for ref in self.refs], None)

    def _rows(self, outs: list[list[Out]], event: Any) -> list[dict]:
        rows = []
        for i, base in enumerate(outs[0]):
            row = self.select(base[1] if self.batch else event, [out[i][1] for out in outs[1:]])
            if self.having(row):
                rows.append(row)
        return rows
