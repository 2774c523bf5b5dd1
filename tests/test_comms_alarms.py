"""`/comms` carries `alarms` events to the people who may see the alarm: administrators every alarm, developers
and users their own (the owner of the flow that raised it), as `GET /alarms` does."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import connect

from sofiaflow.runtime.core.services import ALARMS
from tests.tenancy_helpers import serve_world


@pytest.fixture
async def world(tmp_path, registry):
    async with serve_world(tmp_path, registry) as served:
        yield served


async def _socket(world, who, topic):
    ws = await connect(f"ws://{world.host}/comms")
    await ws.send(json.dumps({"auth": world.tokens[who]}))
    assert json.loads(await ws.recv()) == [{"topic": "auth", "data": "ok"}]
    await ws.send(json.dumps({"subscribe": topic}))
    return ws


async def _alarm_events(ws, out, enough, seconds):
    try:
        async with asyncio.timeout(seconds):
            while not enough():
                out.extend(e for e in json.loads(await ws.recv()) if e["topic"] == "alarms")
    except TimeoutError:
        pass


def _seen(events):
    return sorted((e["data"]["event"], e["data"]["alarm"]["originator"]) for e in events)


@pytest.mark.parametrize("topic", ["#", "alarms"])
async def test_each_socket_gets_the_alarm_events_of_the_alarms_it_may_see(world, topic):
    store = world.rt.engine.services[ALARMS]
    sockets = {who: await _socket(world, who, topic) for who in ("admin", "ana", "bob", "uma")}
    seen = {who: [] for who in sockets}
    now = int(time.time() * 1000)
    try:
        await asyncio.sleep(0.2)
        ana = await asyncio.to_thread(store.raise_alarm, "hot", "ana-boiler", "major", now, "ana")
        await asyncio.to_thread(store.raise_alarm, "hot", "bob-boiler", "minor", now, "bob")
        await asyncio.to_thread(store.raise_alarm, "hot", "plant", "critical", now, None)
        await asyncio.to_thread(store.acknowledge, ana.alarm.id, now + 1, "ana")
        expected = {
            "admin": [
                ("acknowledged", "ana-boiler"),
                ("created", "ana-boiler"),
                ("created", "bob-boiler"),
                ("created", "plant"),
            ],
            "ana": [("acknowledged", "ana-boiler"), ("created", "ana-boiler")],
            "bob": [("created", "bob-boiler")],
            "uma": [],
        }
        await asyncio.gather(
            *(
                _alarm_events(ws, seen[who], lambda who=who: _seen(seen[who]) == expected[who], 10)
                for who, ws in sockets.items()
            )
        )
        # a while longer for anything they should not get
        await asyncio.gather(
            *(_alarm_events(ws, seen[who], lambda: False, 0.5) for who, ws in sockets.items())
        )
    finally:
        for ws in sockets.values():
            await ws.close()
    assert {who: _seen(events) for who, events in seen.items()} == expected
    assert all(e["data"]["alarm"]["owner"] == "ana" for e in seen["ana"])
