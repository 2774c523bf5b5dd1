"""The example flow in flows/ runs end to end: inject, python function, switch, template, change,
link, join, catch and debug, with error routing to catch."""

from __future__ import annotations

import json
from pathlib import Path

from sofiaflow.runtime.testing import FlowTester

FLOW = json.loads((Path(__file__).resolve().parents[1] / "flows" / "temperature-alerts.json").read_text())
TAB = "a1a1000000000001"
HOT, COLD, BROKEN = "a1a1000000000002", "a1a1000000000003", "a1a1000000000004"


async def test_temperature_alerts_flow_end_to_end(registry):
    async with FlowTester(FLOW, registry) as t:
        assert t.deployer.problems == []
        flow = t.deployer.scopes[TAB].context
        t.node(HOT).trigger()
        await t.idle()
        assert flow.get("lastAlert") == "ALERT s-1: 31 °C (87.8 °F)"
        assert flow.get("lastPair") is None  # the join waits for a second alert

        t.node(COLD).trigger()
        await t.idle()
        assert flow.get("lastNormal") == {"sensor": "s-2", "celsius": 12, "fahrenheit": 53.6}

        t.node(BROKEN).trigger()
        await t.idle()
        assert flow.get("lastError").startswith("TypeError")
        assert "line 2" in flow.get("lastError")

        t.node(HOT).trigger()
        await t.idle()
        assert flow.get("lastPair") == ["ALERT s-1: 31 °C (87.8 °F)"] * 2

        readings = [d for d in t.debug if d["id"] == "a1a1000000000016"]
        assert [json.loads(d["msg"]) if d["format"] == "Object" else d["msg"] for d in readings] == [
            "ALERT s-1: 31 °C (87.8 °F)",
            {"sensor": "s-2", "celsius": 12, "fahrenheit": 53.6},
            "ALERT s-1: 31 °C (87.8 °F)",
        ]
