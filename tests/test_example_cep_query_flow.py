"""The example flow "temperature rising twice within a minute" written as a cep query (flows/
temperature-rising-query.json) runs end to end on the virtual clock: injects -> cep query -> change -> debug."""

from __future__ import annotations

import json
from pathlib import Path

from sofiaflow.runtime.testing import FlowTester

FLOW = Path(__file__).resolve().parents[1] / "flows" / "temperature-rising-query.json"


def alerts(t) -> list[str]:
    return [d["msg"] for d in t.debug if d["id"] == "c1e9000000000212"]


async def test_temperature_rising_twice_within_a_minute_sends_an_alert():
    s1_20, s1_22, s1_25, s2_30 = (f"c1e900000000020{i}" for i in (2, 3, 4, 5))
    async with FlowTester(json.loads(FLOW.read_text()), virtual_time=True) as t:
        assert t.deployer.problems == []
        for inject in (s1_20, s2_30, s1_22):
            t.node(inject).trigger()
            await t.advance(20)
        assert alerts(t) == []  # one rise so far
        t.node(s1_25).trigger()
        await t.idle()
        assert alerts(t) == ["temperature rising at s-1: 20 → 22 → 25 °C"]
        # rises more than a minute apart are alone again
        await t.advance(61)
        t.node(s1_20).trigger()
        t.node(s1_25).trigger()
        await t.advance(61)
        t.node(s1_20).trigger()
        t.node(s1_22).trigger()
        await t.idle()
        assert len(alerts(t)) == 1
        assert t.errors() == []
