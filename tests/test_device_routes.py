"""`/devices` admin routes over httpx's ASGI transport, on a small app around the router.

The app here includes only the device router (behind a stand-in bearer guard) with the admin app's error
handlers, and `app.state.runtime` is a stub exposing `.engine.services["devices"]`; the end-to-end
test goes through the real create_app.
"""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.http import device_routes
from sofiaflow.runtime.http.app import _install_error_handlers
from sofiaflow.runtime.http.deps import ApiError
from sofiaflow.runtime.security.devices import DeviceRegistry


def guard(request: Request) -> None:
    if request.headers.get("authorization") != "Bearer admin":
        raise ApiError(401, "unauthorized", "missing token")


@pytest.fixture
def registry(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'routes.db'}")
    yield DeviceRegistry(db)
    db.dispose()


@pytest.fixture
async def api(registry):
    app = FastAPI()
    app.state.runtime = SimpleNamespace(
        deployer=object(), engine=SimpleNamespace(services={"devices": registry})
    )
    app.include_router(device_routes.router, dependencies=[Depends(guard)])
    _install_error_handlers(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://t", headers={"Authorization": "Bearer admin"}
    ) as client:
        yield client


NEW = {"name": "s1", "ontologies": {"BasicSensor": "INSERT"}, "topics": ["sensors/{device}/#"]}


async def test_create_list_get_delete(api, registry):
    r = await api.post("/devices", json=NEW)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["name"] == "s1" and body["ontologies"] == {"BasicSensor": "INSERT"} and body["enabled"]
    token, token_id = body["token"], body["token_id"]
    assert token.startswith(token_id + ".")
    assert registry.authenticate("s1", token).name == "s1"
    listed = (await api.get("/devices")).json()
    assert [d["name"] for d in listed] == ["s1"]
    assert listed[0]["tokens"][0]["id"] == token_id and listed[0]["tokens"][0]["active"]
    one = await api.get("/devices/s1")
    assert one.status_code == 200 and one.json()["topics"] == ["sensors/{device}/#"]
    for answer in (listed, one.json()):
        text = str(answer)
        assert token.split(".", 1)[1] not in text and "sha256" not in text and "hash" not in text
    assert (await api.delete("/devices/s1")).status_code == 204
    assert (await api.get("/devices/s1")).status_code == 404
    assert (await api.get("/devices")).json() == []


async def test_errors_are_clear_json(api):
    assert (await api.post("/devices", json=NEW)).status_code == 201
    r = await api.post("/devices", json=NEW)
    assert r.status_code == 409 and r.json()["code"] == "device_exists" and "'s1'" in r.json()["message"]
    r = await api.post("/devices", json={**NEW, "name": "bad name"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_device" and r.json()["field"] == "name"
    r = await api.post("/devices", json={**NEW, "name": "s2", "topics": ["a/#/b"]})
    assert r.status_code == 400 and r.json()["field"] == "topics[0]" and "a/#/b" in r.json()["message"]
    r = await api.post("/devices", json={**NEW, "name": "s2", "ontologies": {"X": "WRITE"}})
    assert r.status_code == 400 and r.json()["field"] == "ontologies.X"
    r = await api.post("/devices", json={"topics": []})
    assert r.status_code == 400 and r.json()["field"] == "name"
    r = await api.post("/devices", json={**NEW, "name": "s3", "colour": "red"})
    assert r.status_code == 400 and "colour" in r.json()["message"]
    r = await api.post("/devices", json=[1])
    assert r.status_code == 400 and r.json()["code"] == "invalid_request"
    for method, path in [
        ("GET", "/devices/nope"),
        ("DELETE", "/devices/nope"),
        ("POST", "/devices/nope/tokens"),
        ("DELETE", "/devices/nope/tokens/abc"),
        ("DELETE", "/devices/s1/tokens/abc"),
        ("PATCH", "/devices/nope"),
    ]:
        r = await api.request(method, path, json={"enabled": False} if method == "PATCH" else None)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["code"] == "not_found" and r.json()["message"]


async def test_tokens_add_rotate_revoke(api, registry):
    first = (await api.post("/devices", json=NEW)).json()
    r = await api.post("/devices/s1/tokens")
    assert r.status_code == 201 and r.json()["revoked"] == []
    second = r.json()
    assert registry.authenticate("s1", second["token"]) and registry.authenticate("s1", first["token"])
    r = await api.post("/devices/s1/tokens", json={"rotate": True})
    assert r.status_code == 201
    third = r.json()
    assert sorted(third["revoked"]) == sorted([first["token_id"], second["token_id"]])
    for old in (first, second):
        with pytest.raises(AuthError, match="revoked"):
            registry.authenticate("s1", old["token"])
    assert (await api.delete(f"/devices/s1/tokens/{third['token_id']}")).status_code == 204
    with pytest.raises(AuthError, match="revoked"):
        registry.authenticate("s1", third["token"])
    assert (await api.delete(f"/devices/s1/tokens/{third['token_id']}")).status_code == 204  # idempotent
    states = [t["active"] for t in (await api.get("/devices/s1")).json()["tokens"]]
    assert states == [False, False, False]
    r = await api.post("/devices/s1/tokens", json={"rotate": "yes"})
    assert r.status_code == 400


async def test_patch_changes_and_notifies(api, registry):
    await api.post("/devices", json=NEW)
    dropped: list = []
    registry.on_revoke(lambda name, tid: dropped.append((name, tid)))
    r = await api.patch("/devices/s1", json={"enabled": False, "topics": ["b/+"]})
    assert r.status_code == 200 and r.json()["enabled"] is False and r.json()["topics"] == ["b/+"]
    assert dropped == [("s1", None)]
    r = await api.patch("/devices/s1", json={"name": "renamed"})
    assert r.status_code == 400


async def test_guard_and_missing_registry(api, registry):
    r = await api.get("/devices", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    api._transport.app.state.runtime.engine.services.clear()
    r = await api.get("/devices")
    assert r.status_code == 503 and r.json()["code"] == "devices_unavailable"
