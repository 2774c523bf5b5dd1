"""An in-process runtime with its admin API for tenancy tests: an administrator and two developers (ana,
bob), each with a bearer token; `press` clicks an inject button as one of them and waits until the flows are idle."""

from __future__ import annotations

import httpx
import pytest

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings


@pytest.fixture
async def world(tmp_path, registry):
    """(runtime, admin API client, {"admin"|"ana"|"bob": auth headers})."""
    rt = Runtime(
        Settings(
            data_dir=tmp_path,
            admin_password="pw",
            history_interval=0,
            ontologies_dir=None,
            default_flows=None,
        ),
        registry=registry,
    )
    await rt.start()
    auth = AuthService(rt.db, rt.settings)
    auth.ensure_admin()
    for name in ("ana", "bob"):
        auth.add_user(name, f"{name}-pw", "developer")
    transport = httpx.ASGITransport(app=create_app(rt))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        headers = {}
        for name, password in (("admin", "pw"), ("ana", "ana-pw"), ("bob", "bob-pw")):
            form = {"client_id": "node-red-admin", "grant_type": "password", "scope": "*"}
            answer = await http.post("/auth/token", data={**form, "username": name, "password": password})
            headers[name] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        yield rt, http, headers
    await rt.stop()


async def press(rt: Runtime, http: httpx.AsyncClient, headers: dict, node_id: str) -> None:
    """Click inject node `node_id` as the holder of `headers`, then wait until the flows are idle."""
    answer = await http.post(f"/inject/{node_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    await rt.engine.idle()
