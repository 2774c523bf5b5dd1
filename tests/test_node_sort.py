"""sort node: array property (element value, JSONata key, order, as number, JavaScript comparison of mixed
values), whole `msg.parts` sequences (property or JSONata key, rewritten parts.index), done, errors, config
errors, and hypothesis properties (sorted, and a permutation of the input)."""

from __future__ import annotations

import asyncio
import copy
from collections import Counter

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


def sort(**props):
    """A sort node with Node-RED's stored defaults."""
    base = {
        "order": "ascending",
        "as_num": False,
        "target": "payload",
        "targetType": "msg",
        "msgKey": "payload",
        "msgKeyType": "elem",
        "seqKey": "payload",
        "seqKeyType": "msg",
    }
    base.update(props)
    return node("s", "sort", [["o"]], **base)


def flows_for(s, extra=()):
    return [TAB, s, node("o", "junction", [[]]), *extra]


async def run(s, registry, *msgs, extra=()):
    async with FlowTester(flows_for(s, extra), registry) as t:
        for m in msgs:
            t.inject("s", copy.deepcopy(m))
        await t.idle()
        return t.outputs("s")[0], t


async def sorted_payload(registry, payload, **props):
    out, _ = await run(sort(**props), registry, {"payload": payload})
    return out[0]["payload"]


# ----- array property ----------------------------------------------------------------------------------------
async def test_sorts_an_array_ascending_in_place(registry):
    async with FlowTester(flows_for(sort()), registry) as t:
        sent = t.inject("s", {"payload": [3, 1, 2], "topic": "x"})
        await t.idle()
        out = t.outputs("s")[0]
        assert out == [{"payload": [1, 2, 3], "topic": "x", "_msgid": sent["_msgid"]}]


async def test_descending_order(registry):
    assert await sorted_payload(registry, [1, 3, 2], order="descending") == [3, 2, 1]


async def test_strings_compare_by_code_units(registry):
    assert await sorted_payload(registry, ["b", "a", "B", "10", "9"]) == ["10", "9", "B", "a", "b"]


async def test_mixed_values_compare_as_javascript(registry):
    # a number and a numeric string compare as numbers
    assert await sorted_payload(registry, [3, "10", 1, "2"]) == [1, "2", 3, "10"]
    # 2 and "2" are neither equal nor ordered; this is what Node-RED 4.1 gives for this input
    assert await sorted_payload(registry, [3, 1, "10", "2", 2]) == [1, 2, "2", 3, "10"]
    # null is 0, booleans are 0/1, text that is not a number is never greater nor smaller than a number
    assert await sorted_payload(registry, [True, None, -1, 2]) == [-1, None, True, 2]


async def test_as_number_compares_numeric_text(registry):
    assert await sorted_payload(registry, ["10", "9", "100", 1], as_num=True) == [1, "9", "10", "100"]
    assert await sorted_payload(registry, ["10", "9", "100", 1], as_num=True, order="descending") == [
        "100",
        "10",
        "9",
        1,
    ]


async def test_jsonata_key_per_element(registry):
    payload = [{"v": 3, "n": "c"}, {"v": 1, "n": "a"}, {"v": 2, "n": "b"}]
    out = await sorted_payload(registry, payload, msgKey="v", msgKeyType="jsonata")
    assert [e["n"] for e in out] == ["a", "b", "c"]
    out = await sorted_payload(
        registry, payload, msgKey="$string(n)", msgKeyType="jsonata", order="descending"
    )
    assert [e["n"] for e in out] == ["c", "b", "a"]


async def test_nested_target_property(registry):
    out, _ = await run(
        sort(target="a.b", order="descending"), registry, {"a": {"b": [1, 3, 2]}, "payload": [9, 1]}
    )
    assert out[0]["a"]["b"] == [3, 2, 1] and out[0]["payload"] == [9, 1]


async def test_non_array_target_sends_nothing(registry):
    out, _ = await run(sort(), registry, {"payload": "text"}, {"payload": {"a": 1}}, {"other": [2, 1]})
    assert out == []


async def test_jsonata_error_goes_to_catch(registry):
    catch = [node("c", "catch", [["co"]], scope=None), node("co", "junction", [[]])]
    out, t = await run(
        sort(msgKey="$number(v)", msgKeyType="jsonata"),
        registry,
        {"payload": [{"v": "x"}, {"v": "1"}]},
        extra=catch,
    )
    assert out == []
    assert t.outputs("co")[0][0]["error"]["message"].startswith("Invalid JSONata expression in sort node")


# ----- message sequences -------------------------------------------------------------------------------------
def sequence(values, pid="g", with_count=True, **more):
    msgs = []
    for i, v in enumerate(values):
        p = {"id": pid, "index": i}
        if with_count:
            p["count"] = len(values)
        msgs.append({"payload": v, "parts": p, **more})
    return msgs


