"""Debug output from worker C reaches the editor's `/comms` socket on worker A once, and only for users who may
see the node (three real workers on PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_harness import Cluster, http, skip_unless_cluster
from websockets.asyncio.client import ClientConnection, connect

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(240)]

DEADLINE = 30.0

FLOWS = [
    {"id": "tab", "type": "tab", "label": "shared debug"},
    {"id": "in", "type": "http in", "z": "tab", "url": "/say", "method": "get", "wires": [["dbg", "tpl"]]},
    {
        "id": "dbg",
        "type": "debug",
        "z": "tab",
        "active": True,
        "tosidebar": True,
        "console": False,
        "complete": "payload.x",  # a string: shown as it is in the sidebar
        "targetType": "msg",
        "wires": [],
    },
    {"id": "tpl", "type": "template", "z": "tab", "template": "said", "wires": [["out"]]},
    {"id": "out", "type": "http response", "z": "tab", "wires": []},
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(workers=3, mosquitto=False) as started:
        yield started


def _token(worker: Any, username: str, password: str) -> str:
    status, _, body = http(
        "POST",
        worker.url + "/auth/token",
        {
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": username,
            "password": password,
        },
    )
    assert status == 200, body
    return str(body["access_token"])


async def _socket(worker: Any, token: str) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{worker.port}/comms")
    await ws.send(json.dumps({"auth": token}))
    assert json.loads(await asyncio.wait_for(ws.recv(), DEADLINE)) == [{"topic": "auth", "data": "ok"}]
    await ws.send(json.dumps({"subscribe": "debug"}))
    return ws


async def _debug_until(ws: ClientConnection, last: str) -> list[str]:
    """The debug texts `ws` receives until one holding `last`."""
    texts: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not any(last in t for t in texts):
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(f"no debug holding {last!r} within {DEADLINE} s; got {texts}")
        try:
            batch = json.loads(await asyncio.wait_for(ws.recv(), left))
        except TimeoutError:
            continue
        texts += [str(e["data"].get("msg")) for e in batch if e.get("topic") == "debug"]
    return texts


def _say(worker: Any, word: str) -> None:
    status, _, body = http("GET", f"{worker.url}/say?x={word}", timeout=10)
    assert status == 200 and body == "said", (status, body)


async def test_a_debug_node_on_worker_c_shows_once_in_the_editor_on_worker_a(cluster: Cluster) -> None:
    a, b, c = cluster.workers
    status, _, body = a.post("/flows", {"flows": FLOWS}, headers={"Node-RED-API-Version": "v2"})
    assert status == 200, body
    assert body.get("cluster", {}).get("pending", []) == [], body

    developer = f"dev{uuid.uuid4().hex[:6]}"
    status, _, body = a.post(
        "/users", {"username": developer, "password": "dev-pass-123", "role": "developer"}
    )
    assert status == 201, body

    admin_ws = await _socket(a, a.token())
    dev_ws = await _socket(a, _token(a, developer, "dev-pass-123"))
    own_ws = await _socket(c, c.token())
    try:
        await asyncio.to_thread(_say, c, "first")
        await asyncio.to_thread(_say, c, "second")
        await asyncio.to_thread(_say, b, "third")
        await asyncio.to_thread(_say, c, "last")
        on_a = await _debug_until(admin_ws, "last")
        for word in ("first", "second", "third", "last"):
            assert sum(word in t for t in on_a) == 1, (word, on_a)  # once, whichever worker ran it
        on_c = await _debug_until(own_ws, "last")
        assert sum("first" in t for t in on_c) == 1 and sum("third" in t for t in on_c) == 1, on_c

        # the developer does not own the tab: none of its debug, from any worker (a marker of their own
        # would need a tab of their own; reading until the admin's last arrived on the same worker is enough)
        with pytest.raises(TimeoutError):
            while True:
                batch = json.loads(await asyncio.wait_for(dev_ws.recv(), 1.0))
                assert not [e for e in batch if e.get("topic") == "debug"], batch
    finally:
        for ws in (admin_ws, dev_ws, own_ws):
            await ws.close()
