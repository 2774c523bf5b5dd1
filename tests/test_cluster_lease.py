"""The leader lease and firing slots against a real Redis: one leader at a time, a larger fencing token for each
new lease, a leader that stops renewing loses the lease on its own clock; a slot is claimed by one worker only, a
late tick is not fired, and slot numbers of one worker's ticks follow each other (hypothesis)."""

from __future__ import annotations

import asyncio
import time

from cluster_harness import skip_unless_cluster
from hypothesis import given
from hypothesis import strategies as st
from redis_server import redis_per_module  # noqa: F401 - the redis_url fixture

from sofiaflow.runtime.cluster.leader import Leadership, current_leader
from sofiaflow.runtime.cluster.redis_link import open_redis
from sofiaflow.runtime.cluster.slots import FiringSlots, interval_slot, slot_of


def ticks_to_slots(dues: list[float], period: float) -> list[int]:
    last = None
    out = []
    for due in dues:
        last = interval_slot(due, period, last)
        out.append(last)
    return out


@given(
    period=st.floats(min_value=0.05, max_value=86400, allow_nan=False),
    start=st.floats(min_value=1e9, max_value=4e9, allow_nan=False),
    ticks=st.integers(min_value=2, max_value=50),
)
def test_one_workers_ticks_take_consecutive_slots(period, start, ticks):
    dues = [start]
    for _ in range(ticks - 1):
        dues.append(dues[-1] + period)  # as inject arms its next tick: the last due plus the period
    numbers = ticks_to_slots(dues, period)
    assert numbers == list(range(numbers[0], numbers[0] + ticks))
    assert abs(numbers[0] - start / period) <= 0.5 + 1e-6


@given(
    period=st.floats(min_value=0.5, max_value=3600, allow_nan=False),
    base=st.integers(min_value=10**9 // 3600, max_value=4 * 10**9 // 3600),
    phases=st.lists(
        st.sampled_from([0.0, 0.25, 0.5, 0.75, 0.999]) | st.floats(0, 0.999), min_size=1, max_size=5
    ),
)
def test_workers_out_of_phase_fire_each_slot_of_a_window_once(period, base, phases):
    """Whatever each worker's phase, every slot of a window is claimed by exactly one worker: the first tick
    that maps to it (the others find it claimed), so the cluster fires once per period."""
    claims: dict[int, list[tuple[float, int]]] = {}
    for worker, phase in enumerate(phases):
        dues = [(base + k + phase) * period for k in range(30)]
        for due, slot in zip(dues, ticks_to_slots(dues, period), strict=True):
            claims.setdefault(slot, []).append((due, worker))
    first = round(base + phases[0])
    window = range(first + 3, first + 25)
    assert all(slot in claims for slot in window)
    ticks_per_period = [len(claims[s]) for s in window]
    assert all(
        n == len(phases) for n in ticks_per_period
    )  # each worker's ticks map to each slot exactly once


def test_the_once_and_cron_slots():
    assert slot_of(0.0, None, 12) == "once:12"
    assert slot_of(1_800_000_000.2, None, 1) == "c1800000000"


@skip_unless_cluster()
async def test_a_slot_fires_on_one_worker_and_a_late_tick_not_at_all(redis_url):
    redis = open_redis(redis_url)
    try:
        fired: list[str] = []
        workers = [FiringSlots(redis, f"w{i}", lambda: 3) for i in range(3)]
        due = time.time()
        for slots in workers:
            slots.fire("node-a", due, 1.0, lambda s=slots: fired.append(s.worker))
        for slots in workers:
            slots.fire("node-a", 0.0, None, lambda s=slots: fired.append(f"once-{s.worker}"))
        await asyncio.gather(*(task for slots in workers for task in list(slots._tasks)))
        assert len([f for f in fired if not f.startswith("once")]) == 1
        assert len([f for f in fired if f.startswith("once")]) == 1
        assert sum(s.skipped for s in workers) == 4
        late = FiringSlots(redis, "late", lambda: 3)
        late.fire("node-b", time.time() - 3600, 1.0, lambda: fired.append("late"))
        assert late.skipped == 1 and not late._tasks
        assert await redis.exists("fire:node-b:" + str(round(time.time() - 3600))) == 0
    finally:
        await redis.aclose()


@skip_unless_cluster()
async def test_one_leader_and_a_new_token_when_it_stops_renewing(redis_url):
    clients = [open_redis(redis_url) for _ in range(2)]
    events: list[str] = []

    def member(i: int) -> Leadership:
        async def elected() -> None:
            events.append(f"elected w{i}")

        async def deposed() -> None:
            events.append(f"deposed w{i}")

        return Leadership(clients[i], f"w{i}", lease=0.6, on_elected=elected, on_deposed=deposed)

    a, b = member(0), member(1)
    try:
        await a.start()
        await b.start()
        assert a.leading and not b.leading
        first = a.token
        assert await current_leader(clients[0]) == ("w0", first)
        # a stops renewing (as if paused): its loop is gone, its lease expires, b takes it with a larger token
        a._task.cancel()
        deadline = time.monotonic() + 5
        while not b.leading and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert b.leading and b.token > first
        assert not a.leading  # its own clock says its lease is over
        assert not await a.holds(first) and await b.holds(b.token)
        await a.step()  # back: it notices it lost the lease, and does not take it back
        assert a.token is None and events[-1] == "deposed w0"
        assert events[:2] == ["elected w0", "elected w1"]
    finally:
        await b.stop()
        await a.stop()
        for client in clients:
            await client.aclose()
