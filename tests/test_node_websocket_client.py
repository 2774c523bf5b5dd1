"""websocket-client against a real `websockets` server on a free 127.0.0.1 port: echo, wholemsg, headers,
reconnect after the server restarts, and config errors. Uses the real websocket in / out nodes."""

from __future__ import annotations

import asyncio
import time

import pytest
from ports import free_port
from websockets.asyncio.server import serve

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester


class EchoServer:
    """A websockets echo server that records the upgrade requests; can be stopped and started again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.requests: list = []
        self.server = None

    async def handler(self, ws) -> None:
        self.requests.append((ws.request.headers, ws.subprotocol))
        async for data in ws:
            await ws.send(data)

    async def start(self) -> None:
        self.server = await serve(
            self.handler,
            "127.0.0.1",
            self.port,
            select_subprotocol=lambda _ws, offered: "chat" if "chat" in offered else None,
        )

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def echo():
    server = EchoServer(free_port())
    await server.start()
    yield server
    await server.stop()


def flow(url: str, **props) -> list[dict]:
    client = {
        "id": "wc",
        "type": "websocket-client",
        "path": url,
        "tls": "",
        "wholemsg": "false",
        "hb": "",
        "subprotocol": "",
        "headers": [],
    }
    client.update(props)
    return [
        {"id": "t", "type": "tab", "label": "t"},
        client,
        {
            "id": "in",
            "type": "websocket in",
            "z": "t",
            "name": "",
            "server": "",
            "client": "wc",
            "x": 1,
            "y": 1,
            "wires": [[]],
        },
        {
            "id": "out",
            "type": "websocket out",
            "z": "t",
            "name": "",
            "server": "",
            "client": "wc",
            "x": 1,
            "y": 1,
            "wires": [],
        },
    ]


async def until(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def connected(t: FlowTester) -> None:
    await until(lambda: t.node("wc").connected and t.node("in").last_status.get("text") == "connected")


async def test_echo_text_and_binary(registry, echo):
    async with FlowTester(flow(f"ws://127.0.0.1:{echo.port}/x"), registry) as t:
        await connected(t)
        assert t.node("out").last_status["fill"] == "green"
        t.inject("out", {"payload": "hello"})
        t.inject("out", {"payload": b"\x00\x01"})
        t.inject("out", {"payload": {"a": 1}})
        await until(lambda: len(t.outputs("in")[0]) == 3)
        msgs = t.outputs("in")[0]
        assert [m["payload"] for m in msgs] == ["hello", b"\x00\x01", '{"a":1}']
        assert msgs[0]["_session"] == {"type": "websocket", "id": t.node("wc").session}


async def test_reply_goes_to_the_current_session_only(registry, echo):
    async with FlowTester(flow(f"ws://127.0.0.1:{echo.port}/"), registry) as t:
        await connected(t)
        session = t.node("wc").session
        t.inject("out", {"payload": "old", "_session": {"type": "websocket", "id": "gone"}})
        t.inject("out", {"payload": "mine", "_session": {"type": "websocket", "id": session}})
        await until(lambda: t.outputs("in")[0])
        await asyncio.sleep(0.1)
        assert [m["payload"] for m in t.outputs("in")[0]] == ["mine"]


async def test_wholemsg(registry, echo):
    async with FlowTester(flow(f"ws://127.0.0.1:{echo.port}/", wholemsg="true"), registry) as t:
        await connected(t)
        t.inject("out", {"payload": [1, 2], "topic": "tp"})
        await until(lambda: t.outputs("in")[0])
        msg = t.outputs("in")[0][0]
        assert msg["payload"] == [1, 2] and msg["topic"] == "tp" and msg["_session"]["type"] == "websocket"


async def test_headers_and_subprotocol(registry, echo, monkeypatch):
    monkeypatch.setenv("WS_TEST_TOKEN", "from-env")
    headers = [
        {"keyType": "other", "keyValue": "X-Key", "valueType": "other", "valueValue": "v1"},
        {"keyType": "other", "keyValue": "X-Env", "valueType": "env", "valueValue": "WS_TEST_TOKEN"},
        {"keyType": "other", "keyValue": "X-Empty", "valueType": "other", "valueValue": ""},
    ]
    async with FlowTester(
        flow(f"ws://127.0.0.1:{echo.port}/", subprotocol="chat, other", headers=headers), registry
    ) as t:
        await connected(t)
        sent, subprotocol = echo.requests[0]
        assert sent["X-Key"] == "v1" and sent["X-Env"] == "from-env" and "X-Empty" not in sent
        assert sent["Sec-WebSocket-Protocol"] == "chat, other" and subprotocol == "chat"


async def test_reconnects_after_the_server_restarts(registry, echo):
    t = FlowTester(flow(f"ws://127.0.0.1:{echo.port}/", hb="1"), registry)
    t.engine.node_settings["websocketReconnectTime"] = 100
    seen: list[str] = []
    t.events.subscribe("status/in", lambda _topic, st: seen.append(st.get("text")))
    async with t:
        await connected(t)
        first = t.node("wc").session
        await echo.stop()
        await until(lambda: t.node("in").last_status.get("text") == "disconnected")
        assert t.node("wc").broadcast("lost") is False
        assert any("WebSocket is not open" in e["msg"] for e in t.logs if e["level"] == "warn")
        await echo.start()
        await connected(t)
        assert t.node("wc").session != first and t.node("wc").connects == 2
        t.inject("out", {"payload": "again"})
        await until(lambda: t.outputs("in")[0])
        assert t.outputs("in")[0][0]["payload"] == "again"
    assert seen[0] == "connected" and "disconnected" in seen and seen[-1] in ("connected", "disconnected")
    assert seen.index("disconnected") < len(seen) - seen[::-1].index("connected") - 1


async def test_keeps_retrying_while_the_server_is_down(registry):
    port = free_port()
    t = FlowTester(flow(f"ws://127.0.0.1:{port}/"), registry)
    t.engine.node_settings["websocketReconnectTime"] = 50
    async with t:
        await until(lambda: t.node("in").last_status.get("text") == "disconnected")
        server = EchoServer(port)
        await server.start()
        try:
            await connected(t)
            t.inject("out", {"payload": "up"})
            await until(lambda: t.outputs("in")[0])
        finally:
            await server.stop()


async def test_bad_config_refuses_the_deploy(registry):
    for props in ({"path": "/local/path"}, {"path": "http://x/"}, {"hb": "soon"}, {"headers": ["x"]}):
        flows = flow("ws://127.0.0.1:1/")
        flows[1].update(props)
        with pytest.raises(FlowValidationError):
            async with FlowTester(flows, registry):
                pass


async def test_wss_with_a_tls_config_node(registry, tmp_path):
    """wss through the shipped tls-config node trusting the server's self-signed certificate."""
    import ssl

    from tests.test_node_http_request import self_signed

    cert, key, _pem = self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    port = free_port()
    echo = EchoServer(port)
    server = await serve(echo.handler, "127.0.0.1", port, ssl=server_ctx)
    try:
        tls = {
            "id": "tls1",
            "type": "tls-config",
            "cert": "",
            "key": "",
            "ca": cert,
            "verifyservercert": True,
        }
        async with FlowTester(flow(f"wss://127.0.0.1:{port}/", tls="tls1") + [tls], registry) as t:
            await connected(t)
            t.inject("out", {"payload": "secure"})
            await until(lambda: t.outputs("in")[0])
            assert t.outputs("in")[0][0]["payload"] == "secure"
        t = FlowTester(
            flow(f"wss://127.0.0.1:{port}/"), registry
        )  # no tls node: the self-signed cert is refused
        t.engine.node_settings["websocketReconnectTime"] = 5000
        seen: list[str] = []
        t.events.subscribe("status/in", lambda _topic, st: seen.append(st.get("text")))
        async with t:
            await until(lambda: "error" in seen)
            assert not t.node("wc").connected
    finally:
        server.close()
        await server.wait_closed()
