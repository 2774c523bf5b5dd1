"""CEP timers on the virtual clock: a timer woken a hair before its deadline (float rounding of `now + delay`)
must not re-arm itself at the same instant forever. The clock here counts firings per instant and fails past a
bound, so a loop is an error instead of a hang. pattern (the lateness flush), absence (per-key deadlines) and
window (arrival-time windows), with hypothesis over clock steps and bounds near window edges."""

from __future__ import annotations

from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.core.clock import VirtualClock
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
LOOP_BOUND = 10_000
"""Timer firings at one instant that count as a loop (a real flow fires a handful)."""


class TimerLoop(AssertionError):
    pass


class GuardedClock(VirtualClock):
    """A virtual clock that raises TimerLoop when more than LOOP_BOUND timers fire at one instant."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        super().__init__(start)
        self._instant: float | None = None
        self._at_instant = 0

    def call_later(self, delay, callback):
        def guarded() -> None:
            now = self.now()
            if now != self._instant:
                self._instant, self._at_instant = now, 0
            self._at_instant += 1
            if self._at_instant > LOOP_BOUND:
                raise TimerLoop(f"more than {LOOP_BOUND} timers fired at the instant {now!r}")
            callback()

        return super().call_later(delay, guarded)


def node(kind, **props):
    base = {"id": "n", "type": kind, "z": "t1", "name": "", "wires": [[]], "x": 1, "y": 1}
    base.update(props)
    return base


async def run(flows, steps, msg_of):
    """Inject a message after each clock step (seconds), then let every timer run out."""
    with mock.patch("sofiaflow.runtime.testing.VirtualClock", GuardedClock):
        async with FlowTester([TAB, *flows], virtual_time=True) as t:
            assert isinstance(t.clock, GuardedClock)
            for i, step in enumerate(steps):
                await t.advance(step)
                t.inject("n", msg_of(t, i))
            await t.advance(3600)
            assert t.errors() == []
            return t.outputs("n")


# Clock steps and bounds that put deadlines at awkward binary fractions of a large epoch time
STEPS = st.lists(
    st.one_of(
        st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.7, 1e-7, 1e-6, 0.1 + 0.2]),
        st.floats(0, 5, allow_nan=False),
    ),
    min_size=1,
    max_size=8,
)
BOUNDS = st.one_of(
    st.sampled_from([0.1, 0.2, 0.3, 0.7, 1.1, 0.1 + 0.2, 1e-6]), st.floats(1e-6, 5, allow_nan=False)
)


async def test_pattern_flush_woken_a_hair_early_does_not_loop():
    # a message at 1_700_000_000: now + 0.1 rounds below the exact deadline, so the flush finds the quiet time
    # a hair short of the lateness and re-arms with a delay smaller than the clock's resolution
    flows = [node("pattern", mode="count", count=2, first=[], within=100, timeProperty="time", lateness=0.1)]
    out = await run(flows, [0.0], lambda t, i: {"topic": "a", "time": t.clock.now() * 1000})
    assert out[0] == []  # one event: no match, but it was released (the flush ran and stopped)


@settings(max_examples=200, deadline=None)
@given(steps=STEPS, lateness=BOUNDS, within=st.sampled_from([1, 2, 5]))
async def test_pattern_flush_never_loops(steps, lateness, within):
    flows = [
        node(
            "pattern", mode="count", count=2, first=[], within=within, timeProperty="time", lateness=lateness
        )
    ]
    out = await run(flows, steps, lambda t, i: {"topic": "a", "time": round(t.clock.now() * 1000)})
    assert len(out[0]) <= len(steps)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS, timeout=BOUNDS)
async def test_absence_deadlines_never_loop(steps, timeout):
    flows = [node("absence", timeout=timeout, wires=[[], []])]
    out = await run(flows, steps, lambda t, i: {"topic": "a"})
    assert len(out[0]) <= len(steps)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS, size=BOUNDS, tumbling=st.booleans())
async def test_window_arrival_timers_never_loop(steps, size, tumbling):
    props = {
        "window": "tumbling" if tumbling else "sliding",
        "size": size,
        "units": "seconds",
        "aggregate": "count",
        "emit": "close" if tumbling else "event",
    }
    out = await run([node("window", **props)], steps, lambda t, i: {"topic": "a", "payload": i})
    assert sum(len(port) for port in out) <= 2 * len(steps) + 2
