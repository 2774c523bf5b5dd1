"""pattern node: A then B within T and N matching within T per key, against a brute-force reference for random
streams (several keys, out of order within the lateness bound, duplicate times); late events, the arrival-time
clock, bounds on keys and partial matches, state across a `nodes` redeploy, config errors."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester
from tests.cep_pattern_reference import Event, pattern_matches

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
START = 1_700_000_000  # the virtual clock's start, in seconds


def pattern(**props):
    base = {"id": "p", "type": "pattern", "z": "t1", "name": "", "wires": [[]], "x": 1, "y": 1}
    base.update(props)
    return base


def ms(seconds):
    return (START + seconds) * 1000


GTE3 = [{"property": "payload", "t": "gte", "v": "3", "vt": "num"}]
RISING = [{"property": "payload", "t": "gt", "vt": "prev"}]
CONDITIONS = {
    # name: (node spec, reference)
    "gte3": (GTE3, lambda m, p: m["payload"] >= 3),
    "lt2": ("payload < 2", lambda m, p: m["payload"] < 2),
    "rising": (RISING, lambda m, p: p is not None and m["payload"] > p["payload"]),
    "falling": (
        "$exists($prev) and payload < $prev.payload",
        lambda m, p: p is not None and m["payload"] < p["payload"],
    ),
    "any": ([], lambda m, p: True),
}


def matches_of(t):
    return [(m["pattern"]["key"], [e["time"] for e in m["pattern"]["events"]]) for m in t.outputs("p")[0]]


@st.composite
def streams(draw, lateness=3):
    """Events whose time is never more than `lateness` before the latest time sent so far."""
    n = draw(st.integers(0, 30))
    now, out = 0, []
    for _ in range(n):
        now += draw(st.integers(0, 3))
        back = draw(st.integers(0, lateness))
        out.append(Event(draw(st.sampled_from("abc")), now - back, draw(st.integers(0, 5))))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=streams(),
    mode=st.sampled_from(["sequence", "count"]),
    names=st.tuples(st.sampled_from(sorted(CONDITIONS)), st.sampled_from(sorted(CONDITIONS))),
    within=st.integers(1, 6),
    count=st.integers(1, 4),
    max_pending=st.sampled_from([1, 2, 100]),
)
async def test_agrees_with_the_brute_force_reference(events, mode, names, within, count, max_pending):
    first, then = CONDITIONS[names[0]], CONDITIONS[names[1]]
    node = pattern(
        mode=mode,
        first=first[0],
        then=then[0],
        count=count,
        within=within,
        timeProperty="time",
        lateness=3,
        maxPending=max_pending,
    )
    async with FlowTester([TAB, node], virtual_time=True) as t:
        for e in events:
            t.inject("p", {"topic": e.key, "payload": e.payload, "time": ms(e.time)})
        await t.advance(4)
        expected = pattern_matches(events, mode, within, first[1], then[1], count, max_pending)
        assert matches_of(t) == [(k, [ms(x) for x in times]) for k, times in expected]
        assert t.errors() == [] and t.node("p").late == 0


async def test_a_then_b_within_t_on_the_arrival_clock():
    node = pattern(first=GTE3, then="payload < 2", within=60)
    async with FlowTester([TAB, node], virtual_time=True) as t:
        t.inject("p", {"topic": "d1", "payload": 5})
        await t.advance(30)
        t.inject("p", {"topic": "d2", "payload": 1})  # another key: no match
        t.inject("p", {"topic": "d1", "payload": 1})
        await t.advance(30)
        t.inject("p", {"topic": "d2", "payload": 4})
        await t.advance(61)
        t.inject("p", {"topic": "d2", "payload": 0})  # too late for the A 61 s before
        await t.idle()
        out = t.outputs("p")[0]
        assert [(m["pattern"]["key"], m["payload"]) for m in out] == [("d1", 1)]
        assert out[0]["pattern"]["events"] == [{"time": ms(0), "payload": 5}, {"time": ms(30), "payload": 1}]
        assert out[0]["pattern"]["mode"] == "sequence"


async def test_count_keyed_by_a_payload_path_and_iso_times():
    node = pattern(mode="count", count=3, first=[], within=10, key="payload.dev", timeProperty="payload.at")
    async with FlowTester([TAB, node], virtual_time=True) as t:
        for second in (0, 4, 9, 20):
            t.inject("p", {"payload": {"dev": 7, "at": f"2024-01-01T00:00:{second:02d}Z"}})
        await t.idle()
        out = t.outputs("p")[0]
        assert len(out) == 1 and out[0]["pattern"]["key"] == "7"
        assert [e["payload"]["at"][-3:] for e in out[0]["pattern"]["events"]] == ["00Z", "04Z", "09Z"]


async def test_events_later_than_the_bound_are_dropped_with_a_warning_and_counted():
    node = pattern(mode="count", count=2, first=[], within=100, timeProperty="time", lateness=2)
    async with FlowTester([TAB, node], virtual_time=True) as t:
        t.inject("p", {"topic": "a", "time": ms(10)})
        t.inject("p", {"topic": "a", "time": ms(20)})  # releases the event at 10
        t.inject("p", {"topic": "a", "time": ms(5)})  # before what was released: late
        await t.idle()
        assert t.node("p").late == 1
        assert any("late event" in str(e.get("msg")) for e in t.logs if e["level"] == "warn")
        await t.advance(3)  # the quiet clock releases the rest
        assert [m["pattern"]["events"][0]["time"] for m in t.outputs("p")[0]] == [ms(10)]


async def test_key_and_pending_bounds_drop_the_oldest_with_a_warning():
    node = pattern(first=[], then="payload = 'b'", within=100, maxKeys=2, maxPending=2)
    async with FlowTester([TAB, node], virtual_time=True) as t:
        for payload in ("a1", "a2", "a3"):
            t.inject("p", {"topic": "k", "payload": payload})
        t.inject("p", {"topic": "x", "payload": "a"})
        t.inject("p", {"topic": "y", "payload": "a"})  # a third key: "k", the least recent, goes
        t.inject("p", {"topic": "x", "payload": "b"})
        t.inject("p", {"topic": "k", "payload": "b"})  # k was forgotten: nothing pending (and y goes)
        await t.idle()
        n = t.node("p")
        assert (n.dropped_pending, n.dropped_keys) == (1, 2)
        assert [m["pattern"]["key"] for m in t.outputs("p")[0]] == ["x"]
        warnings = [str(e.get("msg")) for e in t.logs if e["level"] == "warn"]
        assert any("maxPending=2" in w for w in warnings) and any("maxKeys=2" in w for w in warnings)
        assert "dropped 2 keys / 1 partial" in n.last_status["text"]


async def test_pending_partial_match_survives_a_nodes_redeploy_of_other_nodes():
    other = {"id": "j", "type": "junction", "z": "t1", "wires": [[]], "x": 1, "y": 1, "name": "before"}
    flows = [TAB, pattern(first=GTE3, then="payload < 2", within=60), other]
    async with FlowTester(flows, virtual_time=True) as t:
        t.inject("p", {"topic": "d", "payload": 9})
        await t.idle()
        changed = copy.deepcopy(flows)
        changed[-1]["name"] = "after"
        await t.deploy(changed, "nodes")
        t.inject("p", {"topic": "d", "payload": 0})
        await t.idle()
        assert [m["pattern"]["key"] for m in t.outputs("p")[0]] == ["d"]


async def test_a_message_without_key_or_time_fails_naming_the_property():
    node = pattern(first=[], then=[], timeProperty="time")
    catch = {"id": "c", "type": "catch", "z": "t1", "scope": None, "wires": [[]], "x": 1, "y": 1}
    async with FlowTester([TAB, node, catch], virtual_time=True) as t:
        t.inject("p", {"payload": 1, "time": 1})
        t.inject("p", {"topic": "a", "time": "yesterday"})
        await t.idle()
        texts = [m["error"]["message"] for m in t.outputs("c")[0]]
        assert "no 'topic'" in texts[0] and "msg.time" in texts[1] and "yesterday" in texts[1]


@pytest.mark.parametrize(
    "props, needle",
    [
        ({"mode": "window"}, "mode"),
        ({"within": 0}, "within"),
        ({"mode": "count", "count": 0}, "count"),
        ({"lateness": -1}, "lateness"),
        ({"maxPending": 0}, "maxPending"),
        ({"first": "payload >"}, "first"),
        ({"then": [{"t": "near"}]}, "then[0]"),
        ({"first": [{"t": "gt", "v": "x", "vt": "num"}]}, "first[0]"),
        ({"first": [{"t": "regex", "v": "("}]}, "regular expression"),
        ({"key": "a..b"}, "key"),
        ({"keyType": "env"}, "keyType"),
        ({"first": 3}, "first"),
    ],
)
async def test_bad_config_refuses_the_deploy(props, needle):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester([TAB, pattern(**props)]):
            pass
    assert needle in str(info.value)
