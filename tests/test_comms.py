"""`/comms` over a real websocket: auth first, then debug and status events as Node-RED sends them."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
import uvicorn
from ports import free_port
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.http.comms import topic_matches
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "comms-test-password"
FLOWS = [
    {"id": "t1", "type": "tab", "label": "x"},
    {
        "id": "inj",
        "type": "inject",
        "z": "t1",
        "x": 1,
        "y": 1,
        "props": [{"p": "payload"}],
        "payload": "42",
        "payloadType": "num",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "wires": [["dbg"]],
    },
    {
        "id": "dbg",
        "type": "debug",
        "z": "t1",
        "x": 1,
        "y": 1,
        "name": "out",
        "active": True,
        "tosidebar": True,
        "console": False,
        "tostatus": True,
        "complete": "payload",
        "targetType": "msg",
        "statusVal": "payload",
        "statusType": "auto",
        "wires": [],
    },
]


def test_topic_matching():
    assert topic_matches("debug", "debug")
    assert topic_matches("status/#", "status/abc")
    assert topic_matches("notification/+", "notification/runtime-deploy")
    assert not topic_matches("status/#", "debug")
    assert topic_matches("#", "anything/at/all")


@pytest.fixture
async def server(tmp_path, registry):
    rt = Runtime(Settings(data_dir=tmp_path, admin_password=PASSWORD), registry=registry)
    await rt.start()
    AuthService(rt.db, rt.settings).ensure_admin()
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(rt), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(srv.serve())
    for _ in range(200):
        if srv.started:
            break
        await asyncio.sleep(0.02)
    yield rt, f"127.0.0.1:{port}"
    srv.should_exit = True
    await asyncio.wait_for(task, 10)
    await rt.stop()


async def _collect(ws, want: int, timeout: float = 5.0) -> list[dict]:
    events: list[dict] = []
    async with asyncio.timeout(timeout):
        while len(events) < want:
            events.extend(json.loads(await ws.recv()))
    return events


async def test_debug_and_status_events_reach_an_authenticated_client(server):
    rt, host = server
    async with httpx.AsyncClient(base_url=f"http://{host}") as http:
        token = (
            await http.post(
                "/auth/token",
                data={
                    "client_id": "node-red-editor",
                    "grant_type": "password",
                    "scope": "*",
                    "username": "admin",
                    "password": PASSWORD,
                },
            )
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await http.post("/flows", json=FLOWS, headers=headers)).status_code == 204
        async with connect(f"ws://{host}/comms") as ws:
            await ws.send(json.dumps({"auth": token}))
            assert json.loads(await ws.recv()) == [{"topic": "auth", "data": "ok"}]
            await ws.send(json.dumps({"subscribe": "debug"}))
            await ws.send(json.dumps({"subscribe": "status/#"}))
            await asyncio.sleep(0.1)
            assert (await http.post("/inject/inj", headers=headers)).status_code == 200
            events = await _collect(ws, 2)
    topics = {e["topic"]: e["data"] for e in events}
    assert topics["debug"]["id"] == "dbg" and topics["debug"]["msg"] == "42"
    assert topics["debug"]["format"] == "number"
    assert topics["status/dbg"]["text"] == "42"


async def test_a_bad_token_closes_the_socket(server):
    _rt, host = server
    async with connect(f"ws://{host}/comms") as ws:
        await ws.send(json.dumps({"auth": "nope"}))
        assert json.loads(await ws.recv()) == [{"topic": "auth", "data": "fail"}]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
