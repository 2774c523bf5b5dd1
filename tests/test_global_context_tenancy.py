"""Global context is per tenant: developers' flows share `global` only with their own flows; administrators'
and ownerless flows share the platform's. Without this, one tenant's flows could read what another's keep in
`global` (keys, tokens, state) or overwrite it."""

from __future__ import annotations

import httpx
import pytest

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings


def change_flow(tab_id: str, prefix: str, key: str, value: str | None) -> list[dict]:
    """A tab whose inject button sets (value given) or reads (None) global `key` through a change node."""
    rule = (
        {"t": "set", "p": key, "pt": "global", "to": value, "tot": "str"}
        if value is not None
        else {"t": "set", "p": "payload", "pt": "msg", "to": key, "tot": "global"}
    )
    return [
        {"id": tab_id, "type": "tab", "label": tab_id},
        {
            "id": f"{prefix}i",
            "type": "inject",
            "z": tab_id,
            "props": [{"p": "payload"}],
            "payload": "",
            "payloadType": "str",
            "wires": [[f"{prefix}c"]],
        },
        {"id": f"{prefix}c", "type": "change", "z": tab_id, "rules": [rule], "wires": [[f"{prefix}f"]]},
        {
            "id": f"{prefix}f",
            "type": "python function",
            "z": tab_id,
            "outputs": 1,
            "wires": [],
            "func": "flow.set('seen', msg.get('payload'))\nglobal_.set('from_python', node.id)\nreturn msg",
        },
    ]


@pytest.fixture
async def world(tmp_path, registry):
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
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt)), base_url="http://t"
    ) as http:
        headers = {}
        for name, password in (("admin", "pw"), ("ana", "ana-pw"), ("bob", "bob-pw")):
            answer = await http.post(
                "/auth/token",
                data={
                    "client_id": "node-red-admin",
                    "grant_type": "password",
                    "scope": "*",
                    "username": name,
                    "password": password,
                },
            )
            headers[name] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        yield rt, http, headers
    await rt.stop()


async def press(rt: Runtime, http: httpx.AsyncClient, headers: dict, node_id: str) -> None:
    answer = await http.post(f"/inject/{node_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    await rt.engine.idle()


def flow_value(rt: Runtime, tab_id: str, key: str):
    return rt.engine.contexts.scope(f"flow:{tab_id}").get(key)


async def test_each_tenant_has_its_own_global_context(world):
    rt, http, h = world
    # the administrator first: an administrator's deploy is the whole flow set; developers' keep the others'
    assert (
        await http.post("/flows", json=change_flow("tz", "z", "secret", None), headers=h["admin"])
    ).status_code == 204
    assert (
        await http.post("/flows", json=change_flow("ta", "a", "secret", "ana-token"), headers=h["ana"])
    ).status_code == 204
    assert (
        await http.post("/flows", json=change_flow("tb", "b", "secret", None), headers=h["bob"])
    ).status_code == 204
    await press(rt, http, h["ana"], "ai")
    await press(rt, http, h["bob"], "bi")
    await press(rt, http, h["admin"], "zi")
    assert rt.engine.nodes["af"].global_.get("secret") == "ana-token"
    assert flow_value(rt, "tb", "seen") is None  # bob's flows cannot read ana's global
    assert flow_value(rt, "tz", "seen") is None  # the platform's global is not ana's either
    # python function bodies (in their sandbox worker) use the same per-tenant global
    assert rt.engine.nodes["af"].global_.get("from_python") == "af"
    assert rt.engine.nodes["bf"].global_.get("from_python") == "bf"
    assert rt.engine.nodes["zf"].global_.get("from_python") == "zf"


async def test_a_tenants_flows_share_their_global_across_tabs(world):
    rt, http, h = world
    flows = change_flow("ta", "a", "k", "shared-by-ana") + change_flow("ta2", "c", "k", None)
    assert (await http.post("/flows", json=flows, headers=h["ana"])).status_code == 204
    await press(rt, http, h["ana"], "ai")
    await press(rt, http, h["ana"], "ci")
    assert flow_value(rt, "ta2", "seen") == "shared-by-ana"
