"""batch node: by count (overlap, honourParts, reset), by interval (virtual time, empty sequences, reset),
concatenation of topic sequences (listed order, waits for whole sequences, errors), done/complete, close,
config errors, and a hypothesis property for count mode."""

from __future__ import annotations

import asyncio
import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def batch(**props):
    """A batch node with Node-RED's stored defaults."""
    base = {
        "mode": "count",
        "count": 10,
        "overlap": 0,
        "interval": 10,
        "allowEmptySequence": False,
        "honourParts": False,
        "topics": [{"topic": ""}],
    }
    base.update(props)
    return node("b", "batch", [["o"]], **base)


def flows_for(b, extra=()):
    return [TAB, b, node("o", "junction", [[]]), *extra]


async def run(b, registry, *msgs, extra=()):
    async with FlowTester(flows_for(b, extra), registry) as t:
        sent = [t.inject("b", copy.deepcopy(m)) for m in msgs]
        await t.idle()
        return t.outputs("b")[0], t, sent


# ----- count -------------------------------------------------------------------------------------------------
async def test_count_groups_messages_into_new_sequences(registry):
    out, _, sent = await run(batch(count="2"), registry, *({"payload": i} for i in range(5)))
    assert [m["payload"] for m in out] == [0, 1, 2, 3]
    assert [m["parts"] for m in out] == [
        {"id": sent[0]["_msgid"], "index": 0, "count": 2},
        {"id": sent[0]["_msgid"], "index": 1, "count": 2},
        {"id": sent[2]["_msgid"], "index": 0, "count": 2},
        {"id": sent[2]["_msgid"], "index": 1, "count": 2},
    ]


async def test_count_overwrites_existing_parts_fields_it_sets(registry):
    msgs = [{"payload": i, "parts": {"id": "old", "index": 5, "count": 9, "type": "array"}} for i in range(2)]
    out, _, sent = await run(batch(count=2), registry, *msgs)
    assert [m["parts"] for m in out] == [
        {"id": sent[0]["_msgid"], "index": i, "count": 2, "type": "array"} for i in range(2)
    ]


async def test_overlap_repeats_the_last_messages_as_copies(registry):
    out, _, _ = await run(batch(count=3, overlap=1), registry, *({"payload": i} for i in range(1, 6)))
    assert [m["payload"] for m in out] == [1, 2, 3, 3, 4, 5]
    assert [m["parts"]["index"] for m in out] == [0, 1, 2, 0, 1, 2]
    assert out[2] is not out[3] and out[2]["parts"]["id"] != out[3]["parts"]["id"]


async def test_honour_parts_ends_a_batch_at_the_end_of_a_sequence(registry):
    msgs = [
        {"payload": 1, "parts": {"id": "x", "index": 0, "count": 2}},
        {"payload": 2, "parts": {"id": "x", "index": 1, "count": 2}},
        {"payload": 3},
    ]
    out, _, _ = await run(batch(count=5, honourParts=True), registry, *msgs)
    assert [m["payload"] for m in out] == [1, 2]
    assert [m["parts"]["count"] for m in out] == [2, 2]
    out, _, _ = await run(batch(count=5, honourParts=False), registry, *msgs)
    assert out == []


async def test_reset_drops_the_pending_messages(registry):
    out, _, _ = await run(
        batch(count=2), registry, {"payload": 1}, {"reset": True}, {"payload": 2}, {"payload": 3}
    )
    assert [m["payload"] for m in out] == [2, 3]


async def test_done_fires_when_a_message_leaves_the_batch(registry):
    complete = [node("c", "complete", [["co"]], scope=["b"]), node("co", "junction", [[]])]
    async with FlowTester(flows_for(batch(count=2, overlap=1), complete), registry) as t:
        t.inject("b", {"payload": 1})
        await t.idle()
        assert t.outputs("co")[0] == []
        t.inject("b", {"payload": 2})
        await t.idle()
        assert [m["payload"] for m in t.outputs("co")[0]] == [1]  # 2 stays for the overlap
        t.inject("b", {"payload": 3})
        await t.idle()
        assert [m["payload"] for m in t.outputs("co")[0]] == [1, 2]


# ----- interval ----------------------------------------------------------------------------------------------
async def test_interval_sends_what_arrived_in_each_window(registry):
    async with FlowTester(flows_for(batch(mode="interval", interval="2")), registry, virtual_time=True) as t:
        t.inject("b", {"payload": 1})
        await t.advance(0.5)
        t.inject("b", {"payload": 2})
        await t.advance(1.4)
        assert t.outputs("b")[0] == []
        await t.advance(0.2)
        assert t.payloads("b") == [1, 2]
        assert [m["parts"]["count"] for m in t.outputs("b")[0]] == [2, 2]
        await t.advance(4)  # empty windows send nothing by default
        t.inject("b", {"payload": 3})
        await t.advance(2)
        assert t.payloads("b") == [1, 2, 3]
        assert t.outputs("b")[0][2]["parts"]["index"] == 0


