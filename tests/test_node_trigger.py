"""trigger node: op1 / op2 value types, duration and units, ignore vs extend, wait-for-reset, repeat,
reset by msg.reset or payload, per-topic timers, msg.delay override, second output, status, close,
config errors."""

from __future__ import annotations

import asyncio

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


def trigger(wires=None, **props):
    """A trigger node with Node-RED's stored defaults."""
    base = {
        "op1": "1",
        "op2": "0",
        "op1type": "val",
        "op2type": "val",
        "duration": "250",
        "extend": False,
        "overrideDelay": False,
        "units": "ms",
        "reset": "",
        "bytopic": "all",
        "topic": "topic",
        "outputs": 1,
    }
    base.update(props)
    if wires is None:
        wires = ([],) * int(base["outputs"])
    return node("n", "trigger", wires, **base)


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
    """Flow: trigger -> s1 (output 1), and -> s2 (output 2 when there is one)."""
    outputs = int(props.get("outputs", 1))
    wires = [["s1"], ["s2"]][:outputs]
    return [TAB, trigger(wires, **props), node("s1", "test stamp", [[]]), node("s2", "test stamp", [[]])]


def rel(t, msgs, start):
    return [(m["payload"], round(m["t"] - start, 6)) for m in msgs]


# ----- basics ------------------------------------------------------------------------------------------
async def test_defaults_send_string_1_then_string_0_after_250ms(reg):
    async with FlowTester(stamped(), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": None, "topic": "x", "other": 7})
        await t.advance(1)
        out = t.outputs("s1")[0]
        assert rel(t, out, start) == [("1", 0.0), ("0", 0.25)]
        # both are the incoming message with the payload replaced
        assert all(m["topic"] == "x" and m["other"] == 7 for m in out)


@pytest.mark.parametrize(
    "vtype,value,expected",
    [
        ("num", "10", 10),
        ("str", "10", "10"),
        ("bool", "true", True),
        ("bool", "false", False),
        ("json", '{"x":"vx","y":[1,2]}', {"x": "vx", "y": [1, 2]}),
        ("bin", "[1,2,3]", bytearray(b"\x01\x02\x03")),
        ("val", "true", True),
        ("val", "false", False),
        ("val", "null", None),
        ("val", "hello", "hello"),
        ("val", "5", "5"),
        ("str", "", "1"),
    ],
)
async def test_op1_value_types(reg, vtype, value, expected):
    async with FlowTester(stamped(op1=value, op1type=vtype, op2type="nul"), reg, virtual_time=True) as t:
        t.inject("n", {"payload": "in"})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == [expected]


@pytest.mark.parametrize(
    "vtype,value,expected",
    [
        ("num", "10", 10),
        ("str", "10", "10"),
        ("bool", "true", True),
        ("json", "[1,2]", [1, 2]),
        ("val", "false", False),
        ("val", "null", None),
        ("pay", "", "in"),
        ("str", "", "0"),
    ],
)
async def test_op2_value_types(reg, vtype, value, expected):
    async with FlowTester(
        stamped(op1="first", op1type="str", op2=value, op2type=vtype), reg, virtual_time=True
    ) as t:
        t.inject("n", {"payload": "in"})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["first", expected]


async def test_env_date_and_jsonata_values(reg, monkeypatch):
    monkeypatch.setenv("NR_TRIGGER_TEST", "env-val")
    flows = stamped(op1="NR_TRIGGER_TEST", op1type="env", op2="", op2type="date")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": None})
        await t.advance(1)
        first, second = t.outputs("s1")[0]
        assert first["payload"] == "env-val"
        assert isinstance(second["payload"], int) and second["payload"] > 1_600_000_000_000
    flows = stamped(op1="payload * 2", op1type="jsonata", op2="'done'", op2type="jsonata")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": 21})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == [42, "done"]


async def test_flow_and_global_values_op2_read_when_the_timer_fires(reg):
    flows = stamped(op1="foo", op1type="flow", op2="#:(memory)::bar", op2type="global", duration="100")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        n = t.node("n")
        n.flow.set("foo", "from flow")
        n.global_.set("bar", "early")
        t.inject("n", {"payload": None})
        await t.advance(0.05)
        n.global_.set("bar", "late")
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["from flow", "late"]


async def test_pay_keeps_the_payload_and_nul_sends_nothing(reg):
    async with FlowTester(stamped(op1type="pay", op2type="nul"), reg, virtual_time=True) as t:
        t.inject("n", {"payload": {"a": 1}})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == [{"a": 1}]
    async with FlowTester(stamped(op1type="nul", op2="bye", op2type="str"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": "x"})
        await t.advance(1)
        assert rel(t, t.outputs("s1")[0], start) == [("bye", 0.25)]


@pytest.mark.parametrize(
    "units,duration,seconds",
    [("ms", "20", 0.02), ("s", "2", 2.0), ("min", "1", 60.0), ("hr", "0.5", 1800.0), ("", "100", 0.1)],
)
async def test_duration_units(reg, units, duration, seconds):
    async with FlowTester(stamped(units=units, duration=duration), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": 0})
        await t.advance(seconds * 2)
        assert rel(t, t.outputs("s1")[0], start) == [("1", 0.0), ("0", seconds)]


async def test_mustache_templates_in_string_values(reg):
    flows = stamped(
        op1="{{payload}}!", op1type="val", op2="<{{topic}}> {{{topic}}} {{missing}}", op2type="str"
    )
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": "Hello", "topic": "a&b"})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["Hello!", "<a&amp;b> a&b "]


# ----- while triggered --------------------------------------------------------------------------------------
async def test_ignores_other_messages_while_triggered(reg):
    async with FlowTester(stamped(duration="50"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": "a"})
        await t.advance(0.01)
        t.inject("n", {"payload": "b"})
        await t.advance(0.02)
        t.inject("n", {"payload": "c"})
        await t.advance(0.1)
        assert rel(t, t.outputs("s1")[0], start) == [("1", 0.0), ("0", 0.05)]
        t.inject("n", {"payload": "d"})  # after the second message: triggers again
        await t.advance(0.1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["1", "0", "1", "0"]


async def test_extend_restarts_the_timer_and_op2_is_based_on_the_last_message(reg):
    flows = stamped(extend=True, op1="start", op1type="str", op2="end", op2type="str", duration="100")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": "Hello", "topic": "first"})
        await t.advance(0.05)
        t.inject("n", {"payload": "again", "topic": "second"})
        await t.advance(0.08)
        t.inject("n", {"payload": "again", "topic": "third"})
        await t.advance(1)
        out = t.outputs("s1")[0]
        assert rel(t, out, start) == [("start", 0.0), ("end", 0.23)]
        assert [m["topic"] for m in out] == ["first", "third"]


async def test_extend_string_true_and_no_second_output(reg):
    flows = stamped(extend="true", op1type="pay", op2type="nul", duration="200")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": "Hello"})
        await t.advance(0.05)
        t.inject("n", {"payload": "Error"})
        await t.advance(0.05)
        t.inject("n", {"payload": "Error"})
        await t.advance(0.29)
        t.inject("n", {"payload": "World"})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["Hello", "World"]


async def test_payl_sends_the_latest_message(reg):
    flows = stamped(op1type="nul", op2type="payl", duration="50")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": "Hello", "topic": "test1"})
        await t.advance(0.02)
        t.inject("n", {"payload": "Goodbye", "topic": "test2"})
        await t.advance(0.06)
        t.inject("n", {"payload": "World", "topic": "test3"})
        await t.advance(1)
        out = t.outputs("s1")[0]
        assert [(m["payload"], m["topic"]) for m in out] == [("Goodbye", "test2"), ("World", "test3")]


async def test_payl_with_extend_sends_the_most_recent_payload(reg):
    flows = stamped(extend=True, op1type="nul", op2type="payl", duration="60")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": "Hello"})
        await t.advance(0.04)
        t.inject("n", {"payload": "Goodbye"})
        await t.advance(0.04)
        t.inject("n", {"payload": "World"})
        await t.advance(1)
        assert rel(t, t.outputs("s1")[0], start) == [("World", 0.14)]


async def test_payl_first_message_unchanged_by_op1(reg):
    flows = stamped(op1="trig", op1type="str", op2type="payl", duration="50")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": "orig"})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["trig", "orig"]


# ----- wait for reset, reset, repeat ------------------------------------------------------------------------
async def test_duration_zero_waits_for_msg_reset(reg):
    async with FlowTester(stamped(duration="0"), reg, virtual_time=True) as t:
        t.inject("n", {"payload": None})
        t.inject("n", {"payload": None})
        await t.advance(100)
        t.inject("n", {"payload": None})
        t.inject("n", {"reset": True})
        t.inject("n", {"payload": None})
        await t.advance(100)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["1", "1"]


@pytest.mark.parametrize(
    "reset,no,yes",
    [
        ("boo", "foo", "boo"),
        ("true", False, True),
        ("false", "foo", False),
        ("5", 6, 5),
        ("1.5", "1.50", 1.5),
    ],
)
async def test_reset_by_payload_text(reg, reset, no, yes):
    async with FlowTester(stamped(duration="0", reset=reset), reg, virtual_time=True) as t:
        t.inject("n", {"payload": None})
        t.inject("n", {"payload": None})
        t.inject("n", {"payload": no})  # does not reset
        t.inject("n", {"payload": yes})  # resets (and is not sent)
        t.inject("n", {"payload": None})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["1", "1"]


async def test_reset_cancels_the_second_message(reg):
    async with FlowTester(stamped(duration="100"), reg, virtual_time=True) as t:
        t.inject("n", {"payload": 1})
        await t.advance(0.05)
        t.inject("n", {"reset": True})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["1"]
        assert t.node("n").last_status == {}


async def test_negative_duration_repeats_op1_until_reset(reg):
    flows = stamped(op1type="pay", duration="-25", reset="boo")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": "foo"})
        await t.advance(0.06)
        t.inject("n", {"payload": "boo"})
        await t.advance(1)
        out = t.outputs("s1")[0]
        assert rel(t, out, start) == [("foo", 0.0), ("foo", 0.025), ("foo", 0.05)]
        assert len({id(m) for m in out}) == 3  # each repeat is its own copy


async def test_repeat_restarts_on_each_message(reg):
    flows = stamped(op1type="pay", duration="-1", units="s")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": "a"})
        await t.advance(1.5)
        t.inject("n", {"payload": "b"})
        await t.advance(2.2)
        t.inject("n", {"reset": True})
        await t.advance(5)
        assert rel(t, t.outputs("s1")[0], start) == [
            ("a", 0.0),
            ("a", 1.0),
            ("b", 1.5),
            ("b", 2.5),
            ("b", 3.5),
        ]


# ----- topics -------------------------------------------------------------------------------------------------
async def test_all_topics_share_one_timer(reg):
    flows = stamped(op1="1", op1type="num", op2="0", op2type="num", duration="30")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        for topic in "ABC":
            t.inject("n", {"payload": 1, "topic": topic})
        await t.advance(1)
        assert [(m["payload"], m["topic"]) for m in t.outputs("s1")[0]] == [(1, "A"), (0, "A")]


async def test_each_topic_its_own_timer_and_extend(reg):
    flows = stamped(
        bytopic="topic", extend=True, op1="1", op1type="num", op2="0", op2type="num", duration="30"
    )
    async with FlowTester(flows, reg, virtual_time=True) as t:
        for topic in "ABC":
            t.inject("n", {"payload": 1, "topic": topic})
        await t.advance(0.02)
        t.inject("n", {"payload": 2, "topic": "B"})
        await t.advance(1)
        got = [(m["payload"], m["topic"]) for m in t.outputs("s1")[0]]
        assert got == [(1, "A"), (1, "B"), (1, "C"), (0, "A"), (0, "C"), (0, "B")]


async def test_topic_property_and_reset_per_topic(reg):
    flows = stamped(bytopic="topic", topic="payload.id", op1type="pay", op2type="pay", duration="100")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": {"id": "a"}})
        t.inject("n", {"payload": {"id": "b"}})
        t.inject("n", {"payload": {"id": "a", "again": True}})  # ignored: a is running
        await t.idle()
        assert t.node("n").last_status == {"fill": "blue", "shape": "dot", "text": "2"}
        t.inject("n", {"payload": {"id": "b"}, "reset": True})
        await t.idle()
        assert t.node("n").last_status == {"fill": "blue", "shape": "dot"}
        await t.advance(1)
        assert [m["payload"]["id"] for m in t.outputs("s1")[0]] == ["a", "b", "a"]
        assert t.node("n").last_status == {}


# ----- msg.delay, second output ------------------------------------------------------------------------------
async def test_override_delay_with_msg_delay(reg):
    async with FlowTester(stamped(overrideDelay=True, duration="1", units="s"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": 0, "delay": 200})
        await t.advance(1)
        t.inject("n", {"payload": 0})
        await t.advance(2)
        t.inject("n", {"payload": 0, "delay": "not a number"})
        await t.advance(2)
        times = [p[1] for p in rel(t, t.outputs("s1")[0], start)]
        assert times == [0.0, 0.2, 1.0, 2.0, 3.0, 4.0]
    async with FlowTester(stamped(overrideDelay=False, duration="1", units="s"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": 0, "delay": 200})
        await t.advance(2)
        assert [p[1] for p in rel(t, t.outputs("s1")[0], start)] == [0.0, 1.0]


async def test_override_delay_zero_waits_and_loop_interval(reg):
    async with FlowTester(stamped(overrideDelay=True), reg, virtual_time=True) as t:
        t.inject("n", {"payload": 0, "delay": 0})
        await t.advance(10)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["1"]
    flows = stamped(overrideDelay=True, op1type="pay", duration="-1", units="s")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": "r", "delay": 300})
        await t.advance(0.7)
        t.inject("n", {"reset": True})
        await t.advance(2)
        assert [p[1] for p in rel(t, t.outputs("s1")[0], start)] == [0.0, 0.3, 0.6]


async def test_second_output_gets_op2(reg):
    async with FlowTester(stamped(outputs=2, duration="100"), reg, virtual_time=True) as t:
        start = t.clock.now()
        t.inject("n", {"payload": None})
        await t.advance(1)
        assert rel(t, t.outputs("s1")[0], start) == [("1", 0.0)]
        assert rel(t, t.outputs("s2")[0], start) == [("0", 0.1)]
    flows = stamped(outputs=2, extend=True, op2type="payl", duration="100")
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": "a"})
        await t.advance(0.05)
        t.inject("n", {"payload": "b"})
        await t.advance(1)
        assert [m["payload"] for m in t.outputs("s1")[0]] == ["1"]
        assert [m["payload"] for m in t.outputs("s2")[0]] == ["b"]


# ----- status, done, close -----------------------------------------------------------------------------------
async def test_status_while_running(reg):
    async with FlowTester(stamped(duration="100"), reg, virtual_time=True) as t:
        t.inject("n", {"payload": None})
        await t.idle()
        assert t.node("n").last_status == {"fill": "blue", "shape": "dot"}
        await t.advance(1)
        assert t.node("n").last_status == {}


async def test_done_on_handling(reg):
    flows = [
        TAB,
        trigger([["o"]]),
        node("o", "junction", [[]]),
        node("c", "complete", [["cc"]], scope=["n"]),
        node("cc", "junction", [[]]),
    ]
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": 1})
        t.inject("n", {"payload": 2})
        await t.idle()
        assert len(t.outputs("cc")[0]) == 2


async def test_close_cancels_timers(reg):
    for props, sent in (
        ({"duration": "100"}, ["1"]),
        ({"duration": "-100"}, ["1", "1"]),
        ({"duration": "0"}, ["1"]),
        ({"extend": True}, ["1"]),
    ):
        async with FlowTester([TAB, trigger(**props)], reg, virtual_time=True) as t:
            t.inject("n", {"payload": 1})
            t.inject("n", {"payload": 2})
            await t.idle()
            await t.deploy([TAB], "full")
            assert t.clock.pending == 0
            await t.advance(5)
            assert [m["payload"] for m in t.outputs("n")[0]] == sent


# ----- config -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "props",
    [
        {"op1": "{bad json", "op1type": "json"},
        {"op2": "abc", "op2type": "num"},
        {"op1type": "telepathy"},
        {"units": "weeks"},
        {"duration": "soon"},
        {"bytopic": "sometimes"},
        {"op2": "$$$(", "op2type": "jsonata"},
    ],
)
async def test_bad_config_refuses_deploy(reg, props):
    with pytest.raises(FlowValidationError):
        async with FlowTester([TAB, trigger(**props)], reg, virtual_time=True):
            pass


async def test_minimal_stored_config_runs_with_defaults(reg):
    flows = [TAB, node("n", "trigger", [[]], duration="20")]
    async with FlowTester(flows, reg, virtual_time=True) as t:
        t.inject("n", {"payload": None})
        await t.advance(1)
        assert t.payloads("n") == ["1", "0"]


# ----- property (hypothesis) ----------------------------------------------------------------------------------
def expected_schedule(
    arrivals: list[float], duration: float, extend: bool
) -> tuple[list[float], list[float]]:
    """Reference model: (op1 times, op2 times) for messages arriving at `arrivals` (a timer due at the
    same instant as an arrival fires first)."""
    op1, op2 = [], []
    due = None
    for at in arrivals:
        if due is not None and due <= at:
            op2.append(due)
            due = None
        if due is None:
            op1.append(at)
            due = at + duration
        elif extend:
            due = at + duration
    if due is not None:
        op2.append(due)
    return op1, op2


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=25), min_size=1, max_size=25),
    duration=st.integers(min_value=1, max_value=20),
    extend=st.booleans(),
)
def test_property_trigger_matches_reference_model(gaps, duration, extend):
    # times in 1/64 s, exact in binary floating point, so ties (a timer due as a message arrives) are exact
    async def scenario():
        flows = stamped(duration=str(duration / 64), units="s", extend=extend, outputs=2)
        async with FlowTester(flows, make_registry(), virtual_time=True) as t:
            start = t.clock.now()
            arrivals = []
            for i, gap in enumerate(gaps):
                await t.advance(gap / 64)
                arrivals.append(t.clock.now() - start)
                t.inject("n", {"payload": i})
            await t.advance(duration / 64 + 1)
            op1, op2 = expected_schedule(arrivals, duration / 64, extend)
            got1 = [round(m["t"] - start, 6) for m in t.outputs("s1")[0]]
            got2 = [round(m["t"] - start, 6) for m in t.outputs("s2")[0]]
            assert got1 == [round(x, 6) for x in op1]
            assert got2 == [round(x, 6) for x in op2]
            assert all(m["payload"] == "1" for m in t.outputs("s1")[0])
            assert all(m["payload"] == "0" for m in t.outputs("s2")[0])

    asyncio.run(scenario())
