"""Two workers (two runtimes on one PostgreSQL config DB and one Redis) share login tokens, device
revocations, ontology change events, debug output and node status, and API quotas."""

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

from sofiaflow.runtime.cluster.shared_quota import RedisQuota
from sofiaflow.runtime.core.services import DEVICES, ONTOLOGY_EVENTS
from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "shared-state-pw-1"
DEADLINE = 20.0


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


def _settings(data_dir: Path, servers: dict[str, str]) -> Settings:
    return Settings(
        data_dir=data_dir,
        db_url=servers["db"],
        redis_url=servers["redis"],
        admin_password=PASSWORD,
        mqtt_port=0,
        history_interval=3600,
        ontologies_dir=None,
        default_flows=None,
    )


class Worker:
    def __init__(self, runtime: Runtime, client: httpx.AsyncClient) -> None:
        self.runtime = runtime
        self.client = client

    def service(self, key: Any) -> Any:
        assert self.runtime.engine is not None
        return self.runtime.engine.services[key]


@pytest.fixture
async def workers(tmp_path: Path, servers: dict[str, str]) -> AsyncIterator[list[Worker]]:
    made: list[Worker] = []
    try:
        for name in ("a", "b"):
            runtime = Runtime(_settings(tmp_path / name, servers))
            await runtime.start()
            AuthService(runtime.db, runtime.settings).ensure_admin()
            transport = httpx.ASGITransport(app=create_app(runtime))
            made.append(Worker(runtime, httpx.AsyncClient(transport=transport, base_url="http://test")))
        yield made
    finally:
        for worker in reversed(made):
            await worker.client.aclose()
            await worker.runtime.stop()


