"""alarm node: raise, de-duplication while active, escalation, clear, a new alarm after a clear, the events out
(also for acknowledgements and clears made by people), config and message errors; the store's status model
against a small reference for random sequences (hypothesis)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.core.services import ALARMS
from sofiaflow.runtime.data.alarms import (
    SEVERITIES,
    AlarmQuery,
    AlarmStore,
    AlarmValidationError,
    memory_store,
)
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
START_MS = 1_700_000_000_000  # the virtual clock's start


def alarm(**props):
    base = {"id": "a", "type": "alarm", "z": "t1", "name": "", "wires": [[]], "x": 1, "y": 1}
    base.update(props)
    return base


def events(t, node="a"):
    return [
        (m["event"], m["payload"]["status"], m["payload"]["severity"], m["payload"]["count"])
        for m in t.outputs(node)[0]
    ]


async def test_raise_counts_duplicates_while_active_and_keeps_first_and_last_time():
    async with FlowTester([TAB, alarm(details="payload")], virtual_time=True) as t:
        t.inject("a", {"device": "boiler", "payload": {"temp": 90}})
        await t.advance(30)
        t.inject("a", {"device": "boiler", "payload": {"temp": 95}, "topic": "x"})
        await t.idle()
        assert events(t) == [("created", "ACTIVE_UNACK", "major", 1), ("updated", "ACTIVE_UNACK", "major", 2)]
        first, second = (m["payload"] for m in t.outputs("a")[0])
        assert first["id"] == second["id"]
        assert (second["startTs"], second["endTs"]) == (START_MS, START_MS + 30_000)
        assert second["details"] == {"temp": 95}
        assert (second["type"], second["originator"]) == ("device silent", "boiler")
        assert t.outputs("a")[0][1]["topic"] == "x"  # the input message goes on
        page = t.engine.services[ALARMS].list()
        assert page.total == 1 and page.alarms[0].count == 2
        assert t.errors() == []


async def test_originators_and_types_are_separate_alarms_and_topic_is_the_fallback():
    flows = [TAB, alarm(alarmType="kind", alarmTypeType="msg")]
    async with FlowTester(flows, virtual_time=True) as t:
        t.inject("a", {"topic": "pump", "kind": "overheat"})
        t.inject("a", {"topic": "pump", "kind": "silent"})
        t.inject("a", {"device": "boiler", "topic": "pump", "kind": "silent"})
        await t.idle()
        assert [e[0] for e in events(t)] == ["created"] * 3
        originators = sorted((a.type, a.originator) for a in t.engine.services[ALARMS].list().alarms)
        assert originators == [("overheat", "pump"), ("silent", "boiler"), ("silent", "pump")]


async def test_a_new_severity_escalates_and_unacknowledges_and_a_lower_one_keeps_the_acknowledgement():
    flows = [TAB, alarm(severity="level", severityType="msg")]
    async with FlowTester(flows, virtual_time=True) as t:
        store = t.engine.services[ALARMS]
        t.inject("a", {"device": "d", "level": "minor"})
        await t.idle()
        alarm_id = t.outputs("a")[0][0]["payload"]["id"]
        store.acknowledge(alarm_id, START_MS, by="ops")
        await asyncio.sleep(0)
        await t.idle()
        t.inject("a", {"device": "d", "level": "critical"})
        await t.idle()
        store.acknowledge(alarm_id, START_MS, by="ops")
        await asyncio.sleep(0)
        await t.idle()
        t.inject("a", {"device": "d", "level": "Warning"})
        await t.idle()
        assert events(t) == [
            ("created", "ACTIVE_UNACK", "minor", 1),
            ("acknowledged", "ACTIVE_ACK", "minor", 1),
            ("severity changed", "ACTIVE_UNACK", "critical", 2),
            ("acknowledged", "ACTIVE_ACK", "critical", 2),
            ("severity changed", "ACTIVE_ACK", "warning", 3),
        ]
        changes = [m.get("previousSeverity") for m in t.outputs("a")[0] if m["event"] == "severity changed"]
        assert changes == ["minor", "critical"]


async def test_clear_ends_the_alarm_and_raising_again_makes_a_new_one():
    flows = [TAB, alarm(action="msg")]
    async with FlowTester(flows, virtual_time=True) as t:
        t.inject("a", {"device": "d", "alarm": "clear"})  # nothing active: nothing happens
        await t.idle()
        assert t.outputs("a")[0] == []
        t.inject("a", {"device": "d", "alarm": "raise"})
        await t.advance(60)
        t.inject("a", {"device": "d", "alarm": "clear"})
        await t.advance(60)
        t.inject("a", {"device": "d", "alarm": "clear"})  # cleared already
        t.inject("a", {"device": "d", "alarm": "raise"})
        await t.idle()
        assert events(t) == [
            ("created", "ACTIVE_UNACK", "major", 1),
            ("cleared", "CLEARED_UNACK", "major", 1),
            ("created", "ACTIVE_UNACK", "major", 1),
        ]
        first, cleared, again = (m["payload"] for m in t.outputs("a")[0])
        assert cleared["id"] == first["id"] != again["id"]
        assert cleared["clearTs"] == START_MS + 60_000
        assert again["startTs"] == START_MS + 120_000
        assert t.engine.services[ALARMS].list(AlarmQuery.parse(status="CLEARED")).total == 1


async def test_people_acknowledging_and_clearing_reach_the_flow_of_the_node_that_created_the_alarm():
    flows = [
        TAB,
        alarm(id="raise", wires=[["events"]]),
        alarm(id="clear", action="clear"),
        alarm(id="events"),
    ]
    flows[-1] = {
        "id": "events",
        "type": "debug",
        "z": "t1",
        "complete": "true",
        "targetType": "full",
        "wires": [],
    }
    async with FlowTester(flows, virtual_time=True) as t:
        store = t.engine.services[ALARMS]
        t.inject("raise", {"device": "d"})
        await t.idle()
        alarm_id = t.outputs("raise")[0][0]["payload"]["id"]
        t.clear()
        store.acknowledge(alarm_id, START_MS + 5, by="alice")
        store.acknowledge(alarm_id, START_MS + 6, by="alice")  # once is enough
        store.clear(alarm_id, START_MS + 7, by="bob")
        await asyncio.sleep(0)  # the store tells the node through the event loop
        await t.idle()
        got = t.outputs("raise")[0]
        assert [(m["event"], m["topic"], m["payload"]["status"]) for m in got] == [
            ("acknowledged", "d", "ACTIVE_ACK"),
            ("cleared", "d", "CLEARED_ACK"),
        ]
        assert (got[1]["payload"]["ackBy"], got[1]["payload"]["clearedBy"]) == ("alice", "bob")
        assert t.outputs("clear")[0] == []
        # a clear by another alarm node goes out of that node only
        t.inject("raise", {"device": "e"})
        t.inject("clear", {"device": "e"})
        await t.idle()
        assert [m["event"] for m in t.outputs("raise")[0][2:]] == ["created"]
        assert [m["event"] for m in t.outputs("clear")[0]] == ["cleared"]


async def test_bad_messages_fail_naming_what():
    flows = [TAB, alarm(action="msg", severity="sev", severityType="msg", originator="payload.dev")]
    async with FlowTester(flows, virtual_time=True) as t:
        t.inject("a", {"alarm": "boom", "payload": {"dev": "x"}})
        t.inject("a", {"alarm": "raise", "payload": {}})
        t.inject("a", {"alarm": "raise", "payload": {"dev": "x"}, "sev": "huge"})
        await t.idle()
        text = [str(e["msg"]) for e in t.errors()]
        assert "msg.alarm: expected 'raise' or 'clear', got 'boom'" in text[0]
        assert "originator: msg.payload.dev is empty" in text[1]
        assert "severity: msg.sev is 'huge'" in text[2]
        assert t.outputs("a")[0] == []


async def test_details_must_be_json_data():
    async with FlowTester([TAB, alarm(details="payload")], virtual_time=True) as t:
        t.inject("a", {"device": "d", "payload": b"raw"})
        t.inject("a", {"device": "d", "payload": {"big": "x" * 70_000}})
        t.inject("a", {"device": "d", "payload": float("nan")})
        await t.idle()
        text = [str(e["msg"]) for e in t.errors()]
        assert len(text) == 3 and all("details: " in m for m in text), text
        assert "at most 65536 bytes" in text[1]
        assert t.engine.services[ALARMS].list().total == 0


@pytest.mark.parametrize(
    ("props", "problem"),
    [
        ({"action": "shout"}, "Input should be 'raise', 'clear' or 'msg'"),
        ({"severity": "huge"}, "severity: expected one of critical"),
        ({"alarmType": " "}, "alarmType: give the alarm's type"),
        ({"originatorType": "str"}, "originatorType: expected 'msg'"),
    ],
)
async def test_bad_config_refuses_the_deploy(props, problem):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester([TAB, alarm(**props)]):
            pass
    assert problem in str(info.value.problems)


def test_query_parameters_are_checked_naming_the_field():
    for kwargs, field in (
        ({"status": "OPEN"}, "status"),
        ({"severity": "major,huge"}, "severity"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "x"}, "offset"),
    ):
        with pytest.raises(AlarmValidationError) as info:
            AlarmQuery.parse(**kwargs)
        assert info.value.field == field


ops = st.lists(
    st.tuples(
        st.sampled_from(["raise", "clear", "ack", "clear-id"]),
        st.sampled_from(["d1", "d2"]),
        st.sampled_from(SEVERITIES),
    ),
    max_size=30,
)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_store_follows_the_status_model(sequence):
    """A reference: per originator the list of alarms, the last one possibly active; ack/clear by id act on the
    newest alarm of the originator."""
    store = memory_store()
    ref: dict[str, list[dict]] = {"d1": [], "d2": []}
    for now, (op, who, severity) in enumerate(sequence):
        mine = ref[who]
        active = mine[-1] if mine and not mine[-1]["cleared"] else None
        if op == "raise":
            store.raise_alarm("t", who, severity, now)
            if active is None:
                mine.append({"cleared": False, "ack": False, "count": 1, "severity": severity})
            else:
                if SEVERITIES.index(severity) < SEVERITIES.index(active["severity"]):
                    active["ack"] = False
                active.update(count=active["count"] + 1, severity=severity)
        elif op == "clear":
            store.clear_active("t", who, now)
            if active is not None:
                active["cleared"] = True
        elif mine:
            newest = store.list(AlarmQuery.parse(originator=who, limit=1)).alarms[0]
            if op == "ack":
                store.acknowledge(newest.id, now)
                mine[-1]["ack"] = True
            else:
                store.clear(newest.id, now)
                mine[-1]["cleared"] = True
    for who, expected in ref.items():
        got = store.list(AlarmQuery.parse(originator=who, limit=1000)).alarms[::-1]
        assert [(a.cleared, a.acknowledged, a.count, a.severity) for a in got] == [
            (e["cleared"], e["ack"], e["count"], e["severity"]) for e in expected
        ]
        assert sum(not a.cleared for a in got) <= 1


def test_two_stores_on_one_database_keep_one_active_alarm_per_key(tmp_path):
    """As two cluster workers would: each its own store (and lock) on the same database, raising the same
    alarm at the same time."""
    import threading

    from sofiaflow.runtime.data.config_db import connect

    url = f"sqlite:///{tmp_path / 'alarms.db'}"
    stores = [AlarmStore(connect(url)) for _ in range(2)]
    errors: list[BaseException] = []

    def raise_many(store):
        try:
            for i in range(100):
                store.raise_alarm("t", "dev", "major", i, owner="ana")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=raise_many, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    alarms = stores[0].list(AlarmQuery.parse(status="ANY")).alarms
    assert [(a.count, a.cleared) for a in alarms] == [(200, False)]
    stores[1].clear_active("t", "dev", 500, owner="ana")
    stores[0].raise_alarm("t", "dev", "minor", 600, owner="ana")
    assert stores[1].active("t", "dev", owner="ana").count == 1
    assert stores[0].active("t", "dev", owner="bob") is None
