"""flows/cep-device-average.json end to end: readings of several devices in, one BasicSensor instance per device
and 5-minute window in the real-time DB, on the virtual clock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sofiaflow.runtime.data import config_db, rtdb
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.testing import FlowTester

ROOT = Path(__file__).resolve().parents[1]
FLOW = json.loads((ROOT / "flows" / "cep-device-average.json").read_text())
READINGS, SAMPLE, WINDOW = "c5c5000000000002", "c5c5000000000003", "c5c5000000000004"


@pytest.fixture
def services(tmp_path):
    store = rtdb.open_store(f"sqlite:///{tmp_path}/rt.db")
    ontologies = OntologyRegistry(config_db.connect(f"sqlite:///{tmp_path}/c.db"))
    assert ontologies.load_directory(ROOT / "ontologies").errors == []
    yield {"rtdb": store, "ontologies": ontologies}
    store.close()


async def settle(t):
    """Let the insert (a store call in a thread) finish."""
    for _ in range(500):
        await t.idle()
        if all(n._worker is None for n in t.engine.nodes.values()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the flow did not settle")


async def test_per_device_five_minute_averages_land_in_the_ontology(registry, services):
    tester = FlowTester(FLOW, registry, virtual_time=True)
    tester.engine.services.update(services)
    async with tester as t:
        assert t.deployer.problems == []
        await t.advance(300 - t.clock.now() % 300 + 10)  # 10 s into a 5-minute window
        window_end = (t.clock.now() // 300 + 1) * 300
        for temps in ([20.0, 30.0], [21.0, 22.5]):
            t.inject(READINGS, {"topic": "sensor-1", "payload": temps[0]})
            t.inject(READINGS, {"topic": "sensor-2", "payload": temps[1]})
            await t.advance(60)
        t.node(SAMPLE).trigger()  # the inject's sample: sensor-1, 21.5
        await t.advance(300)  # the window closes; the next one has nothing
        await settle(t)
        assert t.errors() == []
        docs = services["rtdb"].find("BasicSensor", {}, sort=[("BasicSensor.assetId", 1)])
        stored = [(d["BasicSensor"]["assetId"], d["BasicSensor"]["measure"]) for d in docs]
        assert stored == [("sensor-1", 20.833), ("sensor-2", 26.25)]  # (20, 21, 21.5) and (30, 22.5)
        when = (
            datetime.fromtimestamp(window_end, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        assert {d["BasicSensor"]["timestamp"]["$date"] for d in docs} == {when}
        assert {d["contextData"]["source"] for d in docs} == {"flow"}
        assert len([d for d in t.debug if d["id"] == "c5c5000000000007"]) == 2
