"""websocket-listener / websocket in / websocket out through a real uvicorn server and real `websockets` clients."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json

import pytest
from test_node_routes import serve
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.http.node_routes import NodeRoutes
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "ws"}


def listener(nid: str = "lst", path: str = "/ws/echo", wholemsg: str = "false") -> dict:
    return {"id": nid, "type": "websocket-listener", "path": path, "wholemsg": wholemsg}


def ws_in(nid: str = "win", server: str = "lst", wires: list[str] = ("wout",)) -> dict:
    return {
        "id": nid,
        "type": "websocket in",
        "z": "t1",
        "name": "",
        "server": server,
        "client": "",
        "wires": [list(wires)],
    }


def ws_out(nid: str = "wout", server: str = "lst") -> dict:
    return {
        "id": nid,
        "type": "websocket out",
        "z": "t1",
        "name": "",
        "server": server,
        "client": "",
        "wires": [],
    }


def function(nid: str, body: str, wires: list[str]) -> dict:
    return {
        "id": nid,
        "type": "python function",
        "z": "t1",
        "name": nid,
        "func": body,
        "outputs": 1,
        "wires": [wires],
    }


@contextlib.asynccontextmanager
async def running(flows, registry):
    routes = NodeRoutes()
    tester = FlowTester([TAB, *flows], registry=registry)
    tester.engine.services["http"] = routes
    async with serve(routes) as host, tester:
        yield tester, f"ws://{host}"


async def recv(ws, timeout: float = 5.0):
    return await asyncio.wait_for(ws.recv(), timeout)


async def nothing(ws, timeout: float = 0.2) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ws.recv(), timeout)
        return False
    return True


async def test_echo_goes_to_the_sender_only(registry):
    async with running([listener(), ws_in(), ws_out()], registry) as (t, base):
        async with connect(f"{base}/ws/echo") as a, connect(f"{base}/ws/echo") as b:
            await a.send("hello")
            assert await recv(a) == "hello"
            await b.send(b"\x00\x01")
            assert await recv(b) == b"\x00\x01"  # binary frames stay binary
            assert await nothing(a) and await nothing(b, 0.05)
            sent = t.outputs("win")[0]
            assert [m["payload"] for m in sent] == ["hello", b"\x00\x01"]
            assert (
                sent[0]["_session"]["type"] == "websocket"
                and sent[0]["_session"]["id"] != sent[1]["_session"]["id"]
            )
            assert t.node("win").last_status["text"] == "connected 2"
        for _ in range(100):
            if t.node("win").last_status.get("text") == "disconnected":
                break
            await asyncio.sleep(0.02)
        status = t.node("win").last_status
        assert status["text"] == "disconnected" and status["event"] == "disconnect"
        assert status["_session"] in (sent[0]["_session"], sent[1]["_session"])


async def test_without_a_session_it_broadcasts(registry):
    body = "msg.pop('_session', None)\nmsg['payload'] = {'said': msg['payload']}\nreturn msg"
    flows = [listener(), ws_in(wires=["fn"]), function("fn", body, ["wout"]), ws_out()]
    async with running(flows, registry) as (_t, base):
        async with connect(f"{base}/ws/echo") as a, connect(f"{base}/ws/echo") as b:
            await a.send("hi")
            assert json.loads(await recv(a)) == {"said": "hi"}
            assert json.loads(await recv(b)) == {"said": "hi"}


async def test_whole_message_mode(registry):
    body = "msg['payload'] = msg['payload'] * 2\nmsg['extra'] = True\nreturn msg"
    flows = [listener(wholemsg="true"), ws_in(wires=["fn"]), function("fn", body, ["wout"]), ws_out()]
    async with running(flows, registry) as (t, base):
        async with connect(f"{base}/ws/echo") as ws:
            await ws.send(json.dumps({"payload": 21, "topic": "t"}))
            answer = json.loads(await recv(ws))
            assert answer["payload"] == 42 and answer["topic"] == "t" and answer["extra"] is True
            assert "_session" not in answer
            await ws.send("not json")
            assert json.loads(await recv(ws))["payload"] == "not jsonnot json"
            await ws.send("[1, 2]")
            assert json.loads(await recv(ws))["payload"] == [1, 2, 1, 2]
        assert t.outputs("win")[0][0]["topic"] == "t"


async def test_payload_kinds_sent_by_websocket_out(registry):
    async with running([listener(), ws_in(wires=[]), ws_out()], registry) as (t, base):
        async with connect(f"{base}/ws/echo") as ws:
            for _ in range(100):
                if t.node("lst").client_count:
                    break
                await asyncio.sleep(0.01)
            for payload in ({"a": 1.0}, 3.5, True, None, ""):
                t.inject("wout", {"payload": payload})
            t.inject("wout", {"topic": "no payload"})
            t.inject("wout", {"payload": "last"})
            got = [await recv(ws) for _ in range(5)]
            assert got == ['{"a":1}', "3.5", "true", "null", "last"]  # "" and no payload send nothing


async def test_unknown_path_is_refused_and_redeploy_moves_the_path(registry):
    async with running([listener(), ws_in(), ws_out()], registry) as (t, base):
        with pytest.raises(Exception):  # noqa: B017 - websockets raises InvalidStatus (HTTP 403)
            async with connect(f"{base}/ws/other"):
                pass
        async with connect(f"{base}/ws/echo") as old:
            moved = copy.deepcopy(t.flows)
            next(n for n in moved if n["id"] == "lst")["path"] = "/ws/moved"
            await t.deploy(moved, "nodes")
            with pytest.raises(ConnectionClosed):
                await recv(old)  # the old listener closed its clients
            assert old.close_code == 1001
        async with connect(f"{base}/ws/moved") as ws:
            await ws.send("again")
            assert await recv(ws) == "again"


async def test_missing_configuration_refuses_the_deploy(registry):
    t = FlowTester([TAB, ws_in(server="", wires=[])], registry=registry)
    t.engine.services["http"] = NodeRoutes()
    with pytest.raises(FlowValidationError, match="missing server configuration"):
        async with t:
            pass
    t = FlowTester(
        [TAB, {"id": "lst", "type": "websocket-listener", "path": ""}, ws_in(wires=[])], registry=registry
    )
    t.engine.services["http"] = NodeRoutes()
    with pytest.raises(FlowValidationError, match="'path' is required"):
        async with t:
            pass
