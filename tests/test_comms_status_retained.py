"""`/comms` retains status as Node-RED does (a page that reconnects sees each node's current status at once);
the deploy answer names the nodes that failed to start."""

from __future__ import annotations

import asyncio
import json

import httpx
from test_comms import FLOWS, PASSWORD, _collect, server  # noqa: F401 - the server fixture
from websockets.asyncio.client import connect


async def _token(http: httpx.AsyncClient) -> str:
    form = {
        "client_id": "node-red-editor",
        "grant_type": "password",
        "scope": "*",
        "username": "admin",
        "password": PASSWORD,
    }
    return (await http.post("/auth/token", data=form)).json()["access_token"]


async def test_a_new_subscriber_gets_the_current_status_without_a_new_event(server):  # noqa: F811
    rt, host = server
    async with httpx.AsyncClient(base_url=f"http://{host}") as http:
        token = await _token(http)
        headers = {"Authorization": f"Bearer {token}"}
        assert (await http.post("/flows", json=FLOWS, headers=headers)).status_code == 204
        assert (await http.post("/inject/inj", headers=headers)).status_code == 200
        async with asyncio.timeout(10):
            while not rt.deployer.running["dbg"].last_status:
                await asyncio.sleep(0.02)
        async with connect(f"ws://{host}/comms") as ws:
            await ws.send(json.dumps({"auth": token}))
            assert json.loads(await ws.recv()) == [{"topic": "auth", "data": "ok"}]
            await ws.send(json.dumps({"subscribe": "debug"}))
            await ws.send(json.dumps({"subscribe": "status/#"}))
            events = await _collect(ws, 1)
    assert [(e["topic"], e["data"]["text"]) for e in events] == [("status/dbg", "42")]


async def test_the_admin_api_names_the_nodes_that_failed_to_start(server):  # noqa: F811
    _rt, host = server
    flows = [
        {"id": "t1", "type": "tab", "label": "x"},
        {
            "id": "ep1",
            "type": "api-endpoint",
            "z": "t1",
            "x": 1,
            "y": 1,
            "name": "orders",
            "api": "missing",
            "path": "/orders",
            "operation": "flow",
            "wires": [[]],
        },
    ]
    async with httpx.AsyncClient(base_url=f"http://{host}") as http:
        headers = {"Authorization": f"Bearer {await _token(http)}", "Node-RED-API-Version": "v2"}
        answer = await http.post("/flows", json={"flows": flows}, headers=headers)
    assert answer.status_code == 200, answer.text
    (failure,) = answer.json()["startFailures"]
    assert failure["id"] == "ep1" and failure["type"] == "api-endpoint"
    assert "no api config node 'missing' is running" in failure["message"]
