"""`/ontologies/{name}/data`: instances over HTTP, stamped with source "http", and seen by `ontology-subscribe`
like the writes of flows; history over HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

SCHEMA = {
    "type": "object",
    "required": ["sensor", "value"],
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}},
}
FLOWS = [
    {"id": "t", "type": "tab", "label": "t"},
    {
        "id": "sub",
        "type": "ontology-subscribe",
        "z": "t",
        "ontology": "Reading",
        "query": '{"value": {"$gt": 1}}',
        "wires": [["dbg"]],
    },
    {"id": "dbg", "type": "debug", "z": "t", "active": True, "complete": "true", "wires": []},
]


@pytest.fixture
async def api(tmp_path, registry):
    rt = Runtime(
        Settings(data_dir=tmp_path, admin_password="pw", history_interval=0, ontologies_dir=None),
        registry=registry,
    )
    await rt.start()
    AuthService(rt.db, rt.settings).ensure_admin()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://t"
    ) as http:
        token = (
            await http.post(
                "/auth/token",
                data={
                    "client_id": "node-red-admin",
                    "grant_type": "password",
                    "scope": "*",
                    "username": "admin",
                    "password": "pw",
                },
            )
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        assert (
            await http.post(
                "/ontologies",
                json={"name": "Reading", "schema": SCHEMA, "realtime_window_days": 1, "history": True},
            )
        ).status_code == 201
        yield rt, http
    await rt.stop()


async def test_inserts_over_http_are_stamped_and_reach_subscribers(api):
    rt, http = api
    await rt.deploy(FLOWS)
    seen: list = []
    rt.events.subscribe("debug", lambda _topic, data: seen.append(data))
    one = await http.post("/ontologies/Reading/data", json={"sensor": "a", "value": 5})
    assert one.status_code == 201, one.text
    batch = await http.post(
        "/ontologies/Reading/data", json=[{"sensor": "b", "value": 1}, {"sensor": "c", "value": 2}]
    )
    assert len(batch.json()["ids"]) == 2
    for _ in range(100):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.02)
    payloads = [json.loads(d["msg"]) if isinstance(d["msg"], str) else d["msg"] for d in seen]
    assert sorted(p["payload"]["sensor"] for p in payloads) == ["a", "c"]  # value 1 does not match the filter
    assert all(p["event"] == "insert" and p["topic"] == "Reading" for p in payloads)
    stored = (
        await http.get("/ontologies/Reading/data", params={"filter": json.dumps({"sensor": "a"})})
    ).json()
    assert stored["total"] == 1
    context = stored["items"][0]["contextData"]
    assert context["source"] == "http" and context["user"] == "admin" and context["timezoneId"] == "UTC"

    changed = await http.patch(
        "/ontologies/Reading/data", json={"filter": {"sensor": "b"}, "update": {"$inc": {"value": 10}}}
    )
    assert changed.json() == {"matched": 1}
    deleted = await http.delete("/ontologies/Reading/data", params={"filter": json.dumps({"sensor": "a"})})
    assert deleted.json() == {"deleted": 1}
    for _ in range(100):
        if len(seen) >= 4:
            break
        await asyncio.sleep(0.02)
    events = [(json.loads(d["msg"]) if isinstance(d["msg"], str) else d["msg"])["event"] for d in seen[2:]]
    assert events == ["update", "delete"]


async def test_bad_data_and_bad_queries_are_4xx_and_store_nothing(api):
    rt, http = api
    bad = await http.post("/ontologies/Reading/data", json=[{"sensor": "a", "value": 1}, {"sensor": 5}])
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_instance"
    assert bad.json()["problems"][0]["where"] == "item 1"
    assert (await http.post("/ontologies/Nope/data", json={"sensor": "a", "value": 1})).status_code == 404
    for params in (
        {"filter": "{nope"},
        {"filter": json.dumps({"value": {"$where": "1"}})},
        {"filter": "[1]"},
        {"sort": json.dumps({"value": 3})},
    ):
        answer = await http.get("/ontologies/Reading/data", params=params)
        assert answer.status_code == 400 and answer.json()["message"], params
    assert (await http.delete("/ontologies/Reading/data", params={"filter": ""})).status_code == 400
    assert rt.engine.services["rtdb"].count("Reading", {}) == 0


async def test_history_over_http(api):
    rt, http = api
    old = int(time.time() * 1000) - 3 * 24 * 3600 * 1000
    rt.engine.services["rtdb"].insert(
        "Reading", [{"sensor": "a", "value": i, "contextData": {"timestampMillis": old}} for i in range(5)]
    )
    moved = await http.post("/ontologies/Reading/history/move")
    assert moved.json()["moved"] == {"Reading": 5}
    page = (
        await http.get(
            "/ontologies/Reading/data",
            params={"scope": "history", "limit": 2, "sort": json.dumps({"value": -1})},
        )
    ).json()
    assert page["total"] == 5 and [d["value"] for d in page["items"]] == [4, 3]
    assert (await http.get("/ontologies/Reading/data")).json()["total"] == 0
