"""`/ontologies` admin routes over httpx's ASGI transport, on a small app around the router.

As in test_device_routes: only the ontology router (behind a stand-in bearer guard that also sets the caller)
with the admin app's error handlers; `app.state.runtime` is a stub exposing `.engine.services["ontologies"]`.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.http import ontology_routes
from sofiaflow.runtime.http.app import _install_error_handlers
from sofiaflow.runtime.http.deps import ApiError


def guard(request: Request) -> None:
    if request.headers.get("authorization") != "Bearer admin":
        raise ApiError(401, "unauthorized", "missing token")
    request.state.user = "admin"


class FakeStore:
    """Stands in for the real-time DB: stored instances per ontology."""

    def __init__(self) -> None:
        self.data: dict[str, list[dict]] = {}

    def sample(self, name: str, limit: int) -> list[dict]:
        return self.data.get(name, [])[:limit]

    def count(self, name: str) -> int:
        return len(self.data.get(name, []))

    def purge(self, name: str) -> int:
        return len(self.data.pop(name, []))


@pytest.fixture
def store():
    return FakeStore()


@pytest.fixture
def registry(tmp_path, store):
    db = connect(f"sqlite:///{tmp_path / 'routes.db'}")
    yield OntologyRegistry(
        db, sample_existing=store.sample, count_existing=store.count, purge_existing=store.purge
    )
    db.dispose()


@pytest.fixture
async def api(registry):
    app = FastAPI()
    app.state.runtime = SimpleNamespace(
        deployer=object(), engine=SimpleNamespace(services={"ontologies": registry})
    )
    app.include_router(ontology_routes.router, dependencies=[Depends(guard)])
    _install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"Authorization": "Bearer admin"}
    ) as client:
        yield client


SCHEMA = {
    "type": "object",
    "required": ["assetId", "measure"],
    "additionalProperties": False,
    "properties": {
        "assetId": {"type": "string"},
        "measure": {"type": "number"},
        "timestamp": {"type": "string", "format": "date-time"},
    },
}
NEW = {
    "name": "BasicSensor",
    "description": "a sensor",
    "schema": SCHEMA,
    "realtime_window_days": 30,
    "history": True,
    "indexes": ["assetId"],
    "unique": [],
}


async def test_create_list_get_put_delete(api, registry):
    r = await api.post("/ontologies", json=NEW)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "BasicSensor" and body["schema"] == SCHEMA and body["owner"] == "admin"
    assert body["realtime_window_days"] == 30 and body["history"] is True and body["indexes"] == ["assetId"]
    assert body["draft"] == "draft202012" and body["created"].endswith("Z")
    assert registry.get("BasicSensor").description == "a sensor"
    listed = (await api.get("/ontologies")).json()
    assert [o["name"] for o in listed] == ["BasicSensor"]
    one = await api.get("/ontologies/BasicSensor")
    assert one.status_code == 200 and one.json()["description"] == "a sensor"

    r = await api.put(
        "/ontologies/BasicSensor", json={"description": "changed", "realtime_window_days": None}
    )
    assert r.status_code == 200, r.text
    assert r.json()["description"] == "changed" and r.json()["realtime_window_days"] is None
    assert r.json()["indexes"] == ["assetId"]  # left out: kept
    r = await api.put("/ontologies/BasicSensor", json={**NEW, "description": "full body"})
    assert r.status_code == 200 and r.json()["description"] == "full body"

    assert (await api.delete("/ontologies/BasicSensor")).status_code == 204
    assert (await api.get("/ontologies/BasicSensor")).status_code == 404
    assert (await api.get("/ontologies")).json() == []


async def test_onesait_schema_as_string_and_explicit_owner(api):
    onesait = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "object",
        "required": ["Bs"],
        "properties": {"Bs": {"type": "string", "$ref": "#/datos"}},
        "datos": {"type": "object", "required": ["v"], "properties": {"v": {"type": "number"}}},
    }
    r = await api.post("/ontologies", json={"name": "Bs", "schema": json.dumps(onesait), "owner": "bob"})
    assert r.status_code == 201, r.text
    assert r.json()["draft"] == "draft4" and r.json()["root"] == "Bs" and r.json()["owner"] == "bob"
    r = await api.post("/ontologies/Bs/validate", json={"Bs": {"v": "x"}})
    assert r.json()["valid"] is False and r.json()["errors"][0]["path"] == "/Bs/v"


async def test_errors_are_clear_json(api):
    assert (await api.post("/ontologies", json=NEW)).status_code == 201
    r = await api.post("/ontologies", json=NEW)
    assert (
        r.status_code == 409
        and r.json()["code"] == "ontology_exists"
        and "'BasicSensor'" in r.json()["message"]
    )
    r = await api.post("/ontologies", json={**NEW, "name": "bad name"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_ontology" and r.json()["field"] == "name"
    r = await api.post("/ontologies", json={"name": "NoSchema"})
    assert r.status_code == 400 and r.json()["field"] == "schema"
    r = await api.post("/ontologies", json={"schema": SCHEMA})
    assert r.status_code == 400 and r.json()["field"] == "name"
    r = await api.post(
        "/ontologies",
        json={**NEW, "name": "Bad", "schema": {"type": "object", "properties": {"a": {"type": 5}}}},
    )
    assert r.status_code == 400 and r.json()["field"] == "schema"
    assert r.json()["schema_path"] == "/properties/a/type" and "/properties/a/type" in r.json()["message"]
    r = await api.post("/ontologies", json={**NEW, "name": "Bad", "indexes": ["ok", 3]})
    assert r.status_code == 400 and r.json()["field"] == "indexes[1]"
    r = await api.post("/ontologies", json={**NEW, "name": "Bad", "colour": "red"})
    assert r.status_code == 400 and r.json()["field"] == "colour" and "colour" in r.json()["message"]
    r = await api.post("/ontologies", json=[1])
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"
    r = await api.put("/ontologies/BasicSensor", json={"name": "Renamed"})
    assert r.status_code == 400 and r.json()["field"] == "name"
    r = await api.put("/ontologies/BasicSensor", json={"history": "sometimes"})
    assert r.status_code == 400 and r.json()["field"] == "history"
    for method, path in [
        ("GET", "/ontologies/Nope"),
        ("DELETE", "/ontologies/Nope"),
        ("PUT", "/ontologies/Nope"),
        ("POST", "/ontologies/Nope/validate"),
    ]:
        r = await api.request(method, path, json={"description": "x"} if method in ("PUT", "POST") else None)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "not_found" and "'Nope'" in r.json()["message"]


async def test_validate_endpoint(api):
    await api.post("/ontologies", json=NEW)
    r = await api.post(
        "/ontologies/BasicSensor/validate",
        json={"assetId": "s-1", "measure": 2.5, "timestamp": "2026-01-01T00:00:00Z"},
    )
    assert r.status_code == 200 and r.json() == {"valid": True, "errors": []}
    r = await api.post("/ontologies/BasicSensor/validate", json={"assetId": 1, "timestamp": "soon"})
    body = r.json()
    assert r.status_code == 200 and body["valid"] is False
    assert {(e["path"], e["validator"]) for e in body["errors"]} == {
        ("/assetId", "type"),
        ("", "required"),
        ("/timestamp", "format"),
    }
    assert [e["property"] for e in body["errors"] if e["validator"] == "required"] == ["measure"]


async def test_update_refused_when_stored_data_would_fail(api, store):
    await api.post("/ontologies", json=NEW)
    store.data["BasicSensor"] = [{"assetId": "a", "measure": 1.5, "contextData": {"user": "u"}}]
    integer = {**SCHEMA, "properties": {**SCHEMA["properties"], "measure": {"type": "integer"}}}
    r = await api.put("/ontologies/BasicSensor", json={"schema": integer})
    assert r.status_code == 409 and r.json()["code"] == "incompatible_schema"
    assert r.json()["failures"][0]["errors"][0]["path"] == "/measure" and "1.5" in r.json()["message"]
    extra = {**SCHEMA, "properties": {**SCHEMA["properties"], "unit": {"type": "string"}}}
    r = await api.put("/ontologies/BasicSensor", json={"schema": extra})
    assert r.status_code == 200 and "unit" in r.json()["schema"]["properties"]


async def test_delete_with_data_needs_purge(api, store):
    await api.post("/ontologies", json=NEW)
    store.data["BasicSensor"] = [{"assetId": "a", "measure": 1}, {"assetId": "b", "measure": 2}]
    r = await api.delete("/ontologies/BasicSensor")
    assert r.status_code == 409 and r.json()["code"] == "ontology_in_use" and r.json()["count"] == 2
    assert "purge=true" in r.json()["message"]
    assert (await api.get("/ontologies/BasicSensor")).status_code == 200
    assert (await api.delete("/ontologies/BasicSensor?purge=true")).status_code == 204
    assert store.data == {}
    assert (await api.get("/ontologies/BasicSensor")).status_code == 404


async def test_guard_and_missing_registry(api):
    r = await api.get("/ontologies", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    api._transport.app.state.runtime.engine.services.clear()
    r = await api.get("/ontologies")
    assert r.status_code == 503 and r.json()["code"] == "ontologies_unavailable"
