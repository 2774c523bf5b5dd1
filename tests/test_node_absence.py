"""absence node: alarms for keys silent for the timeout and recoveries, against a brute-force reference for
random streams (several keys, given and learned keys, event times out of order within a bound, duplicate
times); the key bound, state across a `nodes` redeploy, config errors."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester
from tests.cep_pattern_reference import Arrival, absence_reports

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
START = 1_700_000_000  # the virtual clock's start, in seconds


def absence(**props):
    base = {"id": "a", "type": "absence", "z": "t1", "name": "", "wires": [[], []], "x": 1, "y": 1}
    base.update(props)
    return base


def warnings(t):
    return [str(e.get("msg")) for e in t.logs if e["level"] == "warn"]


@st.composite
def arrivals(draw, lateness):
    n = draw(st.integers(0, 25))
    clock, out = 0, []
    for _ in range(n):
        clock += draw(st.integers(0, 4))
        back = draw(st.integers(0, lateness))
        out.append(Arrival(draw(st.sampled_from("abcd")), clock, clock - back))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    timeout=st.integers(1, 8),
    given_keys=st.lists(st.sampled_from("abcd"), unique=True, max_size=2),
    learn=st.booleans(),
    event_time=st.booleans(),
)
async def test_agrees_with_the_brute_force_reference(data, timeout, given_keys, learn, event_time):
    if not learn and not given_keys:
        given_keys = ["a"]
    stream = data.draw(arrivals(3 if event_time else 0))
    node = absence(timeout=timeout, keys=given_keys, learn=learn, timeProperty="time" if event_time else "")
    end = (stream[-1].clock if stream else 0) + timeout + 5
    async with FlowTester([TAB, node], virtual_time=True) as t:
        now = 0
        for a in stream:
            await t.advance(a.clock - now)
            now = a.clock
            t.inject("a", {"topic": a.key, "time": (START + a.time) * 1000})
        await t.advance(end - now)
        alarms = sorted((m["topic"], m["payload"]["since"] // 1000 - START) for m in t.outputs("a")[0])
        recoveries = sorted(
            (m["topic"], m["payload"]["lastSeen"] // 1000 - START, m["payload"]["silentFor"])
            for m in t.outputs("a")[1]
        )
        assert (alarms, recoveries) == absence_reports(stream, 0, end, timeout, given_keys, learn)
        assert all(m["payload"]["state"] == "silent" for m in t.outputs("a")[0])
        assert t.errors() == []


async def test_a_silent_device_alarms_once_and_recovers():
    node = absence(timeout=600, keys=["boiler"], recovery=True)
    async with FlowTester([TAB, node], virtual_time=True) as t:
        await t.advance(300)
        t.inject("a", {"topic": "pump", "payload": 1})
        await t.advance(300)  # boiler: 600 s since the start
        assert [m["payload"]["key"] for m in t.outputs("a")[0]] == ["boiler"]
        await t.advance(600)  # pump: 600 s since its message; boiler does not alarm again
        alarms = t.outputs("a")[0]
        assert [m["topic"] for m in alarms] == ["boiler", "pump"]
        assert alarms[1]["payload"] == {
            "key": "pump",
            "state": "silent",
            "lastSeen": (START + 300) * 1000,
            "since": (START + 900) * 1000,
        }
        t.inject("a", {"topic": "pump", "payload": 2})
        await t.idle()
        assert t.outputs("a")[1][0]["payload"] == {
            "key": "pump",
            "state": "recovered",
            "lastSeen": (START + 1200) * 1000,
            "silentFor": 900,
        }
        assert t.node("a").last_status == {"fill": "red", "shape": "dot", "text": "1 silent of 2"}


async def test_without_recovery_the_second_output_stays_empty_and_unknown_keys_are_ignored():
    node = absence(timeout=10, keys=["x"], learn=False, recovery=False)
    async with FlowTester([TAB, node], virtual_time=True) as t:
        t.inject("a", {"topic": "stranger"})
        await t.advance(11)
        t.inject("a", {"topic": "x"})
        await t.advance(5)
        assert [m["topic"] for m in t.outputs("a")[0]] == ["x"]
        assert t.outputs("a")[1] == []


async def test_learning_past_max_keys_forgets_the_least_recent_learned_key():
    node = absence(timeout=10, keys=["fixed"], maxKeys=2)
    async with FlowTester([TAB, node], virtual_time=True) as t:
        t.inject("a", {"topic": "k1"})
        t.inject("a", {"topic": "k2"})  # k1 is forgotten, never "fixed"
        await t.advance(11)
        assert sorted(m["topic"] for m in t.outputs("a")[0]) == ["fixed", "k2"]
        assert t.node("a").dropped_keys == 1
        assert any("maxKeys=2" in w for w in warnings(t))


async def test_watches_survive_a_nodes_redeploy_of_other_nodes():
    other = {"id": "j", "type": "junction", "z": "t1", "wires": [[]], "x": 1, "y": 1, "name": "before"}
    flows = [TAB, absence(timeout=60), other]
    async with FlowTester(flows, virtual_time=True) as t:
        t.inject("a", {"topic": "dev"})
        await t.advance(30)
        changed = copy.deepcopy(flows)
        changed[-1]["name"] = "after"
        await t.deploy(changed, "nodes")
        await t.advance(31)
        assert [m["topic"] for m in t.outputs("a")[0]] == ["dev"]


@pytest.mark.parametrize(
    "props, needle",
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": "soon"}, "timeout"),
        ({"maxKeys": 1, "keys": ["a", "b"]}, "maxKeys"),
        ({"learn": False, "keys": []}, "keys"),
        ({"key": "payload["}, "key"),
        ({"keyType": "jsonata", "key": "$$$("}, "key"),
    ],
)
async def test_bad_config_refuses_the_deploy(props, needle):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester([TAB, absence(**props)]):
            pass
    assert needle in str(info.value)