async def test_interval_can_send_empty_sequences(registry):
    b = batch(mode="interval", interval=1, allowEmptySequence=True)
    async with FlowTester(flows_for(b), registry, virtual_time=True) as t:
        await t.advance(2.5)
        out = t.outputs("b")[0]
        assert [m["payload"] for m in out] == [None, None]
        assert [(m["parts"]["index"], m["parts"]["count"]) for m in out] == [(0, 1), (0, 1)]
        assert out[0]["parts"]["id"] != out[1]["parts"]["id"] and "_msgid" in out[0]


async def test_interval_reset_drops_and_restarts_the_window(registry):
    async with FlowTester(flows_for(batch(mode="interval", interval=2)), registry, virtual_time=True) as t:
        t.inject("b", {"payload": 1})
        await t.advance(1.5)
        t.inject("b", {"reset": True})
        t.inject("b", {"payload": 2})
        await t.advance(1)
        assert t.outputs("b")[0] == []
        await t.advance(1.1)
        assert t.payloads("b") == [2]


async def test_close_stops_the_interval_and_finishes_pending_messages(registry):
    complete = [node("c", "complete", [["co"]], scope=["b"]), node("co", "junction", [[]])]
    async with FlowTester(
        flows_for(batch(mode="interval", interval=2), complete), registry, virtual_time=True
    ) as t:
        t.inject("b", {"payload": 1})
        await t.idle()
        await t.deploy(flows_for(batch(mode="interval", interval=3), complete), "nodes")
        await t.advance(2.5)
        assert t.outputs("b")[0] == []  # the old timer is gone
        assert [m["payload"] for m in t.outputs("co")[0]] == [1]  # the held message was finished
        await t.advance(1)
        assert t.outputs("b")[0] == []


# ----- concat ------------------------------------------------------------------------------------------------
def seq(topic, pid, values):
    return [
        {"payload": v, "topic": topic, "parts": {"id": pid, "index": i, "count": len(values)}}
        for i, v in enumerate(values)
    ]


async def test_concat_joins_whole_sequences_in_the_listed_topic_order(registry):
    a, b = seq("a", "ga", [1, 2]), seq("b", "gb", [3])
    msgs = [a[0], {"payload": 9, "topic": "c"}, b[0], a[1]]
    out, _, sent = await run(batch(mode="concat", topics=[{"topic": "b"}, {"topic": "a"}]), registry, *msgs)
    assert [(m["topic"], m["payload"]) for m in out] == [("b", 3), ("a", 1), ("a", 2)]
    assert [m["parts"] for m in out] == [{"id": sent[2]["_msgid"], "index": i, "count": 3} for i in range(3)]


async def test_concat_uses_sequences_of_a_topic_in_arrival_order(registry):
    msgs = [*seq("a", "a1", [1]), *seq("a", "a2", [2]), *seq("b", "b1", [10]), *seq("b", "b2", [20])]
    out, _, _ = await run(batch(mode="concat", topics=[{"topic": "a"}, {"topic": "b"}]), registry, *msgs)
    assert [m["payload"] for m in out] == [1, 10, 2, 20]


async def test_concat_without_parts_is_an_error(registry):
    catch = [node("c", "catch", [["co"]], scope=None), node("co", "junction", [[]])]
    out, t, _ = await run(
        batch(mode="concat", topics=[{"topic": "a"}]), registry, {"payload": 1, "topic": "a"}, extra=catch
    )
    assert out == []
    assert t.outputs("co")[0][0]["error"]["message"] == "no parts property in message"


async def test_concat_reset_drops_pending_sequences(registry):
    msgs = [*seq("a", "a1", [1]), {"reset": True}, *seq("b", "b1", [2]), *seq("a", "a2", [3])]
    out, _, _ = await run(batch(mode="concat", topics=[{"topic": "a"}, {"topic": "b"}]), registry, *msgs)
    assert [m["payload"] for m in out] == [3, 2]


# ----- config errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "props, needle",
    [
        ({"count": 2, "overlap": 2}, "Invalid count and overlap"),
        ({"count": -1}, "Invalid count and overlap"),
        ({"count": "many"}, "count"),
        ({"mode": "interval", "interval": 0}, "Invalid interval"),
        ({"mode": "window"}, "unexpected mode"),
    ],
)
async def test_bad_config_refuses_the_deploy(registry, props, needle):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(flows_for(batch(**props)), registry):
            pass
    assert needle in str(info.value)


# ----- property ---------------------------------------------------------------------------------------------
def make_registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in default_registry().types():
        reg.register(cls, default_registry().origin(cls.type))
    return reg


REGISTRY = make_registry()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(0, 40), count=st.integers(1, 6), data=st.data())
def test_property_count_mode_sends_sliding_windows(n, count, data):
    overlap = data.draw(st.integers(0, count - 1))

    async def scenario():
        async with FlowTester(flows_for(batch(count=count, overlap=overlap)), REGISTRY) as t:
            for i in range(n):
                t.inject("b", {"payload": i})
            await t.idle()
            return t.outputs("b")[0]

    out = asyncio.run(scenario())
    windows = [out[i : i + count] for i in range(0, len(out), count)]
    step = count - overlap
    expected = [list(range(s, s + count)) for s in range(0, n - count + 1, step)] if n >= count else []
    assert [[m["payload"] for m in w] for w in windows] == expected
    for w in windows:
        assert [m["parts"]["index"] for m in w] == list(range(count))
        assert len({m["parts"]["id"] for m in w}) == 1
