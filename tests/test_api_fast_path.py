"""The API Manager's consumer calls are served ahead of the admin app's middleware and router (the way the flows'
own endpoints are), with the same door checks: body size and JSON depth limits, the admin answers' security
headers, and every path outside the consumer prefix still through the admin app."""

from __future__ import annotations

import json

import httpx
import pytest
from argon2 import PasswordHasher

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

BASE = "/api-manager/server/api"
FLOWS = [
    {"id": "t", "type": "tab", "label": "apis"},
    {"id": "api", "type": "api", "name": "fast", "version": 1, "state": "published", "quota": 0},
    {
        "id": "byZone",
        "type": "api-endpoint",
        "z": "t",
        "api": "api",
        "method": "GET",
        "path": "/byZone",
        "operation": "query",
        "ontology": "Reading",
        "query": '{"zone": "{$zone}"}',
        "parameters": [{"name": "zone", "in": "query", "type": "string", "required": True}],
        "wires": [],
    },
    {
        "id": "add",
        "type": "api-endpoint",
        "z": "t",
        "api": "api",
        "method": "POST",
        "path": "/",
        "operation": "insert",
        "ontology": "Reading",
        "wires": [],
    },
]


class Seen:
    """A pure ASGI middleware remembering the paths that went through the admin app's middleware stack."""

    paths: list[str] = []

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            Seen.paths.append(scope["path"])
        await self.app(scope, receive, send)


@pytest.fixture
async def env(tmp_path, registry):
    rt = Runtime(
        Settings(
            data_dir=tmp_path,
            admin_password="pw",
            history_interval=0,
            ontologies_dir=None,
            default_flows=None,
            mqtt_port=0,
        ),
        registry=registry,
    )
    await rt.start()
    auth = AuthService(rt.db, rt.settings)
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    auth.ensure_admin()
    app = create_app(rt, auth)
    app.add_middleware(Seen)
    Seen.paths = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
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
        admin = {"Authorization": f"Bearer {token}"}
        schema = {"type": "object", "properties": {"zone": {"type": "string"}}}
        made = await http.post("/ontologies", json={"name": "Reading", "schema": schema}, headers=admin)
        assert made.status_code == 201, made.text
        key = (await http.post("/api-keys", json={"label": "t"}, headers=admin)).json()["key"]
        await rt.deploy(FLOWS)
        yield http, {"X-OP-APIKey": key}, admin
    await rt.stop()


async def test_consumer_calls_skip_the_admin_middleware_and_admin_calls_do_not(env):
    http, key, admin = env
    Seen.paths = []
    stored = await http.post(f"{BASE}/v1/fast/", json={"zone": "n"}, headers=key)
    assert stored.status_code == 201, stored.text
    page = await http.get(f"{BASE}/v1/fast/byZone", params={"zone": "n"}, headers=key)
    assert page.status_code == 200 and page.json()["total"] == 1, page.text
    unknown = await http.get(f"{BASE}/v9/nothing/x", headers=key)
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert Seen.paths == []
    assert (await http.get("/api-manager/stats", headers=admin)).status_code == 200
    document = await http.get(f"{BASE}/v1/fast/openapi.json")
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.")
    assert Seen.paths == ["/api-manager/stats"]


async def test_consumer_calls_keep_the_security_headers_of_admin_answers(env):
    http, key, _admin = env
    for answer in (
        await http.get(f"{BASE}/v1/fast/byZone", params={"zone": "n"}, headers=key),
        await http.get(f"{BASE}/v1/fast/byZone", params={"zone": "n"}),  # 401
    ):
        assert answer.headers["x-frame-options"] == "DENY", answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.status_code == 401 and answer.json()["code"] == "unauthorized"


async def test_consumer_calls_keep_the_body_size_and_json_depth_limits(env):
    http, key, _admin = env
    big = await http.post(
        f"{BASE}/v1/fast/",
        content=b'{"zone": "' + b"x" * (5 * 1024 * 1024) + b'"}',
        headers={**key, "Content-Type": "application/json"},
    )
    assert big.status_code == 413 and big.json()["code"] == "too_large"
    deep = await http.post(
        f"{BASE}/v1/fast/",
        content=json.dumps({"zone": "n", "x": json.loads("[" * 100 + "]" * 100)}).encode(),
        headers={**key, "Content-Type": "application/json"},
    )
    assert deep.status_code == 400 and deep.json()["code"] == "too_deep"
    deep_query = await http.get(f"{BASE}/v1/fast/byZone", params={"zone": "[" * 100}, headers=key)
    assert deep_query.status_code == 400 and "zone" in deep_query.json()["message"]


async def test_paths_that_only_start_like_the_consumer_prefix_stay_with_the_admin_app(env):
    http, key, _admin = env
    Seen.paths = []
    near = await http.get(f"{BASE}x/v1/fast/byZone", params={"zone": "n"}, headers=key)
    assert near.status_code == 404
    assert Seen.paths == [f"{BASE}x/v1/fast/byZone"]
