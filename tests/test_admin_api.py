"""The admin HTTP API: in-process over ASGI for most cases, plus one real `sofiaflow run` server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest
from ports import free_port

from sofiaflow.runtime.api import Msg, Node
from sofiaflow.runtime.flows.store import revision_of
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "admin-test-password"


class CounterNode(Node):
    """Test node: `trigger()` (as inject's) counts in node, flow and global context and sends."""

    type = "test counter"
    inputs = 0

    def trigger(self, overrides: dict | None = None) -> None:
        count = (self.context.get("count") or 0) + 1
        self.context.set("count", count)
        self.flow.set("count", count)
        self.global_.set("last", {"n": count, "props": (overrides or {}).get("__user_inject_props__")})
        self.send({"payload": count})


class ToggleNode(Node):
    """Test node: a debug-like node with `set_active`."""

    type = "test toggle"

    def setup(self) -> None:
        self.active = True

    def set_active(self, active: bool) -> None:
        self.active = active

    def on_input(self, msg: Msg) -> None:
        pass


class SecretNode(Node):
    type = "test secret"
    inputs = 0
    credentials_spec = {"user": "text", "password": "password"}


def tab(tab_id: str = "t1", label: str = "Tab") -> dict[str, Any]:
    return {"id": tab_id, "type": "tab", "label": label, "disabled": False, "info": "", "env": []}


def junction(node_id: str, z: str = "t1", wires: list | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "junction", "z": z, "x": 100, "y": 100, "wires": wires or [[]], **extra}


FLOWS = [
    tab(),
    junction("j1", wires=[["j2"]]),
    junction("j2"),
    {
        "id": "c1",
        "type": "catch",
        "z": "t1",
        "name": "",
        "scope": None,
        "uncaught": False,
        "x": 100,
        "y": 200,
        "wires": [["j2"]],
    },
]


@pytest.fixture
async def runtime(tmp_path, registry):
    for cls in (CounterNode, ToggleNode, SecretNode):
        registry.register(cls, "tests")
    rt = Runtime(
        Settings(data_dir=tmp_path / "data", admin_password=PASSWORD, db_url=None), registry=registry
    )
    await rt.start()
    yield rt
    await rt.stop()


async def _token(client: httpx.AsyncClient, scope: str = "*") -> str:
    resp = await client.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": scope,
            "username": "admin",
            "password": PASSWORD,
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["access_token"]


@pytest.fixture
async def anon(runtime):
    AuthService(runtime.db, runtime.settings).ensure_admin()
    app = create_app(runtime)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        yield client


@pytest.fixture
async def client(anon):
    anon.headers["Authorization"] = f"Bearer {await _token(anon)}"
    return anon


V2 = {"Node-RED-API-Version": "v2"}


# ----- auth ---------------------------------------------------------------------------------------
async def test_routes_need_a_token(anon):
    for method, path in [
        ("GET", "/flows"),
        ("POST", "/flows"),
        ("GET", "/nodes"),
        ("GET", "/settings"),
        ("GET", "/context/global"),
        ("POST", "/inject/x"),
        ("GET", "/flow/t1"),
    ]:
        resp = await anon.request(method, path)
        assert resp.status_code == 401, (method, path)
        assert resp.json()["code"] == "unauthorized"
        assert "Bearer" in resp.json()["message"]
    resp = await anon.get("/flows", headers={"Authorization": "Bearer nope"})
    assert resp.status_code == 401 and "unknown token" in resp.json()["message"]
    login = await anon.get("/auth/login")
    assert login.json() == {
        "type": "credentials",
        "prompts": [
            {"id": "username", "type": "text", "label": "Username"},
            {"id": "password", "type": "password", "label": "Password"},
        ],
    }


async def test_token_by_form_and_json_and_revoke(anon):
    form_token = await _token(anon)
    resp = await anon.post(
        "/auth/token",
        json={
            "client_id": "node-red-editor",
            "grant_type": "password",
            "scope": "*",
            "username": "admin",
            "password": PASSWORD,
        },
    )
    body = resp.json()
    assert resp.status_code == 200 and body["token_type"] == "Bearer" and body["expires_in"] == 604800
    json_token = body["access_token"]
    for token in (form_token, json_token):
        assert (await anon.get("/flows", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    bad = await anon.post(
        "/auth/token", data={"grant_type": "password", "username": "admin", "password": "x"}
    )
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    other = await anon.post(
        "/auth/token", data={"client_id": "evil", "username": "admin", "password": PASSWORD}
    )
    assert other.status_code == 401 and other.json()["error"] == "invalid_client"
    missing = await anon.post("/auth/token", json={"username": "admin"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    revoked = await anon.post(
        "/auth/revoke", json={"token": json_token}, headers={"Authorization": f"Bearer {form_token}"}
    )
    assert revoked.status_code == 200
    assert (await anon.get("/flows", headers={"Authorization": f"Bearer {json_token}"})).status_code == 401
    assert (await anon.get("/flows", headers={"Authorization": f"Bearer {form_token}"})).status_code == 200


async def test_read_scope_cannot_deploy(anon):
    headers = {"Authorization": f"Bearer {await _token(anon, 'read')}"}
    assert (await anon.get("/flows", headers=headers)).status_code == 200
    resp = await anon.post("/flows", json=FLOWS, headers=headers)
    assert resp.status_code == 403 and "scope 'read'" in resp.json()["message"]


# ----- /flows -------------------------------------------------------------------------------------
async def test_flows_v1_and_v2(client, runtime):
    assert (await client.get("/flows")).json() == []
    resp = await client.post("/flows", json=FLOWS)
    assert resp.status_code == 204 and resp.content == b""
    assert (await client.get("/flows")).json() == FLOWS
    v2 = (await client.get("/flows", headers=V2)).json()
    assert v2 == {"flows": FLOWS, "rev": revision_of(FLOWS)}
    assert set(runtime.deployer.running) == {"j1", "j2", "c1"}

    changed = FLOWS + [junction("j3")]
    resp = await client.post("/flows", json={"flows": changed, "rev": v2["rev"]}, headers=V2)
    assert resp.status_code == 200 and resp.json() == {"rev": revision_of(changed)}
    assert (await client.get("/flows", headers=V2)).json()["rev"] == revision_of(changed)
    assert (await client.get("/flows", headers={"Node-RED-API-Version": "v9"})).status_code == 400


async def test_stale_rev_is_refused_and_changes_nothing(client, runtime):
    await client.post("/flows", json=FLOWS)
    before = (await client.get("/flows", headers=V2)).json()
    resp = await client.post("/flows", json={"flows": [tab()], "rev": "0" * 64}, headers=V2)
    assert resp.status_code == 409
    assert resp.json()["code"] == "version_mismatch" and resp.json()["message"] == "Error"
    assert (await client.get("/flows", headers=V2)).json() == before
    assert set(runtime.deployer.running) == {"j1", "j2", "c1"}


async def test_invalid_flows_list_every_problem_and_change_nothing(client, runtime):
    await client.post("/flows", json=FLOWS)
    running = dict(runtime.deployer.running)
    broken = [tab(), junction("a", wires=[["missing"]]), junction("a"), junction("b", z="nowhere")]
    resp = await client.post("/flows", json={"flows": broken}, headers=V2)
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == "invalid_flows" and body["message"] == f"{len(body['problems'])} problem(s)"
    messages = [p["message"] for p in body["problems"]]
    assert any("duplicate id" in m for m in messages)
    assert any("missing node 'missing'" in m for m in messages)
    assert any("missing tab" in m for m in messages)
    assert all(p["severity"] == "error" for p in body["problems"])
    assert (await client.get("/flows")).json() == FLOWS
    assert runtime.deployer.running == running  # the very same node objects keep running

    resp = await client.post("/flows", content=b"[{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and "not valid JSON" in resp.json()["problems"][0]["message"]
    resp = await client.post("/flows", json={"rev": "x"})
    assert resp.status_code == 400 and "'flows'" in resp.json()["problems"][0]["message"]
    resp = await client.post("/flows", json=FLOWS, headers={"Node-RED-Deployment-Type": "partial"})
    assert resp.status_code == 400 and resp.json()["code"] == "invalid_deployment_type"


async def test_not_runnable_nodes_are_reported_in_v2_answer(client, runtime):
    flows = [
        tab(),
        junction("j1"),
        {"id": "m1", "type": "some contrib node", "z": "t1", "topic": "a", "x": 1, "y": 1, "wires": [[]]},
    ]
    resp = await client.post("/flows", json={"flows": flows}, headers=V2)
    assert resp.status_code == 200
    problems = resp.json()["problems"]
    assert [p["id"] for p in problems if p["severity"] == "not-runnable"] == ["m1"]
    assert (await client.get("/flows")).json() == flows


async def test_deployment_types(client, runtime):
    flows = [tab("t1"), tab("t2"), junction("a1", "t1"), junction("a2", "t1"), junction("b1", "t2")]
    await client.post("/flows", json=flows)
    before = dict(runtime.deployer.running)
    flows[3] = junction("a2", "t1", name="renamed")
    resp = await client.post(
        "/flows", json={"flows": flows}, headers={**V2, "Node-RED-Deployment-Type": "nodes"}
    )
    assert resp.status_code == 200
    after = runtime.deployer.running
    assert after["a1"] is before["a1"] and after["b1"] is before["b1"]
    assert after["a2"] is not before["a2"] and after["a2"].name == "renamed"

    before = dict(after)
    flows[2] = junction("a1", "t1", name="changed")
    await client.post("/flows", json=flows, headers={"Node-RED-Deployment-Type": "flows"})
    after = runtime.deployer.running
    assert after["b1"] is before["b1"]  # the other tab was left alone
    assert after["a1"] is not before["a1"] and after["a2"] is not before["a2"]

    before = dict(after)
    resp = await client.post("/flows", headers={**V2, "Node-RED-Deployment-Type": "reload"})
    assert resp.status_code == 200 and resp.json()["rev"] == revision_of(flows)
    assert all(runtime.deployer.running[k] is not before[k] for k in before)


async def test_flow_state(client, runtime):
    await client.post("/flows", json=FLOWS)
    assert (await client.get("/flows/state")).json() == {"state": "start"}
    assert (await client.post("/flows/state", json={"state": "stop"})).json() == {"state": "stop"}
    assert runtime.deployer.running == {}
    assert (await client.post("/flows/state", json={"state": "start"})).json() == {"state": "start"}
    assert set(runtime.deployer.running) == {"j1", "j2", "c1"}
    bad = await client.post("/flows/state", json={"state": "pause"})
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_run_state"


# ----- /flow/:id ----------------------------------------------------------------------------------
async def test_flow_crud(client, runtime):
    await client.post("/flows", json=FLOWS)
    resp = await client.post("/flow", json={"label": "Second", "nodes": [junction("n1", z="ignored")]})
    assert resp.status_code == 200
    new_id = resp.json()["id"]
    got = (await client.get(f"/flow/{new_id}")).json()
    assert got["label"] == "Second" and [n["id"] for n in got["nodes"]] == ["n1"]
    assert got["nodes"][0]["z"] == new_id
    assert "n1" in runtime.deployer.running

    resp = await client.put(f"/flow/{new_id}", json={"label": "Renamed", "nodes": [junction("n2")]})
    assert resp.status_code == 200 and resp.json() == {"id": new_id}
    got = (await client.get(f"/flow/{new_id}")).json()
    assert got["label"] == "Renamed" and [n["id"] for n in got["nodes"]] == ["n2"]
    assert "n1" not in runtime.deployer.running and "n2" in runtime.deployer.running

    dup = await client.post("/flow", json={"label": "Dup", "nodes": [junction("j1")]})
    assert dup.status_code == 400 and dup.json()["code"] == "invalid_flows"

    assert (await client.delete(f"/flow/{new_id}")).status_code == 204
    assert (await client.get(f"/flow/{new_id}")).status_code == 404
    assert "n2" not in runtime.deployer.running
    for method in ("GET", "PUT", "DELETE"):
        resp = await client.request(method, "/flow/nope", json={"nodes": []})
        assert resp.status_code == 404 and "'nope'" in resp.json()["message"], method
    assert (await client.get("/flow/global")).json()["id"] == "global"
    assert (await client.get("/flows")).json() == FLOWS


# ----- palette, settings, credentials, diagnostics ---------------------------------------------------
async def test_nodes_list_types_with_schemas(client):
    nodes = (await client.get("/nodes", headers={"Accept": "application/json"})).json()
    by_type = {n["types"][0]: n for n in nodes}
    for name in ("junction", "catch"):
        entry = by_type[name]
        assert entry["id"] == f"{entry['module']}/{name}" and entry["enabled"] is True
        assert entry["schema"]["type"] == "object" and "properties" in entry["schema"]
        for key in ("category", "label", "help", "inputs", "outputs", "color", "version"):
            assert key in entry
    assert "scope" in by_type["catch"]["schema"]["properties"]
    module = by_type["junction"]["module"]
    mod = (await client.get(f"/nodes/{module}")).json()
    assert mod["name"] == module and any(n["types"] == ["junction"] for n in mod["nodes"])
    assert (await client.get(f"/nodes/{module}/junction")).json()["types"] == ["junction"]
    missing = await client.get("/nodes/no-such-module")
    assert missing.status_code == 404 and "no-such-module" in missing.json()["message"]


async def test_settings_diagnostics_openapi(client, runtime):
    settings = (await client.get("/settings")).json()
    assert settings["httpNodeRoot"] == "/" and settings["runtimeState"]["enabled"] is True
    assert settings["context"] == {"default": "memory", "stores": ["memory", "persistent"]}
    assert settings["flowFilePretty"] is False and settings["user"]["username"] == "admin"
    diag = (await client.get("/diagnostics")).json()
    assert diag["runtime"]["flows"]["state"] == "start"
    assert {"messages_total", "errors_total", "nodes", "version"} <= set(diag["runtime"])
    assert diag["python"]["version"].startswith("3.")
    spec = (await client.get("/openapi.json")).json()
    assert "/flows" in spec["paths"] and "/auth/token" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_credentials_public_view(client):
    flows = [tab(), {"id": "s1", "type": "test secret", "z": "t1", "x": 1, "y": 1, "wires": [[]]}]
    resp = await client.post(
        "/flows", json={"flows": flows, "credentials": {"s1": {"user": "u", "password": "p"}}}, headers=V2
    )
    assert resp.status_code == 200
    assert (await client.get("/credentials/test secret/s1")).json() == {"user": "u", "has_password": True}
    assert (await client.get("/credentials/test secret/other")).json() == {"has_password": False}
    assert (await client.get("/credentials/nope/s1")).status_code == 404


# ----- context and node actions --------------------------------------------------------------------
async def test_context_after_a_node_sets_it(client, runtime):
    flows = [
        tab(),
        {"id": "n1", "type": "test counter", "z": "t1", "x": 1, "y": 1, "wires": [["j1"]]},
        junction("j1"),
    ]
    await client.post("/flows", json=flows)
    resp = await client.post("/inject/n1", json={"__user_inject_props__": [{"p": "payload"}]})
    assert resp.status_code == 200 and resp.text == "OK"
    assert (await client.post("/inject/n1")).status_code == 200

    node = (await client.get("/context/node/n1")).json()
    assert node == {"memory": {"count": {"msg": "2", "format": "number"}}, "persistent": {}}
    assert (await client.get("/context/flow/t1/count")).json() == {"msg": "2", "format": "number"}
    assert (await client.get("/context/flow/t1?store=memory")).json() == {
        "memory": {"count": {"msg": "2", "format": "number"}}
    }
    last = (await client.get("/context/global/last")).json()
    assert last["format"] == "Object" and json.loads(last["msg"]) == {"n": 2, "props": None}
    assert (await client.get("/context/global/last.n")).json() == {"msg": "2", "format": "number"}
    persistent = (await client.get("/context/global/last?store=persistent")).json()
    assert persistent == {"msg": "(undefined)", "format": "null", "store": "persistent"}

    assert (await client.delete("/context/node/n1/count")).status_code == 204
    assert (await client.get("/context/node/n1")).json()["memory"] == {}
    assert (await client.get("/context/node/ghost")).status_code == 404
    assert (await client.get("/context/flow/ghost")).status_code == 404
    assert (await client.get("/context/global?store=nope")).status_code == 404


async def test_inject_and_debug_endpoints(client, runtime):
    flows = [
        tab(),
        junction("j1"),
        {"id": "d1", "type": "test toggle", "z": "t1", "x": 1, "y": 1, "wires": []},
    ]
    await client.post("/flows", json=flows)
    resp = await client.post("/inject/unknown")
    assert resp.status_code == 404 and "'unknown'" in resp.json()["message"]
    assert (await client.post("/inject/j1")).status_code == 404  # runs, but cannot be triggered
    assert (await client.post("/debug/d1/disable")).status_code == 201
    assert runtime.deployer.running["d1"].active is False
    assert (await client.post("/debug/d1/enable")).status_code == 200
    assert runtime.deployer.running["d1"].active is True
    assert (await client.post("/debug/ghost/enable")).status_code == 404
    assert (await client.post("/debug/disable", json={"nodes": ["d1"]})).status_code == 201
    assert runtime.deployer.running["d1"].active is False


async def test_real_inject_and_debug_nodes(client, runtime):
    flows = [
        tab(),
        {
            "id": "i1",
            "type": "inject",
            "z": "t1",
            "props": [{"p": "payload"}],
            "payload": "5",
            "payloadType": "num",
            "repeat": "",
            "crontab": "",
            "once": False,
            "x": 1,
            "y": 1,
            "wires": [["d1"]],
        },
        {
            "id": "d1",
            "type": "debug",
            "z": "t1",
            "active": True,
            "tosidebar": True,
            "complete": "payload",
            "targetType": "msg",
            "x": 2,
            "y": 1,
            "wires": [],
        },
    ]
    resp = await client.post("/flows", json={"flows": flows}, headers=V2)
    assert resp.status_code == 200, resp.text
    seen: list = []
    runtime.events.subscribe("debug", lambda _topic, data: seen.append(data))
    assert (await client.post("/inject/i1")).text == "OK"
    body = {"__user_inject_props__": [{"p": "payload", "v": "7", "vt": "num"}]}
    assert (await client.post("/inject/i1", json=body)).status_code == 200
    await runtime.engine.idle()
    assert [d["msg"] for d in seen] == ["5", "7"]
    assert (await client.post("/debug/d1/disable")).status_code == 201
    await client.post("/inject/i1")
    await runtime.engine.idle()
    assert len(seen) == 2


# ----- the real server ------------------------------------------------------------------------------
def _sofiaflow_command() -> list[str]:
    script = shutil.which("sofiaflow", path=os.path.dirname(sys.executable))
    return [script] if script else [sys.executable, "-m", "sofiaflow.runtime.cli"]


@pytest.mark.timeout(60)
def test_real_server_round_trip(tmp_path):
    port = free_port()
    env = {**os.environ, "SOFIAFLOW_ADMIN_PASSWORD": PASSWORD, "SOFIAFLOW_HOST": "127.0.0.1"}
    env.pop("SOFIAFLOW_DB_URL", None)
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*_sofiaflow_command(), "run", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90  # generous: other tests share the cores
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/auth/login", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (
                "server did not come up:\n" + (tmp_path / "server.log").read_text()
            )
            time.sleep(0.1)
        with httpx.Client(base_url=base, timeout=10) as http:
            resp = http.post(
                "/auth/token",
                data={
                    "client_id": "node-red-admin",
                    "grant_type": "password",
                    "scope": "*",
                    "username": "admin",
                    "password": PASSWORD,
                },
            )
            assert resp.status_code == 200, resp.text
            http.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
            assert http.get("/flows").status_code == 200
            resp = http.post("/flows", json={"flows": FLOWS}, headers=V2)
            assert resp.status_code == 200 and resp.json()["rev"] == revision_of(FLOWS)
            assert http.get("/flows", headers=V2).json() == {"flows": FLOWS, "rev": revision_of(FLOWS)}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
    output = (tmp_path / "server.log").read_text()
    assert "shown once" not in output  # the password came from the environment
    assert "runtime stopped" in output  # SIGTERM shut the runtime down cleanly
    assert proc.returncode == 0, output
