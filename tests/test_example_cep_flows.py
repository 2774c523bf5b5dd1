"""The CEP example flows in flows/ run end to end on the virtual clock: "device silent for 10 minutes" (absence
-> alarm raised, cleared when the device speaks again) and "temperature rising twice within a minute" (pattern
-> alert)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sofiaflow.runtime.core.services import ALARMS
from sofiaflow.runtime.data.alarms import AlarmQuery
from sofiaflow.runtime.testing import FlowTester

FLOWS = Path(__file__).resolve().parents[1] / "flows"
START_MS = 1_700_000_000_000  # the virtual clock's start


def load(name):
    return json.loads((FLOWS / name).read_text())


def debug_payloads(t, node_id):
    return [
        json.loads(d["msg"]) if d["format"].startswith("Object") else d["msg"]
        for d in t.debug
        if d["id"] == node_id
    ]


async def test_device_silent_for_ten_minutes_raises_an_alarm_and_its_next_message_clears_it():
    boiler, pump, events = "c1e9000000000002", "c1e9000000000003", "c1e9000000000013"
    async with FlowTester(load("device-silent.json"), virtual_time=True) as t:
        assert t.deployer.problems == []
        store = t.engine.services[ALARMS]
        await t.advance(240)
        t.node(pump).trigger()
        await t.advance(360)  # the boiler has said nothing for 10 minutes
        seen = debug_payloads(t, events)
        assert [(m["event"], m["payload"]["originator"], m["payload"]["status"]) for m in seen] == [
            ("created", "devices/boiler", "ACTIVE_UNACK")
        ]
        raised = seen[0]["payload"]
        assert (raised["type"], raised["severity"], raised["startTs"]) == (
            "device silent",
            "major",
            START_MS + 600_000,
        )
        assert raised["details"] == {
            "key": "devices/boiler",
            "state": "silent",
            "lastSeen": START_MS,
            "since": START_MS + 600_000,
        }
        # someone acknowledges it on the Alarms page: the flow hears it
        store.acknowledge(raised["id"], START_MS + 610_000, by="operator")
        await asyncio.sleep(0)
        await t.idle()
        t.node(boiler).trigger()  # the boiler speaks again: cleared
        await t.advance(240)  # the pump's ten minutes end at 840 s
        seen = debug_payloads(t, events)
        assert [(m["event"], m["payload"]["originator"], m["payload"]["status"]) for m in seen] == [
            ("created", "devices/boiler", "ACTIVE_UNACK"),
            ("acknowledged", "devices/boiler", "ACTIVE_ACK"),
            ("cleared", "devices/boiler", "CLEARED_ACK"),
            ("created", "devices/pump", "ACTIVE_UNACK"),
        ]
        assert seen[2]["payload"]["details"]["silentFor"] == 600
        active = store.list(AlarmQuery.parse(status="ACTIVE")).alarms
        assert [(a.type, a.originator) for a in active] == [("device silent", "devices/pump")]
        assert t.errors() == []


async def test_temperature_rising_twice_within_a_minute_sends_an_alert():
    s1_20, s1_22, s1_25, s2_30 = (f"c1e900000000010{i}" for i in (2, 3, 4, 5))
    rising = "c1e9000000000112"
    async with FlowTester(load("temperature-rising.json"), virtual_time=True) as t:
        assert t.deployer.problems == []
        for inject in (s1_20, s2_30, s1_22):
            t.node(inject).trigger()
            await t.advance(20)
        assert debug_payloads(t, rising) == []  # one rise so far
        t.node(s1_25).trigger()
        await t.idle()
        assert debug_payloads(t, rising) == ["temperature rising at s-1: 22 → 25 °C"]
        # a rise 61 s after the last one is alone again
        await t.advance(61)
        t.node(s1_20).trigger()
        t.node(s1_25).trigger()
        await t.advance(61)
        t.node(s1_20).trigger()
        t.node(s1_22).trigger()
        await t.idle()
        assert len(debug_payloads(t, rising)) == 1
        assert t.errors() == []
