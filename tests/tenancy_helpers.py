"""The server of the tenancy tests: a runtime and its admin app on a loopback port with an administrator, two
developers (ana, bob) and a read-only user (uma); ana's flows, ontology, API key, context and device; and the
checks that take more than one call (the `story` of a row of tests/test_tenancy.py's ROUTES)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from ports import free_port
from websockets.asyncio.client import connect

from sofiaflow.runtime.api_manager.keys import UnknownKeyError
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "tenancy-admin-password"
USERS = {"ana": "developer", "bob": "developer", "uma": "user"}
SCHEMA = {"type": "object", "required": ["v"], "properties": {"v": {"type": "number"}}}
REFUSED = {403, 404}


def ana_flows() -> list[dict[str, Any]]:
    """ana's tab (inject -> debug, a link in), her mqtt-broker config node and her subflow."""
    return [
        {"id": "ta", "type": "tab", "label": "ana's"},
        {
            "id": "a_inj",
            "type": "inject",
            "z": "ta",
            "props": [{"p": "payload"}],
            "payload": "7",
            "payloadType": "num",
            "repeat": "",
            "crontab": "",
            "once": False,
            "topic": "",
            "wires": [["a_dbg"]],
        },
        {
            "id": "a_dbg",
            "type": "debug",
            "z": "ta",
            "name": "ana-debug",
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
        {"id": "a_lin", "type": "link in", "z": "ta", "links": [], "wires": [["a_dbg"]]},
        {
            "id": "a_sub",
            "type": "mqtt in",
            "z": "ta",
            "topic": "a/t",
            "qos": "0",
            "broker": "a_cfg",
            "wires": [[]],
        },
        {
            "id": "a_cfg",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": "1",
            "autoConnect": False,
            "name": "ana-broker",
        },
        {
            "id": "a_sf",
            "type": "subflow",
            "name": "ana-sub",
            "in": [{"wires": [{"id": "a_sfn"}]}],
            "out": [{"wires": [{"id": "a_sfn", "port": 0}]}],
        },
        {"id": "a_sfn", "type": "change", "z": "a_sf", "rules": [], "wires": [[]]},
        {"id": "a_inst", "type": "subflow:a_sf", "z": "ta", "wires": [[]]},
    ]


def bob_tab(*nodes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": "tb", "type": "tab", "label": "bob's"}, *[{**n, "z": "tb"} for n in nodes]]


def bob_inject(node_id: str = "b_inj", wires: list | None = None) -> dict[str, Any]:
    return {
        "id": node_id,
        "type": "inject",
        "props": [{"p": "payload"}],
        "payload": "1",
        "payloadType": "num",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "wires": wires or [[]],
    }


def bob_debug() -> dict[str, Any]:
    return {
        "id": "b_dbg",
        "type": "debug",
        "active": True,
        "tosidebar": True,
        "console": False,
        "tostatus": True,
        "complete": "payload",
        "targetType": "msg",
        "wires": [],
    }


ANA_IDS = [n["id"] for n in ana_flows()]


# ----- the server --------------------------------------------------------------------------------------------------
@dataclass
class World:
    rt: Runtime
    base: str
    host: str
    http: httpx.AsyncClient
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    app: Any = None

    async def call(self, who: str, method: str, path: str, body: Any = None) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": self.headers[who]}
        if body is not None:
            kwargs["json"] = body
        return await self.http.request(method, path, **kwargs)


@asynccontextmanager
async def serve_world(tmp_path: Path, registry: Any) -> AsyncIterator[World]:
    """A started runtime with its admin app on a free loopback port; admin, ana, bob and uma logged in; ana's
    flows (`ana_flows`) and bob's tab (inject -> debug) deployed."""
    settings = Settings(
        data_dir=tmp_path,
        admin_password=PASSWORD,
        history_interval=0,
        default_flows=REPO / "flows" / "iot-broker.json",
    )
    rt = Runtime(settings, registry=registry)
    await rt.start()
    auth = AuthService(rt.db, rt.settings)
    auth.ensure_admin()
    for name, role in USERS.items():
        auth.add_user(name, f"{name}-password", role)
    app = create_app(rt)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        await asyncio.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            world = World(rt, base, f"127.0.0.1:{port}", http, app=app)
            for name, password in (("admin", PASSWORD), *((u, f"{u}-password") for u in USERS)):
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
                assert answer.status_code == 200, answer.text
                world.tokens[name] = answer.json()["access_token"]
                world.headers[name] = {"Authorization": f"Bearer {world.tokens[name]}"}
            answer = await world.call("ana", "POST", "/flows", ana_flows())
            assert answer.status_code == 204, answer.text
            assert (
                await world.call("bob", "POST", "/flows", bob_tab(bob_inject(wires=[["b_dbg"]]), bob_debug()))
            ).status_code == 204
            yield world
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        await rt.stop()


def running_ids(rt: Runtime) -> set[str]:
    return {n["id"] for n in rt.flows}


# ----- what ana holds besides her flows -------------------------------------------------------------------------
ANA_CONTEXT_KEY = "secret"
ANA_DEVICE, BOB_DEVICE, ANA_INSTANCE = "ana-dev", "bob-dev", "ana-instance-1"


@dataclass
class AnaHoldings:
    """ana's API key and her device's token (shown once, kept here to check they still work, or no longer)."""

    key_id: str
    api_key: str
    device_token: str

    @property
    def device_token_id(self) -> str:
        return self.device_token.split(".", 1)[0]


async def give_ana_holdings(world: World) -> AnaHoldings:
    """ana's ontology AnaReading (one row), an API key, context values, and her device `ana-dev` (topics
    ana/ana-dev/#, ALL on AnaReading, one instance seen); bob's own device `bob-dev` (topics bob/bob-dev/#)."""
    rt = world.rt
    assert (
        await world.call("ana", "POST", "/ontologies", {"name": "AnaReading", "schema": SCHEMA})
    ).status_code == 201
    assert (await world.call("ana", "POST", "/ontologies/AnaReading/data", {"v": 1})).status_code == 201
    key = (await world.call("ana", "POST", "/api-keys", {"label": "ana's"})).json()
    for scope in ("flow:ta", "node:ta:a_inj", "global"):
        rt.contexts.scope(scope).set(ANA_CONTEXT_KEY, "ana-only", rt.contexts.default)
    device = await world.call(
        "ana",
        "POST",
        "/devices",
        {"name": ANA_DEVICE, "topics": ["ana/{device}/#"], "ontologies": {"AnaReading": "ALL"}},
    )
    assert device.status_code == 201, device.text
    assert device.json()["owner"] == "ana"
    rt.engine.services["devices"].record_instance(ANA_DEVICE, ANA_INSTANCE)  # as an SSAP JOIN does
    mine = await world.call("bob", "POST", "/devices", {"name": BOB_DEVICE, "topics": ["bob/{device}/#"]})
    assert mine.status_code == 201, mine.text
    return AnaHoldings(key["id"], key["key"], device.json()["token"])


def devices(world: World) -> Any:
    return world.rt.engine.services["devices"]


async def login(world: World, who: str, password: str) -> httpx.Response:
    return await world.http.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": who,
            "password": password,
        },
    )


