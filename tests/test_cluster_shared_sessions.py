"""SSAP in a cluster: two workers' processors share one config DB (devices), one real-time DB and one Redis
(sessions, ontology events). A session JOINed on A works on B, a LEAVE or a device revocation on B ends it on
A, a session idle too long is gone everywhere, and a SUBSCRIBE on A hears an INSERT made on B once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis_server import (
    redis_per_module,  # noqa: F401 - the redis_url fixture
)

from sofiaflow.runtime.cluster.shared_ontology_events import OntologyEventStream
from sofiaflow.runtime.cluster.shared_sessions import RedisSessionStore
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.data.events import OntologyEvents
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.data.ontology_data import OntologyData
from sofiaflow.runtime.data.rtdb import open_store
from sofiaflow.runtime.onesait import ssap
from sofiaflow.runtime.onesait.processor import SsapProcessor
from sofiaflow.runtime.onesait.sessions import SessionStore
from sofiaflow.runtime.security.devices import DeviceRegistry

BASIC = json.loads((Path(__file__).resolve().parents[1] / "ontologies" / "BasicSensor.json").read_text())
DEADLINE = 20.0


class Worker:
    def __init__(
        self, processor: SsapProcessor, devices: DeviceRegistry, stream: OntologyEventStream
    ) -> None:
        self.processor, self.devices, self.stream = processor, devices, stream


@pytest.fixture
async def workers(tmp_path: Path, redis_url: str) -> AsyncIterator[list[Worker]]:
    namespace = f"broker-{uuid.uuid4().hex[:6]}"
    made: list[Worker] = []
    closers: list[Callable[[], Any]] = []
    try:
        for name in ("a", "b"):
            db = connect(f"sqlite:///{tmp_path}/config.db")  # the config DB every worker shares
            store = open_store(f"sqlite:///{tmp_path}/rt.db")
            ontologies = OntologyRegistry(db)
            if name == "a":
                ontologies.create("BasicSensor", BASIC["schema"])
            store.ensure_collection("BasicSensor")
            redis = Redis.from_url(redis_url, decode_responses=True)
            events = OntologyEvents()
            stream = OntologyEventStream(redis, events, worker=name)
            await stream.start()
            devices = DeviceRegistry(db)
            sessions = SessionStore.create(60, redis=redis, namespace=namespace)
            assert isinstance(sessions, RedisSessionStore)
            processor = SsapProcessor(devices, OntologyData(ontologies, store, events), sessions, events)
            made.append(Worker(processor, devices, stream))
            closers += [processor.close, stream.stop, redis.aclose, store.close, db.dispose]
        yield made
    finally:
        for close in reversed(closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result


async def _join(worker: Worker, client: str, token: str, key: str | None = None) -> dict[str, Any]:
    request = ssap.request(
        "JOIN", {"token": token, "clientPlatform": client, "clientPlatformInstance": "i1"}, key
    )
    return await worker.processor.handle(request)


def _query(key: str) -> dict[str, Any]:
    return ssap.request("QUERY", {"ontology": "BasicSensor", "query": "db.BasicSensor.count({})"}, key)


async def test_a_session_joined_on_a_works_on_b_until_b_ends_it(workers: list[Worker]) -> None:
    a, b = workers
    _device, token = a.devices.create(f"c{uuid.uuid4().hex[:6]}", {"BasicSensor": "ALL"})
    name = _device.name
    key = (await _join(a, name, token))["body"]["data"]["sessionKey"]
    assert (await b.processor.handle(_query(key)))["body"]["ok"]
    renewed = await _join(b, name, token, key=key)
    assert renewed["body"]["data"]["sessionKey"] == key  # renewed on B: the same key
    assert (await b.processor.handle(ssap.request("LEAVE", {}, key)))["body"]["ok"]
    refused = await a.processor.handle(_query(key))
    assert refused["direction"] == "ERROR" and refused["body"]["errorCode"] == "AUTENTICATION"


async def test_a_device_revoked_through_b_loses_its_session_on_a(workers: list[Worker]) -> None:
    a, b = workers
    device, token = a.devices.create(f"c{uuid.uuid4().hex[:6]}", {"BasicSensor": "ALL"})
    other_token = a.devices.add_token(device.name)[1]
    key = (await _join(a, device.name, token))["body"]["data"]["sessionKey"]
    other_key = (await _join(a, device.name, other_token))["body"]["data"]["sessionKey"]
    b.devices.revoke(device.name, token.split(".")[0])  # B's processor drops the sessions using the token
    assert (await a.processor.handle(_query(key)))["body"]["errorCode"] == "AUTENTICATION"
    assert (await a.processor.handle(_query(other_key)))["body"]["ok"]  # the other token's session stays
    assert (await _join(a, device.name, token))["body"]["errorCode"] == "AUTENTICATION"


async def test_an_idle_session_is_gone_on_every_worker(workers: list[Worker], redis_url: str) -> None:
    a, b = workers
    device, token = a.devices.create(f"c{uuid.uuid4().hex[:6]}", {"BasicSensor": "ALL"})
    redis = Redis.from_url(redis_url, decode_responses=True)
    short_a = SessionStore.create(0.3, redis=redis, namespace="short")
    short_b = SessionStore.create(0.3, redis=redis, namespace="short")
    try:
        session = short_a.open(device, "i1", token.split(".")[0])
        assert short_b.use(session.key).client_name == device.name
        assert short_b.peek(session.key) is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DEADLINE
        while short_b.peek(session.key) is not None:  # Redis ends it after 0.3 s without a use
            assert loop.time() < deadline, "the idle session never expired"
            await asyncio.sleep(0.05)
        with pytest.raises(ssap.SsapError, match="JOIN again"):
            short_a.use(session.key)
    finally:
        await redis.aclose()


async def test_a_subscription_on_a_hears_an_insert_made_on_b_once(workers: list[Worker]) -> None:
    a, b = workers
    device, token = a.devices.create(f"c{uuid.uuid4().hex[:6]}", {"BasicSensor": "ALL"})
    key = (await _join(a, device.name, token))["body"]["data"]["sessionKey"]
    seen: list[dict[str, Any]] = []
    sub = await a.processor.handle(
        ssap.request(
            "SUBSCRIBE", {"ontology": "BasicSensor", "queryValue": {"BasicSensor.measure": {"$gt": 5}}}, key
        ),
        sink=lambda _session, _subscription, envelope: seen.append(envelope),
    )
    assert sub["body"]["ok"], sub
    for asset, measure in (("x", 9), ("y", 1), ("z", 7)):
        insert = ssap.request(
            "INSERT",
            {"ontology": "BasicSensor", "data": {"BasicSensor": {"assetId": asset, "measure": measure}}},
            key,
        )
        assert (await b.processor.handle(insert))["body"]["ok"]  # the session JOINed on A, used on B

    def assets() -> list[str]:
        return [d["BasicSensor"]["assetId"] for e in seen for d in e["body"]["data"]]

    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while "z" not in assets():
        assert loop.time() < deadline, f"no indication of z within {DEADLINE} s: {seen}"
        await asyncio.sleep(0.01)
    marker = ssap.request(
        "INSERT", {"ontology": "BasicSensor", "data": {"BasicSensor": {"assetId": "w", "measure": 8}}}, key
    )
    assert (await b.processor.handle(marker))["body"]["ok"]
    while "w" not in assets():  # a repeat of x or z would come before it (one stream, in order)
        assert loop.time() < deadline, f"no indication of w within {DEADLINE} s: {seen}"
        await asyncio.sleep(0.01)
    assert assets() == ["x", "z", "w"]  # each once, in order, the one below the threshold not


async def test_updates_and_deletes_on_b_reach_listeners_on_a_though_b_has_none(workers: list[Worker]) -> None:
    a, b = workers
    heard: list[tuple[str, list[str]]] = []
    mine: list[str] = []
    a.stream.events.subscribe(
        "BasicSensor", lambda _o, e, docs: heard.append((e, [d["BasicSensor"]["assetId"] for d in docs]))
    )
    a.stream.events.subscribe("BasicSensor", lambda _o, e, _d: mine.append(e), cluster=False)
    data_b = b.processor.data
    asset = f"u{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(data_b.insert, "BasicSensor", [{"BasicSensor": {"assetId": asset, "measure": 1}}])
    await asyncio.to_thread(
        data_b.update, "BasicSensor", {"BasicSensor.assetId": asset}, {"$set": {"BasicSensor.measure": 2}}
    )
    await asyncio.to_thread(data_b.delete, "BasicSensor", {"BasicSensor.assetId": asset})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while len(heard) < 3:
        assert loop.time() < deadline, f"A heard only {heard}"
        await asyncio.sleep(0.01)
    assert heard == [("insert", [asset]), ("update", [asset]), ("delete", [asset])]
    assert (
        mine == []
    )  # a listener of this worker's changes only (an ontology-subscribe node) hears none of B's
    await asyncio.to_thread(a.processor.data.delete, "BasicSensor", {"BasicSensor.assetId": "nothing"})
    await asyncio.to_thread(
        a.processor.data.insert, "BasicSensor", [{"BasicSensor": {"assetId": asset, "measure": 3}}]
    )
    assert mine == ["insert"]  # A's own change, at once
