"""Users and roles on the admin API: administrators manage users, developers deploy, users only read;
every refusal and every change is in the audit log."""

from __future__ import annotations

import httpx
import pytest

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

FLOWS = [
    {"id": "t1", "type": "tab", "label": "one"},
    {"id": "n1", "type": "inject", "z": "t1", "wires": [[]]},
]


@pytest.fixture
async def client(tmp_path, registry):
    rt = Runtime(
        Settings(data_dir=tmp_path, admin_password="pw", history_interval=0, ontologies_dir=None),
        registry=registry,
    )
    await rt.start()
    AuthService(rt.db, rt.settings).ensure_admin()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://t"
    ) as http:
        yield rt, http
    await rt.stop()


async def token(http, username, password):
    answer = await http.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": username,
            "password": password,
        },
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def test_roles_decide_who_deploys_and_refusals_are_audited(client):
    rt, http = client
    admin = await token(http, "admin", "pw")
    for name, role in (("dev", "developer"), ("viewer", "user")):
        created = await http.post(
            "/users", json={"username": name, "password": f"{name}-pw", "role": role}, headers=admin
        )
        assert created.status_code == 201, created.text
    dev, viewer = await token(http, "dev", "dev-pw"), await token(http, "viewer", "viewer-pw")

    assert (await http.get("/flows", headers=viewer)).status_code == 200
    refused = await http.post("/flows", json=FLOWS, headers=viewer)
    assert refused.status_code == 403 and "role 'user'" in refused.json()["message"]
    assert (await http.post("/flows", json=FLOWS, headers=dev)).status_code in (200, 204)
    assert (await http.get("/users", headers=dev)).status_code == 403
    assert (
        await http.post("/users", json={"username": "x", "password": "y"}, headers=dev)
    ).status_code == 403

    log = (await http.get("/audit", headers=admin)).json()
    denied = [(e["user"], e["action"]) for e in log if e["outcome"] == "denied"]
    assert (
        ("viewer", "POST /flows") in denied
        and ("dev", "GET /users") in denied
        and ("dev", "POST /users") in denied
    )
    deploys = [e for e in log if e["action"] == "deploy"]
    assert (
        deploys[0]["user"] == "dev"
        and deploys[0]["outcome"] == "ok"
        and deploys[0]["detail"]["rev"] == rt.rev
    )
    assert [e["target"] for e in log if e["action"] == "user.create"] == ["viewer", "dev"]


async def test_user_management_rules(client):
    rt, http = client
    admin = await token(http, "admin", "pw")
    assert (
        await http.post("/users", json={"username": "a", "password": "p", "role": "boss"}, headers=admin)
    ).status_code == 400
    assert (
        await http.post("/users", json={"username": "", "password": "p"}, headers=admin)
    ).status_code == 400
    assert (await http.post("/users", json=[1], headers=admin)).status_code == 400
    assert (
        await http.post("/users", json={"username": "a", "password": "p", "admin": True}, headers=admin)
    ).status_code == 400
    assert (await http.post("/users", json={"username": "ana", "password": "p1"}, headers=admin)).json()[
        "role"
    ] == "developer"
    assert (
        await http.post("/users", json={"username": "ana", "password": "p2"}, headers=admin)
    ).status_code == 409
    # the last administrator stays one
    assert (await http.patch("/users/admin", json={"role": "user"}, headers=admin)).status_code == 409
    assert (await http.delete("/users/admin", headers=admin)).status_code == 409
    assert (await http.patch("/users/ghost", json={"role": "user"}, headers=admin)).status_code == 404
    ana = await token(http, "ana", "p1")
    assert (await http.patch("/users/ana", json={"role": "user"}, headers=admin)).json()["role"] == "user"
    assert (
        await http.post("/flows", json=FLOWS, headers=ana)
    ).status_code == 403  # the new role applies at once
    assert (await http.delete("/users/ana", headers=admin)).status_code == 204
    assert (await http.get("/flows", headers=ana)).status_code == 401  # her tokens went with her
    users = (await http.get("/users", headers=admin)).json()
    assert [u["username"] for u in users] == ["admin"] and "password_hash" not in users[0]
    actions = [e["action"] for e in rt.audit.entries() if e["action"].startswith("user.")]
    assert actions == ["user.delete", "user.change", "user.create"]
