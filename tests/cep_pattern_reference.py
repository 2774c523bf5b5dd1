"""Brute-force references for the pattern and absence nodes: no buffers, no timers, no incremental state.

`pattern_matches` sorts the whole stream by (event time, arrival) and, for each event, looks back over every
earlier event of its key to decide whether it completes a match. `absence_reports` walks the clock one second
at a time (the tests use whole seconds) and asks, at each second, which keys have been silent long enough.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Cond = Callable[[dict[str, Any], dict[str, Any] | None], bool]


@dataclass(frozen=True)
class Event:
    key: str
    time: float
    payload: Any


def pattern_matches(
    events: list[Event],
    mode: str,
    within: float,
    first: Cond,
    then: Cond | None = None,
    count: int = 2,
    max_pending: int = 10**9,
) -> list[tuple[str, list[float]]]:
    """Matches as (key, event times), in the order they complete."""
    order = sorted(range(len(events)), key=lambda i: (events[i].time, i))
    seq = [events[i] for i in order]
    msgs = [{"payload": e.payload, "topic": e.key} for e in seq]
    out: list[tuple[str, list[float]]] = []
    start: dict[str, int] = {}  # per key: index of the event that completed its last match
    completed: set[int] = set()

    def prev(i: int) -> dict[str, Any] | None:
        earlier = [j for j in range(i) if seq[j].key == seq[i].key]
        return msgs[earlier[-1]] if earlier else None

    for i, e in enumerate(seq):
        since = start.get(e.key, -1)
        if mode == "sequence":
            assert then is not None
            held = [
                j
                for j in range(since + 1, i)
                if seq[j].key == e.key and j not in completed and first(msgs[j], prev(j))
            ][-max_pending:]
            live = [j for j in held if e.time - seq[j].time <= within]
            if live and then(msgs[i], prev(i)):
                out.append((e.key, [seq[live[0]].time, e.time]))
                start[e.key] = i
                completed.add(i)
        else:
            if not first(msgs[i], prev(i)):
                continue
            held = [j for j in range(since + 1, i + 1) if seq[j].key == e.key and first(msgs[j], prev(j))]
            live = [j for j in held[-max_pending:] if e.time - seq[j].time <= within]
            if len(live) >= count:
                out.append((e.key, [seq[j].time for j in live]))
                start[e.key] = i
    return out


@dataclass(frozen=True)
class Arrival:
    key: str
    clock: int
    time: int  # the event time the message carries (equal to clock when it has none)


def absence_reports(
    arrivals: list[Arrival], start: int, end: int, timeout: int, given: list[str], learn: bool
) -> tuple[list[tuple[str, int]], list[tuple[str, int, int]]]:
    """(alarms as (key, since), recoveries as (key, lastSeen, silentFor)), each sorted."""
    last: dict[str, int] = {k: start for k in given}
    silent: dict[str, int | None] = {k: None for k in given}  # the last time a silent key had spoken
    alarms: list[tuple[str, int]] = []
    recoveries: list[tuple[str, int, int]] = []
    for t in range(start, end + 1):
        for key in last:
            if silent[key] is None and t >= last[key] + timeout:
                silent[key] = last[key]
                alarms.append((key, last[key] + timeout))
        for a in (a for a in arrivals if a.clock == t):
            if a.key not in last:
                if learn:
                    last[a.key], silent[a.key] = a.time, None
                continue
            if a.time <= last[a.key]:
                continue
            last[a.key] = a.time
            went = silent[a.key]
            if went is not None and t < last[a.key] + timeout:
                silent[a.key] = None
                recoveries.append((a.key, a.time, t - went))
    return sorted(alarms), sorted(recoveries)


def query_pattern_matches(
    events: list[tuple[str, dict[str, Any], float]],
    steps: list[tuple[str, Callable[[list[dict[str, Any]], dict[str, Any]], bool]]],
    within: float,
    every: bool,
) -> list[list[dict[str, Any]]]:
    """The cep query node's patterns from scratch: `events` are (stream, payload, time), `steps` (stream,
    condition(payloads of the earlier steps, payload)). The stream is sorted by (time, arrival); a match starts
    at an event fulfilling the first step and takes, for each next step, the first later event fulfilling it,
    all within `within` of its start. With `every` each such start counts; without, the next start is looked
    for from where the previous match ended or ran out of time. Matches as their payloads, in the order they
    complete (earlier starts first)."""
    seq = [events[i] for i in sorted(range(len(events)), key=lambda i: (events[i][2], i))]

    def starts(i: int) -> bool:
        stream, cond = steps[0]
        return seq[i][0] == stream and cond([], seq[i][1])

    def complete(i: int) -> tuple[int | None, int | None, list[dict[str, Any]]]:
        """(where it completes or None, where it runs out of time or None, the payloads)."""
        bound = [seq[i][1]]
        for j in range(i + 1, len(seq)):
            if seq[j][2] - seq[i][2] > within:
                return None, j, bound
            stream, cond = steps[len(bound)]
            if seq[j][0] == stream and cond(bound, seq[j][1]):
                bound.append(seq[j][1])
                if len(bound) == len(steps):
                    return j, None, bound
        return None, None, bound

    found: list[tuple[int, int, list[dict[str, Any]]]] = []
    if every:
        for i in range(len(seq)):
            if starts(i):
                done, _, bound = complete(i)
                if done is not None:
                    found.append((done, i, bound))
    else:
        i = 0
        while i < len(seq):
            if not starts(i):
                i += 1
                continue
            done, expired, bound = complete(i)
            if done is not None:
                found.append((done, i, bound))
                i = done
            elif expired is not None:
                i = expired
            else:
                break
    return [bound for _, _, bound in sorted(found, key=lambda f: (f[0], f[1]))]
