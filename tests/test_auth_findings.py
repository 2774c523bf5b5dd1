"""Accounts, tokens and headers on the real admin app: read-only tokens cannot write anywhere, a password change
ends old tokens, a re-created user name inherits nothing, `role: null` is refused, the API description needs a
login, lockouts are per (address, user name), every role revokes its own token, and security headers."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi.routing import APIRoute

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

SCHEMA = {"type": "object", "properties": {"v": {"type": "number"}}}
FLOWS = [
    {"id": "t1", "type": "tab", "label": "one"},
    {"id": "n1", "type": "inject", "z": "t1", "wires": [[]]},
]


@pytest.fixture
async def app(tmp_path, registry):
    rt = Runtime(
        Settings(data_dir=tmp_path, admin_password="pw", history_interval=0, ontologies_dir=None),
        registry=registry,
    )
    await rt.start()
    auth = AuthService(rt.db, rt.settings)
    auth.ensure_admin()
    api = create_app(rt, auth)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api, client=("10.0.0.9", 4000)), base_url="http://t"
    ) as http:
        yield rt, api, http
    await rt.stop()


async def login(http, username, password, scope="*"):
    answer = await http.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": scope,
            "username": username,
            "password": password,
        },
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def add_user(http, admin, name, role):
    created = await http.post(
        "/users", json={"username": name, "password": f"{name}-pw", "role": role}, headers=admin
    )
    assert created.status_code == 201, created.text


def write_routes(api):
    """(method, path with every parameter filled) of every write route of the app."""
    out = []

    def walk(routes):
        for route in routes:
            if isinstance(route, APIRoute):
                for method in sorted(route.methods - {"GET", "HEAD", "OPTIONS"}):
                    out.append((method, re.sub(r"\{[^}]+\}", "validate", route.path)))
            elif hasattr(route, "original_router"):  # an included router (no prefixes in this app)
                walk(route.original_router.routes)

    walk(api.routes)
    assert len(out) > 20, out
    return out


# ----- 1. read-scope tokens ---------------------------------------------------------------------------------------
async def test_a_read_scope_token_writes_nowhere(app):
    rt, api, http = app
    read = await login(http, "admin", "pw", scope="read")
    routes = write_routes(api)
    assert ("POST", "/ontologies/validate/validate") in routes and ("PATCH", "/users/validate") in routes
    allowed = {("POST", "/auth/token"), ("POST", "/auth/revoke"), ("POST", "/ontologies/validate/validate")}
    full = await login(http, "admin", "pw")
    await add_user(http, full, "validate", "developer")  # a name that ends a path in /validate
    for method, path in routes:
        if (method, path) in allowed:
            continue
        answer = await http.request(method, path, json={}, headers=read)
        assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
    # the suffix is no way in: the password of user "validate" stays
    reset = await http.patch("/users/validate", json={"password": "taken"}, headers=read)
    assert reset.status_code == 403
    assert await _token_works(http, "validate", "validate-pw")
    # the one real read-only write still answers
    assert (
        await http.post("/ontologies", json={"name": "R", "schema": SCHEMA}, headers=full)
    ).status_code == 201
    checked = await http.post("/ontologies/R/validate", json={"v": 1}, headers=read)
    assert checked.status_code == 200, checked.text


async def test_the_user_role_writes_nowhere_but_revokes_its_own_token(app):
    rt, api, http = app
    admin = await login(http, "admin", "pw")
    await add_user(http, admin, "viewer", "user")
    viewer = await login(http, "viewer", "viewer-pw")
    for method, path in write_routes(api):
        if (
            path.startswith("/auth/")
            or (method, path) == ("POST", "/ontologies/validate/validate")
            or path.startswith("/api-keys")
        ):  # consumers hold the role 'user' and manage their own keys
            continue
        answer = await http.request(method, path, json={}, headers=viewer)
        assert answer.status_code == 403, (method, path, answer.status_code, answer.text)
    # 8. every role revokes its own token
    assert (await http.post("/auth/revoke", headers=viewer)).status_code == 200
    assert (await http.get("/flows", headers=viewer)).status_code == 401


async def _token_works(http, username, password) -> bool:
    answer = await http.post(
        "/auth/token", data={"grant_type": "password", "username": username, "password": password}
    )
    return answer.status_code == 200


async def test_read_scope_token_revokes_itself_but_not_another_users_token(app):
    rt, api, http = app
    admin = await login(http, "admin", "pw")
    await add_user(http, admin, "dev", "developer")
    dev = await login(http, "dev", "dev-pw")
    read = await login(http, "admin", "pw", scope="read")
    dev_token = dev["Authorization"].split()[1]
    refused = await http.post("/auth/revoke", json={"token": dev_token}, headers=read)
    assert refused.status_code == 403
    admin_token = admin["Authorization"].split()[1]
    assert (await http.post("/auth/revoke", json={"token": admin_token}, headers=dev)).status_code == 403
    assert (await http.get("/flows", headers=dev)).status_code == 200
    assert (await http.post("/auth/revoke", headers=read)).status_code == 200
    assert (await http.get("/flows", headers=read)).status_code == 401
    # an administrator with a full token may end another user's token
    assert (await http.post("/auth/revoke", json={"token": dev_token}, headers=admin)).status_code == 200
    assert (await http.get("/flows", headers=dev)).status_code == 401


# ----- 3. password resets and deleted users ---------------------------------------------------------------------
async def test_a_password_reset_ends_the_users_tokens(app):
    rt, api, http = app
    admin = await login(http, "admin", "pw")
    await add_user(http, admin, "dev", "developer")
    dev = await login(http, "dev", "dev-pw")
    assert (await http.get("/flows", headers=dev)).status_code == 200
    assert (await http.patch("/users/dev", json={"password": "new-pw"}, headers=admin)).status_code == 200
    assert (await http.get("/flows", headers=dev)).status_code == 401
    assert (await http.get("/flows", headers=admin)).status_code == 200  # others keep theirs
    assert (await http.get("/flows", headers=await login(http, "dev", "new-pw"))).status_code == 200


async def test_a_recreated_user_name_inherits_nothing(app):
    rt, api, http = app
    admin = await login(http, "admin", "pw")
    await add_user(http, admin, "ana", "developer")
    ana = await login(http, "ana", "ana-pw")
    assert (
        await http.post("/ontologies", json={"name": "Owned", "schema": SCHEMA}, headers=ana)
    ).status_code == 201
    assert (
        await http.post("/ontologies", json={"name": "Shared", "schema": SCHEMA}, headers=admin)
    ).status_code == 201
    granted = await http.put("/ontologies/Shared/grants/ana", json={"access": "ALL"}, headers=admin)
    assert granted.status_code in (200, 201, 204), granted.text
    device = await http.post(
        "/devices", json={"name": "ana-dev", "ontologies": {"Owned": "QUERY"}}, headers=ana
    )
    assert device.status_code == 201, device.text
    key = await http.post("/api-keys", json={"label": "k"}, headers=ana)
    assert key.status_code == 201, key.text
    assert (await http.post("/flows", json=FLOWS, headers=ana)).status_code in (200, 204)
    assert rt.ownership.owner("t1") == "ana"
    assert (await http.get("/ontologies/Owned", headers=ana)).status_code == 200

    assert (await http.delete("/users/ana", headers=admin)).status_code == 204
    await add_user(http, admin, "ana", "developer")
    new_ana = await login(http, "ana", "ana-pw")
    assert (await http.get("/ontologies", headers=new_ana)).json() == []
    for name in ("Owned", "Shared"):
        assert (await http.get(f"/ontologies/{name}", headers=new_ana)).status_code == 404
    assert (await http.get("/devices", headers=new_ana)).json() == []
    assert (await http.get("/api-keys", headers=new_ana)).json() == []
    from sofiaflow.runtime.api_manager.keys import UnknownKeyError

    with pytest.raises(UnknownKeyError):  # the old key does not act as the new ana
        rt.engine.services["api-manager"].keys.user_of(key.json()["key"])
    assert rt.ownership.owner("t1") is None  # the administrators' now
    assert [n["id"] for n in (await http.get("/flows", headers=new_ana)).json()] == []
    # what ana owned is the administrators' and still there
    assert (await http.get("/ontologies/Owned", headers=admin)).json()["owner"] is None
    assert (await http.get("/devices/ana-dev", headers=admin)).json()["owner"] is None
    assert (await http.get("/ontologies/Shared/grants", headers=admin)).json() == []


# ----- 4. role null ---------------------------------------------------------------------------------------------
async def test_creating_a_user_with_role_null_is_refused(app):
    rt, api, http = app
    admin = await login(http, "admin", "pw")
    answer = await http.post(
        "/users", json={"username": "n", "password": "n-pw", "role": None}, headers=admin
    )
    assert answer.status_code == 400 and answer.json()["field"] == "role"
    assert "n" not in [u["username"] for u in (await http.get("/users", headers=admin)).json()]
    # left out, the role is the documented default
    answer = await http.post("/users", json={"username": "d", "password": "d-pw"}, headers=admin)
    assert answer.status_code == 201 and answer.json()["role"] == "developer"


# ----- 5. the API description --------------------------------------------------------------------------------------
async def test_the_api_description_needs_a_login_but_the_api_catalogue_stays_public(app):
    rt, api, http = app
    for path in ("/openapi.json", "/docs", "/redoc"):
        answer = await http.get(path)
        assert answer.status_code == 401, path
        assert "openapi" not in answer.text.lower() or "log" in answer.text.lower()
    read = await login(http, "admin", "pw", scope="read")
    document = await http.get("/openapi.json", headers=read)
    assert document.status_code == 200 and "/auth/token" in document.json()["paths"]
    assert (await http.get("/docs", headers=read)).status_code == 200
    assert (await http.get("/openapi.json", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await http.get("/api-manager/catalog")).status_code == 200
    assert (await http.get("/api-manager/swagger")).status_code == 200


# ----- 7. lockouts -------------------------------------------------------------------------------------------------
def _client(api, address):
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api, client=(address, 4000)), base_url="http://t"
    )


async def test_a_stranger_cannot_lock_the_owner_out(app):
    rt, api, http = app
    async with _client(api, "203.0.113.7") as stranger:
        for _ in range(8):
            failed = await stranger.post("/auth/token", data={"username": "admin", "password": "guess"})
            assert failed.status_code in (401, 429)
        assert failed.status_code == 429
    assert await _token_works(http, "admin", "pw")  # the owner's own address is not locked


async def test_one_address_cannot_spray_guesses_over_many_user_names(app):
    rt, api, http = app
    auth = api.state.auth
    async with _client(api, "203.0.113.8") as sprayer:
        statuses = []
        for i in range(auth.max_address_failures + 2):
            answer = await sprayer.post("/auth/token", data={"username": f"u{i}", "password": "guess"})
            statuses.append(answer.status_code)
        assert statuses[: auth.max_address_failures] == [401] * auth.max_address_failures
        assert statuses[-1] == 429
        assert (
            await sprayer.post("/auth/token", data={"username": "admin", "password": "pw"})
        ).status_code == 429
    assert await _token_works(http, "admin", "pw")


# ----- 9. headers --------------------------------------------------------------------------------------------------
async def test_admin_answers_carry_security_headers_but_flow_endpoints_do_not(app):
    rt, api, http = app
    admin = await login(http, "admin", "pw")
    flows = [
        {"id": "t", "type": "tab"},
        {"id": "in", "type": "http in", "z": "t", "url": "/hello", "method": "get", "wires": [["out"]]},
        {"id": "out", "type": "http response", "z": "t", "statusCode": "200", "headers": {}, "wires": []},
    ]
    assert (await http.post("/flows", json=flows, headers=admin)).status_code in (200, 204)
    for answer in (
        await http.get("/flows", headers=admin),
        await http.get("/auth/login"),
        await http.get("/docs", headers=admin),
        await http.post("/users", json=[], headers=admin),
    ):
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    flow_answer = await http.get("/hello")
    assert flow_answer.status_code == 200
    assert (
        "x-frame-options" not in flow_answer.headers and "content-security-policy" not in flow_answer.headers
    )


# ----- every wrong role -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "role", [None, 0, 1, True, False, "", "root", "Administrator", "admin ", [], ["user"], {}]
)
async def test_any_role_but_a_known_one_is_refused_with_its_field(app, role):
    rt, api, http = app
    admin = await login(http, "admin", "pw")
    answer = await http.post(
        "/users", json={"username": "p", "password": "p-pw", "role": role}, headers=admin
    )
    assert answer.status_code == 400 and answer.json()["field"] == "role", answer.text
    assert "p" not in [u["username"] for u in (await http.get("/users", headers=admin)).json()]


async def test_refused_logins_are_audited_with_the_name_tried_and_the_address(tmp_path):
    runtime = Runtime(
        Settings(
            data_dir=tmp_path / "data",
            admin_password="right-pw",
            db_url=None,
            history_interval=0,
            default_flows=None,
        )
    )
    await runtime.start()
    try:
        AuthService(runtime.db, runtime.settings).ensure_admin()
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://t"
        ) as http:
            answer = await http.post(
                "/auth/token",
                data={
                    "client_id": "node-red-admin",
                    "grant_type": "password",
                    "scope": "*",
                    "username": "admin",
                    "password": "wrong",
                },
            )
            assert answer.status_code == 401
        entries = runtime.audit.entries(action="auth.login")
        assert [(e["user"], e["outcome"]) for e in entries] == [("admin", "denied")]
        assert "wrong" not in str(entries)  # never the password tried
    finally:
        await runtime.stop()