# ----- checks that take more than one call ----------------------------------------------------------------------
async def _events(ws: Any, out: list[dict], enough: Callable[[], bool], seconds: float) -> None:
    """Add the events of `ws` to `out` until `enough()` or `seconds` pass."""
    try:
        async with asyncio.timeout(seconds):
            while not enough():
                out.extend(json.loads(await ws.recv()))
    except TimeoutError:
        pass


async def _socket(world: World, who: str) -> Any:
    ws = await connect(f"ws://{world.host}/comms")
    await ws.send(json.dumps({"auth": world.tokens[who]}))
    assert json.loads(await ws.recv()) == [{"topic": "auth", "data": "ok"}]
    await ws.send(json.dumps({"subscribe": "#"}))
    return ws


def _about(events: list[dict]) -> set[str]:
    """The debug node ids and status topics among `events`."""
    return {
        e["data"]["id"] if e["topic"] == "debug" else e["topic"]
        for e in events
        if e["topic"] == "debug" or e["topic"].startswith("status/")
    }


async def comms_carries_only_what_each_caller_may_see(world: World) -> None:
    """Websockets of admin, ana, bob and uma subscribed to everything; ana's and bob's injects fire: each
    sees the debug and status events of their own nodes only (uma none, the administrator all: ana's, bob's and
    every other node's, e.g. the current status /comms retains for each running node)."""
    mine = {"a": {"a_dbg", "status/a_dbg"}, "b": {"b_dbg", "status/b_dbg"}}
    expected = {"admin": mine["a"] | mine["b"], "ana": mine["a"], "bob": mine["b"], "uma": set()}
    sockets = {who: await _socket(world, who) for who in expected}
    seen: dict[str, list[dict]] = {who: [] for who in expected}
    try:
        await asyncio.sleep(0.2)
        assert (await world.call("ana", "POST", "/inject/a_inj")).status_code == 200
        assert (await world.call("bob", "POST", "/inject/b_inj")).status_code == 200
        # until each has what they should see (bounded), then a while longer for anything they should not
        await asyncio.gather(
            *(
                _events(ws, seen[who], lambda who=who: _about(seen[who]) >= expected[who], 10)
                for who, ws in sockets.items()
            )
        )
        await asyncio.gather(*(_events(ws, seen[who], lambda: False, 0.5) for who, ws in sockets.items()))
    finally:
        for ws in sockets.values():
            await ws.close()
    about = {who: _about(events) for who, events in seen.items()}
    # besides the injected messages, /comms sends each running node's current status to a new subscriber
    # (retained, as Node-RED's): the administrator gets every node's (the IoT Broker flow's too), a developer
    # their own nodes' only (ana's ids start a_, bob's b_), uma nothing
    assert about["admin"] >= expected["admin"]
    assert expected["ana"] <= about["ana"] and all(
        i.removeprefix("status/").startswith("a_") for i in about["ana"]
    )
    assert expected["bob"] <= about["bob"] and all(
        i.removeprefix("status/").startswith("b_") for i in about["bob"]
    )
    assert about["uma"] == set()


