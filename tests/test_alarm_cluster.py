"""Alarms in a cluster: two workers (two runtimes on one PostgreSQL config DB and one Redis) run the same flow with
an alarm node. An alarm raised on one worker and acknowledged or cleared through the other comes out of the flow
exactly once in the cluster; the other worker's Alarms page counter moves, and its `alarms` events reach its
event bus (for `/comms`) once each."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis_server import start_redis
from rtdb_servers import start_postgres

from sofiaflow.runtime.core.services import ALARMS
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "alarm-cluster-pw-1"
DEADLINE = 20.0
SETTLE = 1.0
"""Seconds to keep watching for a duplicate once the expected event came."""


def flows(node_id: str) -> list[dict[str, Any]]:
    """A tab with one alarm node, `node_id` (each test its own: the workers load the newest revision at start)."""
    return [
        {"id": "t1", "type": "tab", "label": "Alarms"},
        {
            "id": node_id,
            "type": "alarm",
            "z": "t1",
            "name": "",
            "alarmType": "too hot",
            "alarmTypeType": "str",
            "originator": "",
            "originatorType": "msg",
            "severity": "major",
            "severityType": "str",
            "action": "raise",
            "details": "payload",
            "detailsType": "msg",
            "wires": [[]],
            "x": 1,
            "y": 1,
        },
    ]


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    redis = start_redis()
    try:
        pg = start_postgres()
    except BaseException:
        redis.stop()
        raise
    try:
        yield {"redis": redis.url, "db": pg.url}
    finally:
        pg.stop()
        redis.stop()


class Worker:
    def __init__(self, name: str, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.name = name
        self.node_id = ""
        self.runtime = runtime
        self.client = client
        self.sent: list[dict[str, Any]] = []
        self.bus_alarms: list[dict[str, Any]] = []
        runtime.events.subscribe("alarms", lambda _t, data: self.bus_alarms.append(data))

    @property
    def store(self) -> Any:
        assert self.runtime.engine is not None
        return self.runtime.engine.services[ALARMS]

    def watch_alarm_node(self) -> None:
        """Record what the running alarm node sends."""
        assert self.runtime.engine is not None
        node = self.runtime.engine.nodes[self.node_id]
        send = node.send

        def recording(msg: Any, *args: Any, **kwargs: Any) -> Any:
            self.sent.append(dict(msg) if isinstance(msg, dict) else {"msg": msg})
            return send(msg, *args, **kwargs)

        node.send = recording  # type: ignore[method-assign]


@pytest.fixture
async def workers(tmp_path: Path, servers: dict[str, str]) -> AsyncIterator[list[Worker]]:
    made: list[Worker] = []
    try:
        for name in ("a", "b"):
            settings = Settings(
                data_dir=tmp_path / name,
                db_url=servers["db"],
                redis_url=servers["redis"],
                admin_password=PASSWORD,
                credential_secret="alarm-cluster-secret",
                mqtt_port=0,
                history_interval=3600,
                ontologies_dir=None,
                default_flows=None,
            )
            runtime = Runtime(settings)
            await runtime.start()
            AuthService(runtime.db, runtime.settings).ensure_admin()
            client = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://t"
            )
            made.append(Worker(name, runtime, client))
        yield made
    finally:
        for worker in reversed(made):
            await worker.client.aclose()
            await worker.runtime.stop()


async def _admin(client: httpx.AsyncClient) -> dict[str, str]:
    resp = await client.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": "admin",
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {DEADLINE} s: {what}")
        await asyncio.sleep(0.01)


async def _deployed(workers: list[Worker]) -> dict[str, str]:
    a = workers[0]
    node_id = uuid.uuid4().hex[:12]
    headers = await _admin(a.client)
    resp = await a.client.post("/flows", headers=headers, json=flows(node_id))
    assert resp.status_code == 204, resp.text
    for worker in workers:
        worker.node_id = node_id
        await _until(
            lambda w=worker: w.runtime.engine is not None and node_id in w.runtime.engine.nodes,
            f"worker {worker.name} runs the alarm node",
        )
        worker.watch_alarm_node()
    return headers


def _events(workers: list[Worker], event: str) -> list[tuple[str, dict[str, Any]]]:
    return [(w.name, m) for w in workers for m in w.sent if m.get("event") == event]


async def _exactly_once(workers: list[Worker], event: str) -> tuple[str, dict[str, Any]]:
    await _until(lambda: _events(workers, event), f"the alarm node sends {event!r} on some worker")
    await asyncio.sleep(SETTLE)
    found = _events(workers, event)
    assert len(found) == 1, f"{event!r} came out {len(found)} times: {[name for name, _ in found]}"
    return found[0]


@pytest.mark.parametrize("through", ["api", "store"])
async def test_a_person_acknowledging_or_clearing_on_one_worker_is_told_to_the_flow_once(
    workers: list[Worker], through: str
) -> None:
    a, b = workers
    headers = await _deployed(workers)
    assert b.runtime.engine is not None
    b.runtime.engine.deliver(b.node_id, {"topic": "boiler", "payload": {"t": 91}})
    await _until(lambda: _events(workers, "created"), "the alarm is created on B")
    assert [name for name, _ in _events(workers, "created")] == ["b"]
    alarm_id = _events(workers, "created")[0][1]["payload"]["id"]

    if through == "api":  # A answers a person (admin API; the Alarms page calls the same store)
        resp = await a.client.post(f"/alarms/{alarm_id}/ack", headers=headers)
        assert resp.status_code == 200 and resp.json()["status"] == "ACTIVE_ACK", resp.text
    else:
        await asyncio.to_thread(a.store.acknowledge, alarm_id, 1, "admin")
    _name, acked = await _exactly_once(workers, "acknowledged")
    assert acked["payload"]["id"] == alarm_id and acked["topic"] == "boiler"

    if through == "api":
        resp = await b.client.post(f"/alarms/{alarm_id}/clear", headers=headers)
        assert resp.status_code == 200 and resp.json()["status"] == "CLEARED_ACK", resp.text
    else:
        await asyncio.to_thread(b.store.clear, alarm_id, 2, "admin")
    _name, cleared = await _exactly_once(workers, "cleared")
    assert cleared["payload"]["status"] == "CLEARED_ACK"
    # acknowledging or clearing again changes nothing and tells nobody
    assert (await a.client.post(f"/alarms/{alarm_id}/ack", headers=headers)).status_code == 200
    assert (await b.client.post(f"/alarms/{alarm_id}/clear", headers=headers)).status_code == 200
    await asyncio.sleep(SETTLE)
    assert len(_events(workers, "acknowledged")) == 1 and len(_events(workers, "cleared")) == 1


async def test_the_alarms_page_counter_and_alarm_events_see_changes_made_on_the_other_worker(
    workers: list[Worker],
) -> None:
    a, b = workers
    await _deployed(workers)
    before = a.store.version
    assert b.runtime.engine is not None
    b.runtime.engine.deliver(b.node_id, {"topic": "pump", "payload": 1})
    await _until(lambda: a.store.version > before, "A's alarm counter moves for an alarm B raised")
    await _until(lambda: [e["event"] for e in a.bus_alarms] == ["created"], "A's bus carries B's alarm")
    alarm_id = a.bus_alarms[0]["alarm"]["id"]
    assert a.bus_alarms[0]["alarm"]["originator"] == "pump"

    seen = a.store.version
    await asyncio.to_thread(b.store.acknowledge, alarm_id, 1, "admin")
    await _until(lambda: a.store.version > seen, "A's counter moves for an acknowledgement on B")
    seen = b.store.version
    await asyncio.to_thread(a.store.delete, alarm_id)
    await _until(lambda: b.store.version > seen, "B's counter moves for a deletion on A")
    await asyncio.sleep(SETTLE)
    # each change once on each worker's bus: no echo between the workers
    assert [e["event"] for e in a.bus_alarms] == ["created", "acknowledged", "deleted"]
    assert [e["event"] for e in b.bus_alarms] == ["created", "acknowledged", "deleted"]
