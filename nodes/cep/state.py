"""Keyed window state, apart from the runtime: events in, window aggregates out.

Times are milliseconds. Each key has its own watermark, the newest event time it has seen; an event more than
`lateness` older than its key's watermark is late (dropped and counted). A tumbling or session window closes
when its key's watermark reaches its end plus `lateness` (event time), or when the clock does (arrival time,
`close_due`). Windows:

- tumbling time: [k*size, (k+1)*size); tumbling count: every `size` events of the key.
- sliding time: for each event at t, the events of its key with times in (t - size, t] that arrived so far;
  sliding count: the key's last `size` events. Sliding windows emit on every event.
- session: events of a key whose times are less than `gap` apart; it ends `gap` after its last event.

Bounds: at most `max_keys` keys (the least recently active one is dropped) and `max_events` events per window
(the oldest is dropped); both are counted and reported once per kind in `warnings`.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from sofiaflow.nodes.cep.aggregates import RUNNING, compute


@dataclass(frozen=True)
class Spec:
    window: str  # tumbling | sliding | session
    measure: str  # time | count
    size: float  # ms (time) or events (count)
    aggregate: str
    gap: float = 0.0  # ms (session)
    percentile: float = 50.0
    emit: str = "event"  # event | close
    lateness: float = 0.0  # ms
    max_keys: int = 10_000
    max_events: int = 100_000


class Emission(NamedTuple):
    key: Any
    value: Any
    start: float
    end: float
    count: int
    closed: bool


class _Bucket:
    """The events of one tumbling, session or count window, in arrival order."""

    __slots__ = ("closed", "due", "end", "index", "start", "times", "total", "values")

    def __init__(self, start: float, end: float, index: int = 0) -> None:
        self.index = index
        self.start = start
        self.end = end
        self.due = 0.0
        self.closed = False
        self.times: deque[float] = deque()
        self.values: deque[Any] = deque()
        self.total: Any = 0


class _Slide:
    """A key's events for sliding time windows, sorted by time (equal times in arrival order). `base` is the
    first event a future window may still need, `lo` the first one of the newest window; `total` sums
    values[lo:]."""

    __slots__ = ("base", "lo", "times", "total", "values")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.values: list[Any] = []
        self.base = 0
        self.lo = 0
        self.total: Any = 0


class _Key:
    __slots__ = ("state", "watermark")

    def __init__(self, watermark: float, state: Any) -> None:
        self.watermark = watermark
        self.state = state


class WindowStore:
    """The windows of every key; see the module docstring. `arrival` means event times come from a clock that
    never goes back (then windows close by `close_due`, and nothing is late)."""

    def __init__(self, spec: Spec, arrival: bool = False) -> None:
        self.spec = spec
        self.arrival = arrival
        self.keys: dict[Any, _Key] = {}
        self.late = 0
        self.evicted_keys = 0
        self.evicted_events = 0
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._heap: list[tuple[float, int, Any, _Bucket]] = []
        self._seq = 0
        self._running = spec.aggregate in RUNNING
        # the spec's fields the per-event paths read, looked up once
        self._size = spec.size
        self._lateness = spec.lateness
        self._max_events = spec.max_events
        self._count = spec.aggregate == "count"
        self._sum = spec.aggregate == "sum"
        kinds = {
            ("tumbling", "time"): self._tumbling_time,
            ("tumbling", "count"): self._tumbling_count,
            ("sliding", "time"): self._sliding_time,
            ("sliding", "count"): self._sliding_count,
            ("session", "time"): self._session,
        }
        self._add = kinds[(spec.window, spec.measure)]

    # ----- events in -------------------------------------------------------------------------------------
    def slide(self, key: Any, t: float, value: Any) -> tuple | None:
        """Sliding time windows only: `add` for one event, answering its one emission as a plain tuple of the
        `Emission` fields (None when late)."""
        keys = self.keys
        ks = keys.pop(key, None)
        if ks is None:
            if len(keys) >= self.spec.max_keys:
                self._evict_key()
            ks = _Key(t, None)
        elif t > ks.watermark:
            ks.watermark = t
        elif t < ks.watermark - self._lateness:
            keys[key] = ks
            self.late += 1
            return None
        keys[key] = ks  # most recently active last
        return self._slide(key, ks, t, value)

    def add(self, key: Any, t: float, value: Any) -> list[Emission] | None:
        """Take one event; what it emits (closed windows first), or None when it is late (and dropped)."""
        out: list[Emission] = []
        keys = self.keys
        ks = keys.pop(key, None)
        if ks is None:
            if len(keys) >= self.spec.max_keys:
                self._evict_key()
            ks = _Key(t, None)
        elif t > ks.watermark:
            ks.watermark = t
        elif t < ks.watermark - self.spec.lateness:
            keys[key] = ks
            self.late += 1
            return None
        keys[key] = ks  # most recently active last
        if self.arrival:
            if self._heap and self._heap[0][0] <= t:
                out.extend(self.close_due(t))
                ks = keys.get(key) or ks
                keys[key] = ks
        elif ks.state is not None and self.spec.window != "sliding" and self.spec.measure == "time":
            self._close_key(key, ks, out)
        self._add(key, ks, t, value, out)
        return out

    def close_due(self, now: float) -> list[Emission]:
        """Arrival time: close every window whose end (plus lateness) is at or before `now`, earliest first."""
        out: list[Emission] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            due, _, key, bucket = heapq.heappop(heap)
            if bucket.closed or bucket.due != due:
                continue
            ks = self.keys.get(key)
            if ks is None:
                continue
            self._close(key, ks, bucket, out)
            if not ks.state:
                del self.keys[key]
        return out

    def next_due(self) -> float | None:
        """Arrival time: when the next window may close (None: none open)."""
        heap = self._heap
        while heap and (heap[0][3].closed or heap[0][3].due != heap[0][0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # ----- closing -----------------------------------------------------------------------------------------
    def _close_key(self, key: Any, ks: _Key, out: list[Emission]) -> None:
        mark = ks.watermark
        state = ks.state
        buckets = state.values() if isinstance(state, dict) else state
        due = sorted((b for b in buckets if b.due <= mark), key=lambda b: b.start)
        for bucket in due:
            self._close(key, ks, bucket, out)

    def _close(self, key: Any, ks: _Key, bucket: _Bucket, out: list[Emission]) -> None:
        bucket.closed = True
        state = ks.state
        if isinstance(state, dict):
            del state[bucket.index]
        else:
            state.remove(bucket)
        if self.spec.emit == "close":
            out.append(self._emission(key, bucket, True))

    def _schedule(self, key: Any, bucket: _Bucket) -> None:
        if self.arrival:
            self._seq += 1
            heapq.heappush(self._heap, (bucket.due, self._seq, key, bucket))

    # ----- window kinds ------------------------------------------------------------------------------------
    def _tumbling_time(self, key: Any, ks: _Key, t: float, value: Any, out: list[Emission]) -> None:
        size = self.spec.size
        index = int(t // size)
        state = ks.state
        if state is None:
            state = ks.state = {}
        bucket = state.get(index)
        if bucket is None:
            bucket = state[index] = _Bucket(index * size, (index + 1) * size, index)
            bucket.due = bucket.end + self.spec.lateness
            self._schedule(key, bucket)
        self._put(bucket, t, value)
        if self.spec.emit == "event":
            out.append(self._emission(key, bucket, False))

    def _tumbling_count(self, key: Any, ks: _Key, t: float, value: Any, out: list[Emission]) -> None:
        bucket = ks.state
        if bucket is None:
            bucket = ks.state = _Bucket(t, t)
        self._put(bucket, t, value)
        full = len(bucket.values) >= self.spec.size
        if full or self.spec.emit == "event":
            out.append(self._emission(key, bucket, full))
        if full:
            ks.state = None

    def _sliding_count(self, key: Any, ks: _Key, t: float, value: Any, out: list[Emission]) -> None:
        bucket = ks.state
        if bucket is None:
            bucket = ks.state = _Bucket(t, t)
        bucket.times.append(t)
        bucket.values.append(value)
        if self._running:
            bucket.total += value if self.spec.aggregate != "count" else 0
        if len(bucket.values) > self.spec.size:
            bucket.times.popleft()
            gone = bucket.values.popleft()
            if self._running and self.spec.aggregate != "count":
                bucket.total -= gone
        out.append(self._emission(key, bucket, False))

    def _session(self, key: Any, ks: _Key, t: float, value: Any, out: list[Emission]) -> None:
        gap = self.spec.gap
        sessions = ks.state
        if sessions is None:
            sessions = ks.state = []
        touching = [s for s in sessions if s.start - gap < t < s.end + gap]
        if not touching:
            bucket = _Bucket(t, t)
            sessions.append(bucket)
            sessions.sort(key=lambda s: s.start)
        else:
            bucket = touching[0]
            for other in touching[1:]:
                bucket.times.extend(other.times)
                bucket.values.extend(other.values)
                bucket.total += other.total
                bucket.end = max(bucket.end, other.end)
                other.closed = True
                sessions.remove(other)
            bucket.start = min(bucket.start, t)
            bucket.end = max(bucket.end, t)
        self._put(bucket, t, value)
        bucket.due = bucket.end + gap + self.spec.lateness
        self._schedule(key, bucket)
        if self.spec.emit == "event":
            out.append(self._emission(key, bucket, False))

    def _sliding_time(self, key: Any, ks: _Key, t: float, value: Any, out: list[Emission]) -> None:
        out.append(Emission(*self._slide(key, ks, t, value)))

    def _slide(self, key: Any, ks: _Key, t: float, value: Any) -> tuple:
        slide = ks.state
        if slide is None:
            slide = ks.state = _Slide()
        times, values = slide.times, slide.values
        count = self._count
        size = self._size
        mark = ks.watermark
        cut = mark - size  # the newest window: (watermark - size, watermark]
        lo = slide.lo
        total = slide.total
        if not times or t >= times[-1]:
            times.append(t)
            values.append(value)
            if not count:
                total += value
        else:
            at = bisect_right(times, t, slide.base)
            times.insert(at, t)
            values.insert(at, value)
            if t <= cut:
                lo += 1
            elif not count:
                total += value
        while times[lo] <= cut:
            if not count:
                total -= values[lo]
            lo += 1
        if len(times) - lo > self._max_events:
            if not count:
                total -= values[lo]
            del times[lo], values[lo]
            self._count_dropped_event()
        slide.total = total
        lateness = self._lateness
        if lateness:
            keep = cut - lateness
            base = slide.base
            while base < lo and times[base] <= keep:
                base += 1
        else:  # nothing older than the newest window can come: the first event kept is its first
            base = lo
        if base > 256 and base * 2 > len(times):
            del times[:base], values[:base]
            lo -= base
            base = 0
        slide.lo = lo
        slide.base = base
        if t == mark:
            n = len(times) - lo
            if self._running:
                value = n if count else (total if self._sum else total / n)
            else:
                spec = self.spec
                value = compute(spec.aggregate, values[lo:], times[lo:], spec.percentile)
            return (key, value, t - size, t, n, False)
        spec = self.spec
        i = bisect_right(times, t - size, base)
        j = bisect_right(times, t, i)
        value = compute(spec.aggregate, values[i:j], times[i:j], spec.percentile)
        return (key, value, t - size, t, j - i, False)

    # ----- shared -----------------------------------------------------------------------------------------
    def _put(self, bucket: _Bucket, t: float, value: Any) -> None:
        bucket.times.append(t)
        bucket.values.append(value)
        if self._running and self.spec.aggregate != "count":
            bucket.total += value
        while len(bucket.values) > self.spec.max_events:
            bucket.times.popleft()
            gone = bucket.values.popleft()
            if self._running and self.spec.aggregate != "count":
                bucket.total -= gone
            self._count_dropped_event()

    def _emission(self, key: Any, bucket: _Bucket, closed: bool) -> Emission:
        spec = self.spec
        values = bucket.values
        n = len(values)
        if spec.aggregate == "count":
            value: Any = n
        elif spec.aggregate == "sum":
            value = bucket.total
        elif spec.aggregate == "avg":
            value = bucket.total / n
        else:
            value = compute(spec.aggregate, values, bucket.times, spec.percentile)
        if spec.measure == "count":
            start, end = min(bucket.times), max(bucket.times)
        elif spec.window == "session":
            start, end = bucket.start, bucket.end + spec.gap
        else:
            start, end = bucket.start, bucket.end
        return Emission(key, value, start, end, n, closed)

    def _evict_key(self) -> None:
        oldest = next(iter(self.keys))
        ks = self.keys.pop(oldest)
        state = ks.state
        if isinstance(state, dict):
            state = list(state.values())
        for bucket in state if isinstance(state, list) else ():
            bucket.closed = True
        self.evicted_keys += 1
        self._warn(
            "keys",
            f"more than maxKeys ({self.spec.max_keys}) keys: the least recently active key's windows are "
            "dropped (counted in evictedKeys)",
        )

    def _count_dropped_event(self) -> None:
        self.evicted_events += 1
        self._warn(
            "events",
            f"a window holds more than maxEvents ({self.spec.max_events}) events: its oldest event is dropped "
            "(counted in evictedEvents)",
        )

    def _warn(self, kind: str, text: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self.warnings.append(text)
