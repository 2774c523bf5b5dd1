"""delay node: fixed / msg.delay / random delays, rate limiting (queue, drop, 2nd output), per-topic queue,
timed release, burst, reset / flush / toFront control messages, status, close and redeploy, config errors."""

from __future__ import annotations

import asyncio
import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.api import Msg, Node
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": props.pop("z", "t1"),
        "name": props.pop("name", ""),
        "x": 100,
        "y": 100,
        "wires": [list(w) for w in wires],
        **props,
    }


def delay(wires=(), **props):
    """A delay node with Node-RED's stored defaults (strings, as the editor saves them)."""
    base = {
        "pauseType": "delay",
        "timeout": "5",
        "timeoutUnits": "seconds",
        "rate": "1",
        "nbRateUnits": "1",
        "rateUnits": "second",
        "randomFirst": "1",
        "randomLast": "5",
        "randomUnits": "seconds",
        "drop": False,
        "allowrate": False,
        "outputs": 1,
    }
    base.update(props)
    return node("d", "delay", wires or ([],) * int(base["outputs"]), **base)


class StampNode(Node):
    """Test node: records the clock time a message arrived at in msg.t and passes it on."""

    type = "test stamp"

    def on_input(self, msg: Msg) -> None:
        msg["t"] = self.now()
        self.send(msg)


def make_registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in default_registry().types():
        reg.register(cls, default_registry().origin(cls.type))
    reg.register(StampNode, "tests")
    return reg


@pytest.fixture
def reg() -> NodeRegistry:
    return make_registry()


def stamped(**props):
    """Flow: delay -> stamp (output 1) and delay -> stamp2 (output 2 when there is one)."""
    outputs = int(props.get("outputs", 1))
    wires = [["s1"], ["s2"]][:outputs]
    return [TAB, delay(wires, **props), node("s1", "test stamp", [[]]), node("s2", "test stamp", [[]])]


# ----- delay (fixed) ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "units,timeout,seconds",
    [
        ("milliseconds", "250", 0.25),
        ("seconds", "2", 2.0),
        ("minutes", "1.5", 90.0),
        ("hours", "1", 3600.0),
        ("days", "1", 86400.0),
        ("", "3", 3.0),
    ],
)
async def test_delay_holds_each_message_for_the_timeout(reg, units, timeout, seconds):
    async with FlowTester([TAB, delay(timeout=timeout, timeoutUnits=units)], reg, virtual_time=True) as t:
        for i in range(3):
            t.inject("d", {"payload": i, "topic": "x"})
        await t.advance(seconds * 0.999)
        assert t.payloads("d") == []
        await t.advance(seconds * 0.002)
        assert t.payloads("d") == [0, 1, 2]
        assert t.outputs("d")[0][0]["topic"] == "x"


