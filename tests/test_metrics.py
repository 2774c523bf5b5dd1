"""Engine counters, sampled handling times, queue depths and per-flow throughput, on a real engine."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.core.metrics import BUCKETS, BUSY_QUEUE, RECENT, NodeStats, ThroughputHistory, snapshot
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Sensors"}


def chain(*types: str) -> list[dict]:
    """A tab with nodes n0 -> n1 -> ... of the given types."""
    nodes = [dict(TAB)]
    for i, node_type in enumerate(types):
        wires = [[f"n{i + 1}"]] if i + 1 < len(types) else [[]]
        nodes.append({"id": f"n{i}", "type": node_type, "z": "t1", "name": f"step {i}", "wires": wires})
    return nodes


def row(snap, node_id):
    return next(r for r in snap.nodes if r.id == node_id)


async def test_counters_and_times_when_messages_come_one_by_one(registry):
    sent = 20
    async with FlowTester(chain("test double", "test double"), registry=registry) as t:
        t.engine.stats.calm_share = 1.0  # every calm batch timed in full (by default a random sixteenth)
        for i in range(sent):
            t.inject("n0", {"payload": i})
            await t.idle()  # the engine keeps up: each message is a calm batch
        t.inject("n0", {"payload": "not a number"})  # fails in n0
        await t.idle()
        snap = snapshot(t.engine)
    first, second = row(snap, "n0"), row(snap, "n1")
    assert (first.messages_in, first.messages_out, first.errors) == (sent + 1, sent, 1)
    assert (second.messages_in, second.messages_out, second.errors) == (sent, sent, 0)
    assert first.flow == "t1" and first.type == "test double" and first.name == "step 0"
    assert (first.samples, second.samples) == (sent + 1, sent)
    assert 0 < second.mean_s < 0.05 and second.mean_s <= second.p99_s < 0.05
    assert second.buckets[-1] == ("+Inf", sent)
    assert [n for _, n in second.buckets] == sorted(n for _, n in second.buckets)
    assert math.isclose(second.sample_sum_s, second.mean_s * sent)
    assert snap.flows == {"t1": "Sensors"} and snap.flow_messages() == {"t1": 2 * sent + 1}
    assert snap.errors_total == 1 and snap.pending == 0 and all(r.queue == 0 for r in snap.nodes)


async def test_a_busy_engine_times_only_the_first_message_of_a_batch(registry):
    burst = BUSY_QUEUE + 100
    async with FlowTester(chain("test double", "test double"), registry=registry) as t:
        t.engine.stats.calm_share = 1.0
        for i in range(burst):
            t.inject("n0", {"payload": i})
        await t.idle()  # one batch: n0's first message is timed, the rest run on the fast path
        busy = snapshot(t.engine)
        for i in range(BUSY_QUEUE):
            t.inject("n0", {"payload": i})
        await t.idle()  # a short queue: each of these and what they cause is timed
        calm = snapshot(t.engine)
    assert (row(busy, "n0").messages_in, row(busy, "n1").messages_in) == (burst, burst)
    assert (row(busy, "n0").samples, row(busy, "n1").samples) == (1, 0)
    assert row(busy, "n1").mean_s is None
    assert (row(calm, "n0").samples, row(calm, "n1").samples) == (1 + BUSY_QUEUE, BUSY_QUEUE)


async def test_a_failing_sampled_message_is_timed_too(registry):
    async with FlowTester(chain("test double"), registry=registry) as t:
        t.engine.stats.calm_share = 1.0
        t.inject("n0", {"payload": "text"})
        await t.idle()
        failing = row(snapshot(t.engine), "n0")
    assert (failing.messages_in, failing.errors, failing.samples) == (1, 1, 1) and failing.mean_s > 0


async def test_calm_share_decides_how_many_calm_batches_are_timed(registry):
    flows = chain("test double", "test slow")
    flows[2]["seconds"] = 0.001
    async with FlowTester(flows, registry=registry) as t:
        t.engine.stats.calm_share = 0.0
        for i in range(5):
            t.inject("n0", {"payload": i})
            await t.idle()
        snap = snapshot(t.engine)
    assert row(snap, "n0").messages_in == 5 and row(snap, "n0").samples == 0
    assert row(snap, "n1").samples == 5  # async handlers are always timed


async def test_async_nodes_time_every_message(registry):
    flows = chain("test slow")
    flows[1]["seconds"] = 0.02
    async with FlowTester(flows, registry=registry) as t:
        for i in range(3):
            t.inject("n0", {"payload": i})
        await t.idle()
        slow = row(snapshot(t.engine), "n0")
    assert slow.messages_in == 3 and slow.samples == 3
    assert 0.015 <= slow.mean_s < 0.5 and slow.p99_s >= 0.015


async def loop_turns_until(condition, turns: int = 1000) -> None:
    """Let the event loop run (no time passes on the virtual clock) until `condition()` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition did not come true")