async def a_namesake_of_a_deleted_user_owns_nothing_of_theirs(world: World) -> None:
    """An administrator deletes ana and makes a new user `ana`: the new ana owns none of the old ana's tabs,
    subflows, config nodes, ontologies, devices or API keys (they passed to the administrators and keep
    working); the old ana's token and API key are dead."""
    rt = world.rt
    held = await give_ana_holdings(world)
    in_use = await world.http.get("/api-manager/catalog", headers={"X-OP-APIKey": held.api_key})
    assert in_use.status_code == 200  # the key has been used: the API Manager knows it
    assert (await world.call("admin", "DELETE", "/users/ana")).status_code == 204
    assert (await world.call("ana", "GET", "/flows")).status_code == 401
    made = await world.call(
        "admin", "POST", "/users", {"username": "ana", "password": "new-ana", "role": "developer"}
    )
    assert made.status_code == 201, made.text
    answer = await login(world, "ana", "new-ana")
    assert answer.status_code == 200, answer.text
    world.headers["ana"] = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    # tabs, subflows, config nodes: the administrators', running, out of the new ana's sight and reach
    for unit in ("ta", "a_sf", "a_cfg"):
        assert rt.ownership.owner(unit) is None, unit
        assert (await world.call("ana", "GET", f"/flow/{unit}/sharing")).status_code == 404, unit
    assert set(ANA_IDS) <= running_ids(rt)
    seen = (await world.call("ana", "GET", "/flows")).json()
    assert {n["id"] for n in seen} & set(ANA_IDS) == set()
    assert (await world.call("ana", "GET", "/flow/ta")).status_code == 404
    assert (
        await world.call("ana", "PUT", "/flow/ta", {"id": "ta", "label": "mine", "nodes": []})
    ).status_code == 403
    assert (await world.call("ana", "DELETE", "/flow/ta")).status_code == 403
    taking = await world.call(
        "ana",
        "POST",
        "/flows",
        [
            {"id": "tn", "type": "tab", "label": "new"},
            {
                "id": "n_in",
                "type": "mqtt in",
                "z": "tn",
                "topic": "x",
                "qos": "0",
                "broker": "a_cfg",
                "wires": [[]],
            },
        ],
    )
    assert taking.status_code == 403 and "'a_cfg'" in taking.json()["message"]
    # ontologies
    assert "AnaReading" not in (await world.call("ana", "GET", "/ontologies")).text
    assert (await world.call("ana", "GET", "/ontologies/AnaReading")).status_code == 404
    assert (await world.call("ana", "GET", "/ontologies/AnaReading/data")).status_code == 404
    assert (await world.call("ana", "DELETE", "/ontologies/AnaReading")).status_code in REFUSED
    assert (await world.call("admin", "GET", "/ontologies/AnaReading")).json()["owner"] is None
    assert (await world.call("admin", "GET", "/ontologies/AnaReading/data")).json()["total"] == 1
    # devices
    assert (await world.call("ana", "GET", "/devices")).json() == []
    for method, path in (
        ("GET", f"/devices/{ANA_DEVICE}"),
        ("GET", f"/devices/{ANA_DEVICE}/instances"),
        ("DELETE", f"/devices/{ANA_DEVICE}"),
        ("POST", f"/devices/{ANA_DEVICE}/tokens"),
    ):
        assert (await world.call("ana", method, path)).status_code == 404, (method, path)
    assert devices(world).get(ANA_DEVICE).owner is None
    assert devices(world).authenticate(ANA_DEVICE, held.device_token).name == ANA_DEVICE
    # API keys
    assert (await world.call("ana", "GET", "/api-keys")).json() == []
    assert (await world.call("ana", "DELETE", f"/api-keys/{held.key_id}")).status_code in REFUSED
    with pytest.raises(UnknownKeyError):
        rt.engine.services["api-manager"].keys.user_of(held.api_key)
    # the new ana works in her own space
    answer = await world.call("ana", "POST", "/flows", [{"id": "tn", "type": "tab", "label": "new"}])
    assert answer.status_code == 204, answer.text
    assert (await world.call("ana", "GET", "/flow/tn/sharing")).json()["owner"] == "ana"