async def test_delay_keeps_each_message_own_time(reg):
    async with FlowTester(stamped(timeout="1"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("d", {"payload": "a"})
        await t.advance(0.4)
        t.inject("d", {"payload": "b"})
        await t.advance(5)
        times = [(m["payload"], round(m["t"] - start, 6)) for m in t.outputs("s1")[0]]
        assert times == [("a", 1.0), ("b", 1.4)]


async def test_delay_status_counts_held_messages_for_long_delays(reg):
    async with FlowTester([TAB, delay(timeout="5")], reg, virtual_time=True) as t:
        t.inject("d", {"payload": 1})
        t.inject("d", {"payload": 2})
        await t.idle()
        assert t.node("d").last_status == {"fill": "blue", "shape": "dot", "text": "2"}
        await t.advance(5)
        assert t.node("d").last_status == {"fill": "blue", "shape": "dot", "text": "0"}
    async with FlowTester(
        [TAB, delay(timeout="500", timeoutUnits="milliseconds")], reg, virtual_time=True
    ) as t:
        t.inject("d", {"payload": 1})
        await t.advance(1)
        assert t.payloads("d") == [1]
        assert t.node("d").last_status == {}


async def test_delay_reset_drops_everything_held(reg):
    async with FlowTester([TAB, delay(timeout="1")], reg, virtual_time=True) as t:
        t.inject("d", {"payload": 1})
        t.inject("d", {"payload": 2})
        await t.advance(0.5)
        t.inject("d", {"reset": True})
        await t.advance(5)
        assert t.payloads("d") == []
        assert t.node("d").last_status == {"fill": "blue", "shape": "ring", "text": "0"}
        t.inject("d", {"payload": 3})
        await t.advance(1)
        assert t.payloads("d") == [3]


async def test_delay_flush_releases_all_or_a_number_in_arrival_order(reg):
    async with FlowTester([TAB, delay(timeout="10")], reg, virtual_time=True) as t:
        for i in range(5):
            t.inject("d", {"payload": i})
        await t.advance(1)
        t.inject("d", {"flush": 2})
        await t.idle()
        assert t.payloads("d") == [0, 1]
        assert t.node("d").last_status["text"] == "3"
        t.inject("d", {"flush": True})
        await t.idle()
        assert t.payloads("d") == [0, 1, 2, 3, 4]
        await t.advance(20)
        assert t.payloads("d") == [0, 1, 2, 3, 4]  # nothing twice, the pure flush msgs are not passed on


async def test_delay_flush_message_with_content_is_held_and_flushed_too(reg):
    async with FlowTester([TAB, delay(timeout="10")], reg, virtual_time=True) as t:
        t.inject("d", {"payload": "a"})
        t.inject("d", {"payload": "b", "flush": True})
        await t.idle()
        assert t.payloads("d") == ["a", "b"]
        await t.advance(20)
        assert len(t.payloads("d")) == 2


# ----- delayv (msg.delay) ------------------------------------------------------------------------------
async def test_delayv_uses_msg_delay_ms_with_timeout_as_default(reg):
    async with FlowTester(stamped(pauseType="delayv", timeout="2"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("d", {"payload": "ms300", "delay": 300})
        t.inject("d", {"payload": "default"})
        t.inject("d", {"payload": "str", "delay": "700"})
        t.inject("d", {"payload": "negative", "delay": -50})
        t.inject("d", {"payload": "zero", "delay": 0})
        t.inject("d", {"payload": "junk", "delay": "soon"})
        await t.advance(10)
        got = {m["payload"]: round(m["t"] - start, 6) for m in t.outputs("s1")[0]}
        assert got == {"ms300": 0.3, "default": 2.0, "str": 0.7, "negative": 0.0, "zero": 0.0, "junk": 2.0}


async def test_delayv_status_and_reset(reg):
    async with FlowTester([TAB, delay(pauseType="delayv", timeout="1")], reg, virtual_time=True) as t:
        t.inject("d", {"payload": 1, "delay": 100})
        await t.idle()
        assert t.node("d").last_status["text"] == "1"
        t.inject("d", {"payload": 2, "delay": 5000})
        t.inject("d", {"reset": True})
        await t.advance(10)
        assert t.payloads("d") == []


# ----- random ----------------------------------------------------------------------------------------------
async def test_random_delay_falls_between_first_and_last(reg):
    flows = stamped(pauseType="random", randomFirst="200", randomLast="800", randomUnits="milliseconds")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        for i in range(30):
            t.inject("d", {"payload": i})
        await t.advance(0.199)
        assert t.outputs("s1")[0] == []
        await t.advance(0.602)
        out = t.outputs("s1")[0]
        assert sorted(m["payload"] for m in out) == list(range(30))
        assert all(0.2 - 1e-9 <= m["t"] - start <= 0.8 + 1e-9 for m in out)
        assert len({round(m["t"], 6) for m in out}) > 1


# ----- rate limit, queueing ------------------------------------------------------------------------------
async def test_rate_queues_and_releases_one_per_interval(reg):
    async with FlowTester(stamped(pauseType="rate", rate="2"), reg, virtual_time=True) as t:
        start = t.clock.now()
        for i in range(5):
            t.inject("d", {"payload": i})
        await t.advance(10)
        times = [(m["payload"], round(m["t"] - start, 6)) for m in t.outputs("s1")[0]]
        assert times == [(0, 0.0), (1, 0.5), (2, 1.0), (3, 1.5), (4, 2.0)]


async def test_rate_per_several_units(reg):
    # 3 msgs per 2 minutes = one every 40 s
    flows = stamped(pauseType="rate", rate="3", nbRateUnits="2", rateUnits="minute")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        for i in range(4):
            t.inject("d", {"payload": i})
        await t.advance(200)
        assert [round(m["t"] - start, 6) for m in t.outputs("s1")[0]] == [0.0, 40.0, 80.0, 120.0]


async def test_rate_idle_again_passes_at_once(reg):
    async with FlowTester(stamped(pauseType="rate", rate="1"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("d", {"payload": 1})
        await t.advance(2.5)
        t.inject("d", {"payload": 2})
        await t.advance(0.3)
        t.inject("d", {"payload": 3})
        await t.advance(5)
        assert [round(m["t"] - start, 6) for m in t.outputs("s1")[0]] == [0.0, 2.5, 3.5]


async def test_rate_status_shows_queue_length(reg):
    async with FlowTester(
        [TAB, delay(pauseType="rate", rate="1", nbRateUnits="10")], reg, virtual_time=True
    ) as t:
        for i in range(4):
            t.inject("d", {"payload": i})
        await t.advance(0.6)
        assert t.node("d").last_status == {"fill": "blue", "shape": "dot", "text": "3"}
        await t.advance(40)
        assert t.node("d").last_status["text"] == "0"


async def test_rate_to_front_jumps_the_queue(reg):
    async with FlowTester([TAB, delay(pauseType="rate", rate="1")], reg, virtual_time=True) as t:
        t.inject("d", {"payload": "a"})
        t.inject("d", {"payload": "b"})
        t.inject("d", {"payload": "c"})
        t.inject("d", {"payload": "urgent", "toFront": True})
        await t.advance(10)
        assert t.payloads("d") == ["a", "urgent", "b", "c"]


async def test_rate_flush_releases_now_and_restarts_the_interval(reg):
    async with FlowTester(stamped(pauseType="rate", rate="1"), reg, virtual_time=True) as t:
        start = t.clock.now()
        for i in range(6):
            t.inject("d", {"payload": i})
        await t.advance(0.2)
        t.inject("d", {"flush": 2})
        await t.idle()
        assert [m["payload"] for m in t.outputs("s1")[0]] == [0, 1, 2]
        await t.advance(0.9)
        t.inject("d", {"flush": True})
        await t.idle()
        assert [m["payload"] for m in t.outputs("s1")[0]] == [0, 1, 2, 3, 4, 5]
        assert all("flush" not in m for m in t.outputs("s1")[0])
        times = [round(m["t"] - start, 6) for m in t.outputs("s1")[0]]
        assert times == [0.0, 0.2, 0.2, 1.1, 1.1, 1.1]
        assert t.node("d").last_status["text"] == "0"


async def test_rate_reset_drops_the_queue_and_the_limit(reg):
    async with FlowTester(stamped(pauseType="rate", rate="1"), reg, virtual_time=True) as t:
        start = t.clock.now()
        for i in range(4):
            t.inject("d", {"payload": i})
        await t.advance(0.1)
        t.inject("d", {"reset": True})
        await t.idle()
        assert t.node("d").last_status == {"fill": "blue", "shape": "ring", "text": "0"}
        t.inject("d", {"payload": "next"})
        await t.advance(5)
        out = [(m["payload"], round(m["t"] - start, 6)) for m in t.outputs("s1")[0]]
        assert out == [(0, 0.0), ("next", 0.1)]


async def test_rate_allowrate_lets_msg_rate_set_the_interval(reg):
    async with FlowTester(stamped(pauseType="rate", rate="1", allowrate=True), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("d", {"payload": 0, "rate": 200})
        for i in range(1, 4):
            t.inject("d", {"payload": i})
        await t.advance(5)
        assert [round(m["t"] - start, 6) for m in t.outputs("s1")[0]] == [0.0, 0.2, 0.4, 0.6]
        # a reset brings back the configured rate
        t.inject("d", {"reset": True})
        start = t.clock.now()
        for i in range(3):
            t.inject("d", {"payload": i})
        await t.advance(5)
        assert [round(m["t"] - start, 6) for m in t.outputs("s1")[0][4:]] == [0.0, 1.0, 2.0]


async def test_rate_without_allowrate_ignores_msg_rate(reg):
    async with FlowTester(stamped(pauseType="rate", rate="1"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("d", {"payload": 0, "rate": 100})
        t.inject("d", {"payload": 1, "rate": 100})
        await t.advance(5)
        assert [round(m["t"] - start, 6) for m in t.outputs("s1")[0]] == [0.0, 1.0]


# ----- rate limit, dropping ---------------------------------------------------------------------------------
async def test_rate_drop_burst_goes_to_second_output(reg):
    # observed in Node-RED: a burst of 5 at 2 msg/s with drop and 2 outputs: 1st passed, 2-5 to output 2 at once
    async with FlowTester(
        [TAB, delay(pauseType="rate", rate="2", drop=True, outputs=2)], reg, virtual_time=True
    ) as t:
        for i in range(5):
            t.inject("d", {"payload": i})
        await t.idle()
        assert t.payloads("d", 0) == [0]
        assert t.payloads("d", 1) == [1, 2, 3, 4]
        await t.advance(0.6)
        t.inject("d", {"payload": 5})
        await t.idle()
        assert t.payloads("d", 0) == [0, 5]


async def test_rate_drop_with_one_output_discards(reg):
    async with FlowTester([TAB, delay(pauseType="rate", rate="1", drop=True)], reg, virtual_time=True) as t:
        for i in range(3):
            t.inject("d", {"payload": i})
        await t.advance(0.5)
        t.inject("d", {"payload": "half"})
        await t.advance(0.6)
        t.inject("d", {"payload": "later"})
        await t.advance(5)
        assert t.payloads("d") == [0, "later"]
        assert len(t.outputs("d")) == 1


async def test_rate_drop_reset_lets_the_next_pass(reg):
    async with FlowTester(
        [TAB, delay(pauseType="rate", rate="1", drop=True, outputs=2)], reg, virtual_time=True
    ) as t:
        t.inject("d", {"payload": 1})
        t.inject("d", {"reset": True})
        t.inject("d", {"payload": 2})
        await t.idle()
        assert t.payloads("d", 0) == [1, 2]
        assert t.payloads("d", 1) == []


# ----- per-topic queue and timed release -------------------------------------------------------------------
async def test_queue_round_robins_topics_keeping_the_latest(reg):
    flows = stamped(pauseType="queue", rate="1", outputs=2)
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("d", {"topic": "A", "payload": "a1"})
        t.inject("d", {"topic": "B", "payload": "b1"})
        t.inject("d", {"topic": "A", "payload": "a2"})
        t.inject("d", {"topic": "C", "payload": "c1"})
        t.inject("d", {"payload": "no topic"})
        await t.advance(5.5)
        out = [(m["topic"], m["payload"], round(m["t"] - start, 6)) for m in t.outputs("s1")[0]]
        assert out == [("A", "a2", 1.0), ("B", "b1", 2.0), ("C", "c1", 3.0), ("_none_", "no topic", 4.0)]
        assert [m["payload"] for m in t.outputs("s2")[0]] == ["a1"]  # replaced ones go to output 2


async def test_timed_releases_every_topic_each_interval(reg):
    flows = stamped(pauseType="timed", rate="1", nbRateUnits="2")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        await t.advance(0.5)
        t.inject("d", {"topic": "A", "payload": 1})
        t.inject("d", {"topic": "B", "payload": 1})
        t.inject("d", {"topic": "A", "payload": 2})
        await t.advance(2)
        t.inject("d", {"topic": "B", "payload": 3})
        await t.advance(2)
        out = [(m["topic"], m["payload"], round(m["t"] - start, 6)) for m in t.outputs("s1")[0]]
        assert out == [("A", 2, 2.0), ("B", 1, 2.0), ("B", 3, 4.0)]


async def test_queue_flush_and_reset(reg):
    async with FlowTester(
        [TAB, delay(pauseType="queue", rate="1", nbRateUnits="10")], reg, virtual_time=True
    ) as t:
        for topic in "ABC":
            t.inject("d", {"topic": topic, "payload": topic.lower()})
        t.inject("d", {"flush": 2})
        await t.idle()
        assert t.payloads("d") == ["a", "b"]
        t.inject("d", {"topic": "D", "payload": "d"})
        t.inject("d", {"reset": True})
        await t.idle()
        assert t.node("d").last_status == {"text": "reset"}
        await t.advance(30)
        assert t.payloads("d") == ["a", "b"]


# ----- burst (Node-RED 5.0) ---------------------------------------------------------------------------------
async def test_burst_passes_up_to_rate_per_period(reg):
    async with FlowTester([TAB, delay(pauseType="burst", rate="2", outputs=2)], reg, virtual_time=True) as t:
        for i in range(4):
            t.inject("d", {"payload": i})
        await t.idle()
        assert t.payloads("d", 0) == [0, 1]
        assert t.payloads("d", 1) == [2, 3]
        assert t.node("d").last_status == {"fill": "red", "shape": "dot", "text": ""}
        await t.advance(1)
        t.inject("d", {"payload": 4})
        await t.idle()
        assert t.payloads("d", 0) == [0, 1, 4]


# ----- completion, close, redeploy --------------------------------------------------------------------------
async def test_done_when_released_not_when_received(reg):
    flows = [
        TAB,
        delay([["o"]], timeout="1"),
        node("o", "junction", [[]]),
        node("c", "complete", [["cc"]], scope=["d"]),
        node("cc", "junction", [[]]),
    ]
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("d", {"payload": 1})
        await t.advance(0.5)
        assert t.payloads("cc") == []
        await t.advance(0.6)
        assert t.payloads("cc") == [1]


async def test_close_cancels_timers(reg):
    flows = [TAB, delay(timeout="1")]
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("d", {"payload": 1})
        await t.idle()
        assert t.clock.pending >= 1
        await t.deploy([TAB], "full")
        assert t.clock.pending == 0
        await t.advance(5)
        assert t.payloads("d") == []
    for mode in ("rate", "queue", "timed", "burst"):
        async with FlowTester([TAB, delay(pauseType=mode)], reg, virtual_time=True) as t:
            t.inject("d", {"payload": 1, "topic": "x"})
            t.inject("d", {"payload": 2, "topic": "y"})
            await t.idle()
            await t.deploy([TAB], "full")
            assert t.clock.pending == 0, mode


async def test_unchanged_delay_keeps_its_queue_across_nodes_redeploy(reg):
    flows = [TAB, delay([["o"]], timeout="1"), node("o", "junction", [[]])]
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("d", {"payload": 1})
        await t.advance(0.5)
        more = copy.deepcopy(flows) + [node("x", "junction", [[]])]
        await t.deploy(more, "nodes")
        await t.advance(1)
        assert t.payloads("o") == [1]


# ----- config ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "props",
    [
        {"pauseType": "sometimes"},
        {"pauseType": "rate", "rate": "0"},
        {"pauseType": "queue", "rate": "-1"},
        {"pauseType": "delay", "timeout": "-1"},
        {"pauseType": "delay", "timeout": "soon"},
        {"pauseType": "delay", "timeoutUnits": "fortnights"},
        {"pauseType": "rate", "rateUnits": "week"},
        {"pauseType": "random", "randomFirst": ""},
        {"outputs": 3},
    ],
)
async def test_bad_config_refuses_deploy(reg, props):
    with pytest.raises(FlowValidationError):
        async with FlowTester([TAB, delay(**props)], reg, virtual_time=True):
            pass


async def test_numbers_as_numbers_and_missing_fields_take_defaults(reg):
    flows = [TAB, node("d", "delay", [[]], pauseType="delay", timeout=2, timeoutUnits="seconds")]
    async with FlowTester(flows, reg, virtual_time=True) as t:
        assert t.node("d").output_count(t.node("d").config) == 1
        t.inject("d", {"payload": 1})
        await t.advance(1.9)
        assert t.payloads("d") == []
        await t.advance(0.2)
        assert t.payloads("d") == [1]


# ----- properties (hypothesis) ----------------------------------------------------------------------------
def run(coro):
    return asyncio.run(coro)


arrivals = st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=25)
"""Gaps in ms between message arrivals."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gaps=arrivals, timeout_ms=st.integers(min_value=0, max_value=5000))
def test_property_delay_releases_each_message_once_after_the_delay_in_order(gaps, timeout_ms):
    async def scenario():
        flows = stamped(timeout=str(timeout_ms), timeoutUnits="milliseconds")
        async with FlowTester(flows, make_registry(), virtual_time=True) as t:
            sent = []
            for i, gap in enumerate(gaps):
                await t.advance(gap / 1000)
                t.inject("d", {"payload": i})
                sent.append(t.clock.now())
            await t.advance(timeout_ms / 1000 + 1)
            out = t.outputs("s1")[0]
            assert [m["payload"] for m in out] == list(range(len(gaps)))
            for m in out:
                assert abs(m["t"] - sent[m["payload"]] - timeout_ms / 1000) < 1e-6

    run(scenario())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=1500), min_size=1, max_size=30),
    rate=st.integers(min_value=1, max_value=5),
    per=st.integers(min_value=1, max_value=3),
    drop=st.booleans(),
)
def test_property_rate_never_exceeds_n_per_period(gaps, rate, per, drop):
    async def scenario():
        flows = stamped(
            pauseType="rate", rate=str(rate), nbRateUnits=str(per), drop=drop, outputs=2 if drop else 1
        )
        async with FlowTester(flows, make_registry(), virtual_time=True) as t:
            for i, gap in enumerate(gaps):
                await t.advance(gap / 1000)
                t.inject("d", {"payload": i})
            await t.advance(len(gaps) * per / rate + 2)
            passed = t.outputs("s1")[0]
            times = [m["t"] for m in passed]
            period = float(per)
            eps = 1e-6
            # any window [t, t + period) holds at most `rate` released messages
            for i, start in enumerate(times):
                assert sum(1 for x in times[i:] if x < start + period - eps) <= rate
            # evenly spread: consecutive releases are at least period / rate apart
            for a, b in zip(times, times[1:], strict=False):
                assert b - a >= period / rate - eps
            got = [m["payload"] for m in passed]
            if drop:
                dropped = [m["payload"] for m in t.outputs("s2")[0]]
                assert sorted(got + dropped) == list(range(len(gaps)))
                assert got == sorted(got)
            else:
                assert got == list(range(len(gaps)))  # nothing lost, order kept

    run(scenario())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=1200), st.sampled_from("ABCD")), min_size=1, max_size=25
    )
)
def test_property_queue_sends_latest_per_topic_one_per_interval(events):
    async def scenario():
        flows = stamped(pauseType="queue", rate="1", outputs=2)
        async with FlowTester(flows, make_registry(), virtual_time=True) as t:
            for i, (gap, topic) in enumerate(events):
                await t.advance(gap / 1000)
                t.inject("d", {"topic": topic, "payload": i})
            await t.advance(len(events) + 2)
            sent = t.outputs("s1")[0]
            replaced = t.outputs("s2")[0]
            # every message leaves exactly once: released or replaced by a newer one of its topic
            assert sorted(m["payload"] for m in sent + replaced) == list(range(len(events)))
            times = [m["t"] for m in sent]
            for a, b in zip(times, times[1:], strict=False):
                assert b - a >= 1 - 1e-6
            # the last message of each topic is always released
            last = {}
            for i, (_, topic) in enumerate(events):
                last[topic] = i
            assert set(last.values()) <= {m["payload"] for m in sent}

    run(scenario())