async def _token(client: httpx.AsyncClient, username: str = "admin", password: str = PASSWORD) -> str:
    resp = await client.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": username,
            "password": password,
        },
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _until(check: Callable[[], bool], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {DEADLINE} s: {what}")
        await asyncio.sleep(0.01)


# ----- login tokens -----------------------------------------------------------------------------------------
async def test_a_token_revoked_through_b_is_refused_on_a(workers: list[Worker]) -> None:
    a, b = workers
    token = await _token(a.client)
    assert (
        await b.client.get("/settings", headers=_bearer(token))
    ).status_code == 200  # made on A, good on B
    assert (await b.client.post("/auth/revoke", headers=_bearer(token))).status_code == 200
    assert (await a.client.get("/settings", headers=_bearer(token))).status_code == 401
    assert (await b.client.get("/settings", headers=_bearer(token))).status_code == 401


async def test_a_password_changed_through_b_revokes_the_users_tokens_on_a(workers: list[Worker]) -> None:
    a, b = workers
    admin = _bearer(await _token(a.client))
    user = f"dev{uuid.uuid4().hex[:8]}"
    made = await b.client.post(
        "/users", headers=admin, json={"username": user, "password": "first-pw-123", "role": "developer"}
    )
    assert made.status_code == 201, made.text
    dev = _bearer(await _token(a.client, user, "first-pw-123"))
    assert (await a.client.get("/flows", headers=dev)).status_code == 200
    changed = await b.client.patch(f"/users/{user}", headers=admin, json={"password": "second-pw-456"})
    assert changed.status_code == 200, changed.text
    assert (await a.client.get("/flows", headers=dev)).status_code == 401
    await _token(a.client, user, "second-pw-456")  # the new password works on A at once


# ----- devices ----------------------------------------------------------------------------------------------
async def test_a_device_revoked_or_disabled_through_b_is_refused_on_a(workers: list[Worker]) -> None:
    a, b = workers
    admin = _bearer(await _token(a.client))
    name = f"sensor-{uuid.uuid4().hex[:8]}"
    made = await a.client.post("/devices", headers=admin, json={"name": name, "topics": [], "ontologies": {}})
    assert made.status_code == 201, made.text
    token = made.json()["token"]
    token_id = token.split(".", 1)[0]
    devices_a = a.service(DEVICES)
    assert devices_a.authenticate(name, token).name == name
    heard: list[tuple[str, str | None]] = []
    devices_a.on_revoke(lambda device, tid: heard.append((device, tid)))

    revoked = await b.client.delete(f"/devices/{name}/tokens/{token_id}", headers=admin)
    assert revoked.status_code in (200, 204), revoked.text
    with pytest.raises(AuthError, match="revoked"):
        devices_a.authenticate(name, token)
    await _until(lambda: (name, token_id) in heard, "A's revocation listeners hear B's revocation")
    assert heard.count((name, token_id)) == 1

    second = await a.client.post(f"/devices/{name}/tokens", headers=admin, json={})
    assert second.status_code in (200, 201), second.text
    token2 = second.json()["token"]
    assert devices_a.authenticate(name, token2).name == name
    disabled = await b.client.patch(f"/devices/{name}", headers=admin, json={"enabled": False})
    assert disabled.status_code == 200, disabled.text
    with pytest.raises(AuthError, match="disabled"):
        devices_a.authenticate(name, token2)
    await _until(lambda: (name, None) in heard, "A hears that B disabled the device")


# ----- ontology events --------------------------------------------------------------------------------------
async def test_an_insert_on_b_is_heard_once_by_each_listener_on_a_and_b(workers: list[Worker]) -> None:
    a, b = workers
    ontology = f"Shared{uuid.uuid4().hex[:6]}"
    heard: dict[str, list[tuple[str, list[dict[str, Any]]]]] = {"a1": [], "a2": [], "b": []}
    a.service(ONTOLOGY_EVENTS).subscribe(ontology, lambda _o, e, d: heard["a1"].append((e, d)))
    a.service(ONTOLOGY_EVENTS).subscribe(ontology, lambda _o, e, d: heard["a2"].append((e, d)))
    b.service(ONTOLOGY_EVENTS).subscribe(ontology, lambda _o, e, d: heard["b"].append((e, d)))

    b.service(ONTOLOGY_EVENTS).publish(ontology, "insert", [{"n": 1}])
    await asyncio.to_thread(b.service(ONTOLOGY_EVENTS).publish, ontology, "insert", [{"n": 2}])  # a thread
    a.service(ONTOLOGY_EVENTS).publish(ontology, "delete", [{"n": 3}])
    b.service(ONTOLOGY_EVENTS).publish(ontology, "update", [{"n": 4}])

    def numbers(seen: list[tuple[str, list[dict[str, Any]]]]) -> list[int]:
        return sorted(doc["n"] for _e, docs in seen for doc in docs)

    await _until(
        lambda: all(numbers(seen) == [1, 2, 3, 4] for seen in heard.values()), "every change, everywhere"
    )
    # a duplicate would come before these (one stream, in order): when they are in, there was none
    a.service(ONTOLOGY_EVENTS).publish(ontology, "insert", [{"n": 5}])
    b.service(ONTOLOGY_EVENTS).publish(ontology, "insert", [{"n": 6}])
    await _until(lambda: all(5 in numbers(s) and 6 in numbers(s) for s in heard.values()), "the last two")
    for seen in heard.values():
        assert numbers(seen) == [1, 2, 3, 4, 5, 6]
        assert ("delete", [{"n": 3}]) in seen and ("update", [{"n": 4}]) in seen
    b_order = [("insert", [{"n": 1}]), ("insert", [{"n": 2}])]
    assert [ev for ev in heard["a1"] if ev[1][0]["n"] in (1, 2)] == b_order  # B's changes in B's order on A


# ----- debug and status for the editor ---------------------------------------------------------------------
async def test_debug_and_status_of_one_worker_reach_the_other_once(workers: list[Worker]) -> None:
    a, b = workers
    seen: dict[str, list[tuple[str, Any]]] = {"a": [], "b": []}
    for name, worker in (("a", a), ("b", b)):
        for pattern in ("debug", "status/#"):
            worker.runtime.events.subscribe(pattern, lambda t, d, n=name: seen[n].append((t, d)))
    b.runtime.events.publish("debug", {"id": "n1", "msg": "from b", "format": "string[6]"})
    b.runtime.events.publish("status/n1", {"fill": "green", "shape": "dot", "text": "ok"})
    a.runtime.events.publish("debug", {"id": "n2", "msg": "from a", "format": "string[6]"})
    b.runtime.events.publish("debug", {"id": "n1", "msg": "last", "format": "string[4]"})
    await _until(
        lambda: ("debug", {"id": "n1", "msg": "last", "format": "string[4]"}) in seen["a"], "B's debug on A"
    )
    await _until(
        lambda: ("debug", {"id": "n2", "msg": "from a", "format": "string[6]"}) in seen["b"], "A's on B"
    )
    expected = [
        ("debug", {"id": "n1", "msg": "from b", "format": "string[6]"}),
        ("status/n1", {"fill": "green", "shape": "dot", "text": "ok"}),
        ("debug", {"id": "n2", "msg": "from a", "format": "string[6]"}),
        ("debug", {"id": "n1", "msg": "last", "format": "string[4]"}),
    ]
    for name in ("a", "b"):
        assert sorted(map(repr, seen[name])) == sorted(map(repr, expected)), name  # each once, on both


# ----- quotas -----------------------------------------------------------------------------------------------
async def test_a_quota_holds_for_the_calls_of_two_workers_together(
    workers: list[Worker], servers: dict[str, str]
) -> None:
    from redis.asyncio import Redis

    from sofiaflow.runtime.core.services import API_MANAGER

    a, b = workers
    quota_a, quota_b = a.service(API_MANAGER).quota, b.service(API_MANAGER).quota
    assert isinstance(quota_a, RedisQuota) and isinstance(quota_b, RedisQuota)
    key = (f"api-{uuid.uuid4().hex[:6]}", "key-1")
    answers = [await (quota_a if i % 2 else quota_b).acquire(key, 5) for i in range(8)]
    assert answers[:5] == [0.0] * 5
    assert all(0 < left <= 60 for left in answers[5:])
    assert await quota_a.acquire((key[0], "key-2"), 5) == 0.0  # per key
    assert await quota_a.acquire(key, 0) == 0.0  # 0: no limit
    many = (key[0], "key-3")
    racing = await asyncio.gather(*((quota_a if i % 2 else quota_b).acquire(many, 10) for i in range(40)))
    assert racing.count(0.0) == 10  # at the same time on both workers: exactly the quota
    other = Redis.from_url(servers["redis"], decode_responses=True)
    try:
        await other.delete(f"sofiaflow:quota:{key[0]}:{key[1]}")  # as when the minute is over
        assert await quota_b.acquire(key, 5) == 0.0
    finally:
        await other.aclose()
