"""Ownership and sharing: developers see and change only their own or shared flows and ontologies;
ontology nodes act with the rights of their flow's owner; refusals are audited."""

from __future__ import annotations

import httpx
import pytest

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

SCHEMA = {"type": "object", "required": ["v"], "properties": {"v": {"type": "number"}}}
V2 = {"Node-RED-API-Version": "v2"}


def tab(tab_id, *nodes):
    return [{"id": tab_id, "type": "tab", "label": tab_id}, *[{**n, "z": tab_id} for n in nodes]]


def inject(node_id):
    return {"id": node_id, "type": "inject", "wires": [[]]}


@pytest.fixture
async def world(tmp_path, registry):
    rt = Runtime(
        Settings(data_dir=tmp_path, admin_password="pw", history_interval=0, ontologies_dir=None),
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


async def ids(http, headers):
    return sorted(n["id"] for n in (await http.get("/flows", headers=headers)).json())


async def test_developers_see_and_change_only_their_own_flows(world):
    rt, http, h = world
    assert (await http.post("/flows", json=tab("ta", inject("a1")), headers=h["ana"])).status_code == 204
    assert (await http.post("/flows", json=tab("tb", inject("b1")), headers=h["bob"])).status_code == 204
    assert sorted(n["id"] for n in rt.flows) == ["a1", "b1", "ta", "tb"]  # bob's deploy kept ana's tab
    assert await ids(http, h["ana"]) == ["a1", "ta"] and await ids(http, h["bob"]) == ["b1", "tb"]
    assert await ids(http, h["admin"]) == ["a1", "b1", "ta", "tb"]
    rev = (await http.get("/flows", headers={**h["bob"], **V2})).json()["rev"]
    assert rev == rt.rev

    # bob cannot reach ana's tab, by deploy, by /flow, or by reading it
    refused = await http.post("/flows", json=tab("tb", inject("b1")) + tab("ta"), headers=h["bob"])
    assert refused.status_code == 403 and "'ta'" in refused.json()["message"]
    sneaky = await http.post(
        "/flows", json=tab("tb", inject("b1")) + [{**inject("x"), "z": "ta"}], headers=h["bob"]
    )
    assert sneaky.status_code == 403
    assert (
        await http.put("/flow/ta", json={"id": "ta", "label": "mine", "nodes": []}, headers=h["bob"])
    ).status_code == 403
    assert (await http.delete("/flow/ta", headers=h["bob"])).status_code == 403
    assert (await http.get("/flow/ta", headers=h["bob"])).status_code == 404
    assert sorted(n["id"] for n in rt.flows) == ["a1", "b1", "ta", "tb"]
    denied = [e for e in rt.audit.entries(user="bob", outcome="denied")]
    assert len(denied) == 4 and {e["action"] for e in denied} == {
        "POST /flows",
        "PUT /flow/ta",
        "DELETE /flow/ta",
    }

    # shared with bob, ana's tab is his to see and change
    assert (await http.put("/flow/ta/sharing", json={"shared": ["bob"]}, headers=h["bob"])).status_code == 403
    shared = await http.put("/flow/ta/sharing", json={"shared": ["bob"]}, headers=h["ana"])
    assert shared.json() == {"tab": "ta", "id": "ta", "kind": "tab", "owner": "ana", "shared": ["bob"]}
    assert await ids(http, h["bob"]) == ["a1", "b1", "ta", "tb"]
    assert (
        await http.put(
            "/flow/ta", json={"id": "ta", "label": "both", "nodes": [inject("a2")]}, headers=h["bob"]
        )
    ).status_code == 200
    assert [e["action"] for e in rt.audit.entries(action="flow.share")] == ["flow.share"]
    # what bob leaves out of his deploy is his own tab, which goes; ana's tab stays
    assert (await http.post("/flows", json=tab("ta", inject("a2")), headers=h["bob"])).status_code == 204
    assert sorted(n["id"] for n in rt.flows) == ["a2", "ta"]
    assert rt.ownership.sharing("tb")["owner"] is None and rt.ownership.sharing("ta")["owner"] == "ana"


async def test_ontology_rights_follow_owners_and_grants(world):
    rt, http, h = world
    created = await http.post("/ontologies", json={"name": "Reading", "schema": SCHEMA}, headers=h["ana"])
    assert created.status_code == 201 and created.json()["owner"] == "ana"
    assert (await http.post("/ontologies/Reading/data", json={"v": 1}, headers=h["ana"])).status_code == 201
    # bob does not see it at all
    assert [o["name"] for o in (await http.get("/ontologies", headers=h["bob"])).json()] == []
    assert (await http.get("/ontologies/Reading/data", headers=h["bob"])).status_code == 404
    writer = tab("tb", {"id": "ins", "type": "ontology-insert", "ontology": "Reading", "wires": [[]]})
    reader = tab("tb", {"id": "q", "type": "ontology-query", "ontology": "Reading", "wires": [[]]})
    refused = await http.post("/flows", json=writer, headers=h["bob"])
    assert refused.status_code == 400 and "no INSERT right" in str(refused.json())
    assert "tb" not in {n["id"] for n in rt.flows}

    # QUERY shared: bob reads, his query node deploys, his insert node and his writes are refused
    assert (
        await http.put("/ontologies/Reading/grants/bob", json={"access": "QUERY"}, headers=h["bob"])
    ).status_code == 404
    assert (
        await http.put("/ontologies/Reading/grants/bob", json={"access": "READ"}, headers=h["ana"])
    ).status_code == 400
    assert (
        await http.put("/ontologies/Reading/grants/bob", json={"access": "QUERY"}, headers=h["ana"])
    ).status_code == 200
    assert (await http.get("/ontologies/Reading/data", headers=h["bob"])).json()["total"] == 1
    write = await http.post("/ontologies/Reading/data", json={"v": 2}, headers=h["bob"])
    assert write.status_code == 403 and "INSERT" in write.json()["message"]
    assert (await http.post("/flows", json=reader, headers=h["bob"])).status_code == 204
    assert (await http.post("/flows", json=writer, headers=h["bob"])).status_code == 400
    assert (
        await http.put("/ontologies/Reading", json={"description": "bob's now"}, headers=h["bob"])
    ).status_code == 403
    # ALL shared: the insert node deploys and bob writes
    assert (
        await http.put("/ontologies/Reading/grants/bob", json={"access": "ALL"}, headers=h["ana"])
    ).status_code == 200
    assert (await http.post("/flows", json=writer, headers=h["bob"])).status_code == 204
    assert (await http.post("/ontologies/Reading/data", json={"v": 3}, headers=h["bob"])).status_code == 201
    assert (await http.get("/ontologies/Reading/grants", headers=h["ana"])).json() == [
        {"grantee": "bob", "access": "ALL", "granted_by": "ana"}
    ]
    assert (await http.delete("/ontologies/Reading/grants/bob", headers=h["ana"])).status_code == 204
    assert (await http.get("/ontologies/Reading/data", headers=h["bob"])).status_code == 404
    actions = [e["action"] for e in rt.audit.entries() if e["action"].startswith("ontology.")]
    assert actions == ["ontology.revoke", "ontology.grant", "ontology.grant"]
    assert any(
        e["action"] == "POST /ontologies/Reading/data" for e in rt.audit.entries(user="bob", outcome="denied")
    )


async def test_developers_manage_their_own_devices_with_rights_they_hold(world):
    rt, http, h = world
    await http.post("/ontologies", json={"name": "Reading", "schema": SCHEMA}, headers=h["ana"])
    made = await http.post(
        "/devices", json={"name": "s1", "ontologies": {"Reading": "INSERT"}}, headers=h["ana"]
    )
    assert made.status_code == 201 and made.json()["owner"] == "ana"
    # bob may not give a device rights on ana's ontology, nor see or touch her device
    refused = await http.post(
        "/devices", json={"name": "s2", "ontologies": {"Reading": "QUERY"}}, headers=h["bob"]
    )
    assert refused.status_code == 403 and "Reading" in refused.json()["message"]
    assert (
        await http.post("/devices", json={"name": "s3", "owner": "ana"}, headers=h["bob"])
    ).status_code == 403
    assert [d["name"] for d in (await http.get("/devices", headers=h["bob"])).json()] == []
    assert (await http.get("/devices/s1", headers=h["bob"])).status_code == 404
    assert (await http.delete("/devices/s1", headers=h["bob"])).status_code == 404
    assert (await http.post("/devices/s1/tokens", json={}, headers=h["bob"])).status_code == 404
    assert [d["name"] for d in (await http.get("/devices", headers=h["admin"])).json()] == ["s1"]
    # with QUERY shared, bob can hand QUERY (not INSERT, not ALL) to his own device
    await http.put("/ontologies/Reading/grants/bob", json={"access": "QUERY"}, headers=h["ana"])
    assert (
        await http.post("/devices", json={"name": "s2", "ontologies": {"Reading": "QUERY"}}, headers=h["bob"])
    ).status_code == 201
    assert (
        await http.patch("/devices/s2", json={"ontologies": {"Reading": "ALL"}}, headers=h["bob"])
    ).status_code == 403
    actions = [
        (e["user"], e["action"], e["outcome"])
        for e in rt.audit.entries()
        if "device" in e["action"] or e["action"].endswith("/devices") or "/devices/" in e["action"]
    ]
    assert ("ana", "device.create", "ok") in actions and ("bob", "POST /devices", "denied") in actions
    assert ("bob", "PATCH /devices/s2", "denied") in actions


async def test_a_developer_cannot_take_shared_config_nodes_away_from_flows_they_cannot_see(world):
    rt, http, h = world
    broker = {"id": "cfg", "type": "mqtt-broker", "broker": "127.0.0.1", "port": "1", "autoConnect": False}
    ana_tab = tab(
        "ta", {"id": "in1", "type": "mqtt in", "topic": "a/b", "broker": "cfg", "qos": "0", "wires": [[]]}
    )
    assert (await http.post("/flows", json=[*ana_tab, broker], headers=h["ana"])).status_code == 204
    assert [n["id"] for n in (await http.get("/flows", headers=h["bob"])).json()] == []  # ana's config node
    assert (
        await http.put("/flow/cfg/sharing", json={"shared": ["bob"]}, headers=h["ana"])
    ).status_code == 200
    bob_view = (await http.get("/flows", headers=h["bob"])).json()
    assert [n["id"] for n in bob_view] == ["cfg"]  # shared with him
    # bob deploys his tab without the broker config node: ana's flow keeps it
    assert (await http.post("/flows", json=tab("tb", inject("b1")), headers=h["bob"])).status_code == 204
    assert {"cfg", "in1", "ta", "tb", "b1"} == {n["id"] for n in rt.flows}


def test_subflows_used_by_hidden_tabs_are_kept_with_their_nodes():
    from sofiaflow.runtime.security.ownership import _shared_needs

    current = [
        {"id": "ta", "type": "tab"},
        {"id": "sf", "type": "subflow", "name": "s"},
        {"id": "sn", "type": "change", "z": "sf", "broker": "cfg"},
        {"id": "cfg", "type": "mqtt-broker"},
        {"id": "other", "type": "mqtt-broker"},
        {"id": "inst", "type": "subflow:sf", "z": "ta"},
    ]
    kept = [current[0], current[-1]]
    assert {n["id"] for n in _shared_needs(current, kept, present=set())} == {"sf", "sn", "cfg"}
    assert {n["id"] for n in _shared_needs(current, kept, present={"sf", "sn"})} == set()
