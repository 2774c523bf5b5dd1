"""rbe ("filter") node: report by exception, dead/narrow bands, topics, reset (Node-RED rbe.js)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def rbe(func="rbe", gap="", start="", inout="out", septopics=True, property="payload", topi="topic"):
    return {
        "id": "f",
        "type": "rbe",
        "z": "t1",
        "name": "",
        "x": 1,
        "y": 1,
        "wires": [[]],
        "func": func,
        "gap": gap,
        "start": start,
        "inout": inout,
        "septopics": septopics,
        "property": property,
        "topi": topi,
    }


async def run(registry, node, msgs):
    async with FlowTester([TAB, node], registry) as t:
        for m in msgs:
            t.inject("f", m)
        await t.idle()
        return t.outputs("f")[0], t


async def passed(registry, node, values, topic=None):
    msgs = [{"payload": v} if topic is None else {"payload": v, "topic": topic} for v in values]
    out, _ = await run(registry, node, msgs)
    return [m["payload"] for m in out]


# ----- rbe / rbei --------------------------------------------------------------------------------


async def test_rbe_passes_only_changes(registry):
    assert await passed(registry, rbe(), [1, 1, 2, 2, "2", 1, True, True, 1]) == [1, 2, "2", 1, True, 1]


async def test_rbei_ignores_the_first_value(registry):
    assert await passed(registry, rbe("rbei"), [5, 5, 6, 6, 5]) == [6, 5]


async def test_rbe_compares_objects_deeply(registry):
    values = [
        {"a": [1, 2]},
        {"a": [1, 2]},
        {"a": [1, 3]},
        [1],
        [1],
        [True],
        b"ab",
        b"ab",
        bytearray(b"ab"),
        None,
        None,
        {},
    ]
    assert await passed(registry, rbe(), values) == [
        {"a": [1, 2]},
        {"a": [1, 3]},
        [1],
        [True],
        b"ab",
        None,
        {},
    ]


async def test_rbe_first_empty_object_is_not_sent(registry):
    # Node-RED seeds the previous value of an object with {}: an empty first object equals it
    assert await passed(registry, rbe(), [{}, {}, {"a": 1}]) == [{"a": 1}]


async def test_rbe_keeps_a_copy_so_mutation_after_sending_is_seen(registry):
    shared = {"n": 1}
    async with FlowTester([TAB, rbe()], registry) as t:
        t.inject("f", {"payload": shared})
        await t.idle()
        shared["n"] = 2
        t.inject("f", {"payload": shared})
        await t.idle()
        assert len(t.outputs("f")[0]) == 2


async def test_topics_are_separate_unless_septopics_is_false(registry):
    msgs = [
        {"payload": 1, "topic": "a"},
        {"payload": 1, "topic": "b"},
        {"payload": 1, "topic": "a"},
        {"payload": 2, "topic": "b"},
    ]
    out, _ = await run(registry, rbe(), msgs)
    assert [(m["topic"], m["payload"]) for m in out] == [("a", 1), ("b", 1), ("b", 2)]
    out, _ = await run(registry, rbe(septopics=False), msgs)
    assert [(m["topic"], m["payload"]) for m in out] == [("a", 1), ("b", 2)]


async def test_topi_names_the_property_that_keys_state(registry):
    msgs = [
        {"payload": 1, "device": {"id": "x"}},
        {"payload": 1, "device": {"id": "y"}},
        {"payload": 1, "device": {"id": "x"}},
    ]
    out, _ = await run(registry, rbe(topi="device.id"), msgs)
    assert [m["device"]["id"] for m in out] == ["x", "y"]


async def test_other_property_and_missing_value_is_ignored(registry):
    msgs = [{"data": 1}, {"data": 1}, {"payload": 5}, {"data": 2}]
    out, _ = await run(registry, rbe(property="data"), msgs)
    assert [m.get("data") for m in out] == [1, 2]


async def test_reset_clears_one_topic_or_all(registry):
    msgs = [
        {"payload": 1, "topic": "a"},
        {"payload": 1, "topic": "b"},
        {"reset": True, "topic": "a"},
        {"payload": 1, "topic": "a"},
        {"payload": 1, "topic": "b"},
        {"reset": True},
        {"payload": 1, "topic": "a"},
        {"payload": 1, "topic": "b"},
    ]
    out, _ = await run(registry, rbe(), msgs)
    assert [m["topic"] for m in out] == ["a", "b", "a", "a", "b"]


async def test_reset_with_payload_passes_that_payload(registry):
    out, _ = await run(registry, rbe(), [{"payload": 1}, {"payload": 1, "reset": True}])
    assert len(out) == 2


# ----- bands -------------------------------------------------------------------------------------


async def test_deadband_passes_changes_bigger_than_the_gap(registry):
    assert await passed(registry, rbe("deadband", gap="10"), [50, 55, 60, 61, 49, 55]) == [50, 61, 49]


async def test_deadband_eq_also_passes_changes_equal_to_the_gap(registry):
    assert await passed(registry, rbe("deadbandEq", gap="10"), [50, 55, 60, 70, 79]) == [50, 60, 70]


async def test_deadband_compare_with_last_input(registry):
    # inout "in": compare with the previous input, even when it was blocked
    assert await passed(registry, rbe("deadband", gap="10", inout="in"), [50, 58, 66, 80]) == [50, 80]
    assert await passed(registry, rbe("deadband", gap="10"), [50, 58, 66, 80]) == [50, 66, 80]


async def test_deadband_percentage_gap(registry):
    assert await passed(registry, rbe("deadband", gap="10%"), [100, 105, 111, 120, 123]) == [100, 111, 123]


async def test_narrowband_blocks_big_jumps(registry):
    assert await passed(registry, rbe("narrowband", gap="10"), [50, 55, 80, 65, 66]) == [50, 55, 65, 66]
    # narrowbandEq also blocks changes equal to the gap
    assert await passed(registry, rbe("narrowbandEq", gap="10"), [50, 60, 55]) == [50, 55]


async def test_narrowband_start_value(registry):
    assert await passed(registry, rbe("narrowband", gap="5", start="100"), [50, 98, 99]) == [98, 99]


async def test_numeric_strings_work_and_non_numbers_warn(registry):
    out, t = await run(
        registry, rbe("deadband", gap="1"), [{"payload": "10 degrees"}, {"payload": "abc"}, {"payload": "12"}]
    )
    assert [m["payload"] for m in out] == ["10 degrees", "12"]
    assert any("no number" in str(e.get("msg")) for e in t.logs if e["level"] == "warn")


@pytest.mark.parametrize(
    "bad",
    [
        {"func": "sometimes"},
        {"func": "deadband", "gap": "lots"},
        {"inout": "sideways"},
        {"func": "narrowband", "start": "x"},
    ],
)
async def test_bad_config_refuses_deploy(registry, bad):
    with pytest.raises(FlowValidationError):
        async with FlowTester([TAB, rbe(**bad)], registry):
            pass


# ----- properties --------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(0, 3) | st.sampled_from(["a", "b"]), max_size=15))
def test_rbe_output_has_no_consecutive_duplicates(registry, values):
    out = asyncio.run(passed(registry, rbe(), values))
    expected = [
        v for i, v in enumerate(values) if i == 0 or values[i - 1] != v or type(values[i - 1]) is not type(v)
    ]
    assert out == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.integers(-100, 100), min_size=1, max_size=15), gap=st.integers(0, 30))
def test_deadband_output_steps_exceed_the_gap(registry, values, gap):
    out = asyncio.run(passed(registry, rbe("deadband", gap=str(gap)), values))
    assert out[0] == values[0]
    assert all(abs(b - a) > gap for a, b in zip(out, out[1:], strict=False))