async def test_queue_depth_counts_waiting_messages_per_node(registry):
    flows = chain("test double", "test timed")
    flows[2]["seconds"] = 0.01
    async with FlowTester(flows, registry=registry, virtual_time=True) as t:
        for i in range(30):
            t.inject("n0", {"payload": i})
        queued = snapshot(t.engine)  # nothing ran yet: all 30 wait in the run queue for n0
        assert row(queued, "n0").queue == 30 and row(queued, "n1").queue == 0
        assert queued.run_queue == 30 and queued.pending == 30
        # n0 runs; the timed async node holds its first message until the clock moves
        await loop_turns_until(lambda: row(snapshot(t.engine), "n0").queue == 0 and t.clock.pending == 1)
        t.clock.advance(0.01)
        await loop_turns_until(lambda: t.clock.pending == 1)  # the second one is in hand
        middle = snapshot(t.engine)
        assert row(middle, "n0").queue == 0 and 0 < row(middle, "n1").queue < 30
        for _ in range(29):  # the timed node works through its inbox, one tick each
            t.clock.advance(0.01)
            await loop_turns_until(lambda: t.clock.pending == 1 or t.engine.pending == 0)
        await t.idle()
        assert row(snapshot(t.engine), "n1").queue == 0
        assert t.payloads("n1") == [2 * i for i in range(30)]


async def test_redeploy_restarts_a_nodes_counters_and_stats(registry):
    flows = chain("test double")
    async with FlowTester(flows, registry=registry) as t:
        history = ThroughputHistory(t.engine)
        history.sample(now=100.0)
        for i in range(10):
            t.inject("n0", {"payload": i})
        await t.idle()
        assert history.sample(now=101.0) == {"t1": 10.0}
        old = t.node("n0")
        changed = [dict(n) for n in flows]
        changed[1]["name"] = "renamed"
        await t.deploy(changed, "nodes")
        assert t.node("n0") is not old and t.engine.stats.get(old) is None
        for i in range(4):
            t.inject("n0", {"payload": i})
        await t.idle()
        assert row(snapshot(t.engine), "n0").messages_in == 4
        assert history.sample(now=103.0) == {"t1": 2.0}  # the new node counts from 0, never negative
        series = history.series()["t1"]
        assert [rate for _, rate in series] == [10.0, 2.0]
        assert history.latest() == {"t1": 2.0}


async def test_subflow_contents_count_for_the_tab_of_the_instance(registry):
    flows = [
        dict(TAB),
        {
            "id": "sf",
            "type": "subflow",
            "name": "Twice",
            "in": [{"wires": [{"id": "sd"}]}],
            "out": [{"wires": [{"id": "sd", "port": 0}]}],
        },
        {"id": "sd", "type": "test double", "z": "sf", "wires": [[]]},
        {"id": "inst", "type": "subflow:sf", "z": "t1", "wires": [[]]},
    ]
    async with FlowTester(flows, registry=registry) as t:
        t.inject("inst", {"payload": 1})
        await t.idle()
        snap = snapshot(t.engine)
    inner = [r for r in snap.nodes if r.type == "test double"]
    assert len(inner) == 1 and inner[0].flow == "t1" and inner[0].messages_in == 1


def test_histogram_buckets_are_cumulative_and_bounded():
    stats = NodeStats()
    for seconds in (0.5e-6, 3e-6, 3e-6, 0.2, 50.0):
        stats.record(seconds)
    buckets = dict(stats.cumulative_buckets())
    assert buckets[repr(1e-06)] == 1 and buckets[repr(5e-06)] == 3 and buckets[repr(0.25)] == 4
    assert buckets[repr(BUCKETS[-1])] == 4 and buckets["+Inf"] == 5
    assert stats.count == 5 and math.isclose(stats.sum, 50.2000065)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), min_size=1, max_size=1200),
    st.sampled_from([0.5, 0.9, 0.99, 1.0]),
)
def test_mean_and_quantile_cover_the_most_recent_samples(samples, q):
    stats = NodeStats()
    for s in samples:
        stats.record(s)
    recent = sorted(samples[-RECENT:])
    assert stats.quantile(q) == recent[max(1, math.ceil(q * len(recent))) - 1]
    assert math.isclose(stats.mean(), sum(recent) / len(recent), rel_tol=1e-9, abs_tol=1e-12)
    assert stats.count == len(samples) and stats.cumulative_buckets()[-1] == ("+Inf", len(samples))


def test_no_samples_means_no_numbers():
    stats = NodeStats()
    assert stats.mean() is None and stats.quantile(0.99) is None


async def test_history_samples_on_its_own_and_stops_when_nobody_reads(registry, monkeypatch):
    import sofiaflow.runtime.core.metrics as metrics

    async with FlowTester(chain("test double"), registry=registry) as t:
        assert metrics.history_for(t.engine) is metrics.history_for(t.engine)  # one per engine
        t.engine.services[metrics.METRICS_HISTORY].stop()
        history = ThroughputHistory(t.engine, interval=0.02)
        monkeypatch.setattr(metrics, "HISTORY_IDLE_STOP", 0.15)
        history.start()
        for i in range(5):
            t.inject("n0", {"payload": i})
        await t.idle()
        await asyncio.sleep(0.1)  # the history samples on the event loop's own time, not the engine's clock
        assert len(history.points) >= 2
        assert sum(rate * 0.02 for _, rates in history.points for rate in rates.values()) == pytest.approx(
            5, rel=0.5
        )
        async with asyncio.timeout(2):
            await history._task  # nobody read it for HISTORY_IDLE_STOP seconds: it ended by itself
        count = len(history.points)
        await asyncio.sleep(0.06)
        assert len(history.points) == count
        history.start()  # a read starts it again
        await asyncio.sleep(0.06)
        assert len(history.points) > count
        history.stop()