async def test_sequence_is_held_then_resent_in_order_with_new_indexes(registry):
    msgs = sequence([3, 1, 2], topic="t")
    async with FlowTester(flows_for(sort(targetType="seq")), registry) as t:
        t.inject("s", msgs[0])
        t.inject("s", msgs[1])
        await t.idle()
        assert t.outputs("s")[0] == []
        t.inject("s", msgs[2])
        await t.idle()
        out = t.outputs("s")[0]
        assert [m["payload"] for m in out] == [1, 2, 3]
        assert [m["parts"] for m in out] == [{"id": "g", "index": i, "count": 3} for i in range(3)]
        assert {m["topic"] for m in out} == {"t"}


async def test_sequence_by_message_property_and_descending(registry):
    msgs = [
        {"payload": p, "prio": k, "parts": {"id": "g", "index": i, "count": 3}}
        for i, (p, k) in enumerate([("a", 2), ("b", 9), ("c", 5)])
    ]
    out, _ = await run(sort(targetType="seq", seqKey="prio", order="descending"), registry, *msgs)
    assert [m["payload"] for m in out] == ["b", "c", "a"]


async def test_sequence_by_jsonata_key(registry):
    msgs = sequence([{"k": 1}, {"k": 5}, {"k": 3}])
    out, _ = await run(sort(targetType="seq", seqKey="payload.k", seqKeyType="jsonata"), registry, *msgs)
    assert [m["payload"]["k"] for m in out] == [1, 3, 5]


async def test_sequence_count_may_come_with_a_later_message(registry):
    msgs = sequence(["b", "a"], with_count=False)
    msgs[1]["parts"]["count"] = 2
    out, _ = await run(sort(targetType="seq"), registry, *msgs)
    assert [m["payload"] for m in out] == ["a", "b"]


async def test_sequences_are_kept_apart_and_messages_without_parts_dropped(registry):
    msgs = [
        *sequence([2, 1], pid="g1")[:1],
        *sequence(["y", "x"], pid="g2"),
        {"payload": 7},
        sequence([2, 1], pid="g1")[1],
    ]
    out, _ = await run(sort(targetType="seq"), registry, *msgs)
    assert [m["payload"] for m in out] == ["x", "y", 1, 2]


async def test_missing_target_type_sorts_sequences_as_node_red(registry):
    s = sort()
    del s["targetType"]
    out, _ = await run(s, registry, {"payload": [2, 1]}, *sequence([2, 1]))
    assert [m["payload"] for m in out] == [1, 2]


async def test_done_fires_when_a_sequence_is_sent(registry):
    complete = [node("c", "complete", [["co"]], scope=["s"]), node("co", "junction", [[]])]
    msgs = sequence([2, 1])
    async with FlowTester(flows_for(sort(targetType="seq"), complete), registry) as t:
        t.inject("s", msgs[0])
        await t.idle()
        assert t.outputs("co")[0] == []
        t.inject("s", msgs[1])
        await t.idle()
        assert len(t.outputs("co")[0]) == 2


async def test_bad_jsonata_refuses_the_deploy(registry):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(flows_for(sort(msgKey="$$[", msgKeyType="jsonata")), registry):
            pass
    assert "Invalid JSONata expression in sort node" in str(info.value)


# ----- properties ------------------------------------------------------------------------------------------
def make_registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in default_registry().types():
        reg.register(cls, default_registry().origin(cls.type))
    return reg


REGISTRY = make_registry()
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
numbers = st.lists(st.integers(-1000, 1000) | st.floats(-1e6, 1e6, allow_nan=False), max_size=30)
words = st.lists(st.text(alphabet="abcXYZ019", max_size=5), max_size=30)


def run_sync(flows, msgs):
    async def scenario():
        async with FlowTester(flows, REGISTRY) as t:
            for m in msgs:
                t.inject("s", m)
            await t.idle()
            return t.outputs("s")[0]

    return asyncio.run(scenario())


@SETTINGS
@given(values=numbers | words, descending=st.booleans())
def test_property_array_sort_is_ordered_and_a_permutation(values, descending):
    order = "descending" if descending else "ascending"
    out = run_sync(flows_for(sort(order=order)), [{"payload": list(values)}])
    result = out[0]["payload"]
    assert Counter(map(repr, result)) == Counter(map(repr, values))
    pairs = list(zip(result, result[1:], strict=False))
    assert all((a >= b) if descending else (a <= b) for a, b in pairs)


@SETTINGS
@given(
    values=st.lists(st.integers(-100, 100), min_size=1, max_size=20), data=st.data(), descending=st.booleans()
)
def test_property_sequence_sort_is_ordered_and_a_permutation(values, data, descending):
    msgs = sequence(values)
    arrival = data.draw(st.permutations(msgs))
    order = "descending" if descending else "ascending"
    out = run_sync(flows_for(sort(targetType="seq", order=order)), arrival)
    result = [m["payload"] for m in out]
    assert sorted(result) == sorted(values)
    assert result == sorted(values, reverse=descending)
    assert [m["parts"]["index"] for m in out] == list(range(len(values)))
    assert {m["parts"]["count"] for m in out} == {len(values)}
