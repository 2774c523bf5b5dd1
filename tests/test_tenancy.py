"""Tenancy against a real server on a loopback port: two developers (ana, bob), a read-only user (uma) and an
administrator. Nothing of one tenant is read, changed, stopped or used by another: tabs, config nodes,
subflows, links, flow state, context, debug/status on /comms, node actions, credentials, metrics, ontologies,
API keys, devices and their tokens, users and sessions.

`ROUTES` holds a `Probe` for every route of the admin app (the test enumerates the app's routes, so a new
route fails here until it gets a row): bob's and uma's calls about ana's things, each answer's status and
what it must not show; checks that take more than one call (a websocket, a deleted user's namesake) are the
row's `story`, run on a server of their own.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.routing import APIRoute, APIWebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from runtime.api_manager.keys import UnknownKeyError
from runtime.auth import AuthService
from runtime.http import comms, create_app
from runtime.metrics import snapshot, tenant_view
from runtime.runtime import Runtime
from runtime.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "tenancy-admin-password"
USERS = {"ana": "developer", "bob": "developer", "uma": "user"}
SCHEMA = {"type": "object", "required": ["v"], "properties": {"v": {"type": "number"}}}
REFUSED = {403, 404}


def ana_flows() -> list[dict[str, Any]]:
    """ana's tab (inject -> debug, a link in), her mqtt-broker config node and her subflow."""
    return [
        {"id": "ta", "type": "tab", "label": "ana's"},
        {"id": "a_inj", "type": "inject", "z": "ta", "props": [{"p": "payload"}], "payload": "7",
         "payloadType": "num", "repeat": "", "crontab": "", "once": False, "topic": "", "wires": [["a_dbg"]]},
        {"id": "a_dbg", "type": "debug", "z": "ta", "name": "ana-debug", "active": True, "tosidebar": True,
         "console": False, "tostatus": True, "complete": "payload", "targetType": "msg", "statusVal": "payload",
         "statusType": "auto", "wires": []},
        {"id": "a_lin", "type": "link in", "z": "ta", "links": [], "wires": [["a_dbg"]]},
        {"id": "a_sub", "type": "mqtt in", "z": "ta", "topic": "a/t", "qos": "0", "broker": "a_cfg", "wires": [[]]},
        {"id": "a_cfg", "type": "mqtt-broker", "broker": "127.0.0.1", "port": "1", "autoConnect": False,
         "name": "ana-broker"},
        {"id": "a_sf", "type": "subflow", "name": "ana-sub", "in": [{"wires": [{"id": "a_sfn"}]}],
         "out": [{"wires": [{"id": "a_sfn", "port": 0}]}]},
        {"id": "a_sfn", "type": "change", "z": "a_sf", "rules": [], "wires": [[]]},
        {"id": "a_inst", "type": "subflow:a_sf", "z": "ta", "wires": [[]]},
    ]


def bob_tab(*nodes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": "tb", "type": "tab", "label": "bob's"}, *[{**n, "z": "tb"} for n in nodes]]


def bob_inject(node_id: str = "b_inj", wires: list | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": "inject", "props": [{"p": "payload"}], "payload": "1", "payloadType": "num",
            "repeat": "", "crontab": "", "once": False, "topic": "", "wires": wires or [[]]}


def bob_debug() -> dict[str, Any]:
    return {"id": "b_dbg", "type": "debug", "active": True, "tosidebar": True, "console": False,
            "tostatus": True, "complete": "payload", "targetType": "msg", "wires": []}


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def world(tmp_path, registry):
    settings = Settings(data_dir=tmp_path, admin_password=PASSWORD, history_interval=0,
                        default_flows=REPO / "flows" / "iot-broker.json")
    rt = Runtime(settings, registry=registry)
    await rt.start()
    auth = AuthService(rt.db, rt.settings)
    auth.ensure_admin()
    for name, role in USERS.items():
        auth.add_user(name, f"{name}-password", role)
    app = create_app(rt)
    port = _free_port()
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
                answer = await http.post("/auth/token", data={"client_id": "node-red-admin", "grant_type": "password",
                                                              "scope": "*", "username": name, "password": password})
                assert answer.status_code == 200, answer.text
                world.tokens[name] = answer.json()["access_token"]
                world.headers[name] = {"Authorization": f"Bearer {world.tokens[name]}"}
            answer = await world.call("ana", "POST", "/flows", ana_flows())
            assert answer.status_code == 204, answer.text
            assert (await world.call("bob", "POST", "/flows", bob_tab(bob_inject(wires=[["b_dbg"]]),
                                                                       bob_debug()))).status_code == 204
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
    assert (await world.call("ana", "POST", "/ontologies", {"name": "AnaReading", "schema": SCHEMA})).status_code == 201
    assert (await world.call("ana", "POST", "/ontologies/AnaReading/data", {"v": 1})).status_code == 201
    key = (await world.call("ana", "POST", "/api-keys", {"label": "ana's"})).json()
    for scope in ("flow:ta", "node:ta:a_inj", "global"):
        rt.contexts.scope(scope).set(ANA_CONTEXT_KEY, "ana-only", rt.contexts.default)
    device = await world.call("ana", "POST", "/devices", {"name": ANA_DEVICE, "topics": ["ana/{device}/#"],
                                                          "ontologies": {"AnaReading": "ALL"}})
    assert device.status_code == 201, device.text
    assert device.json()["owner"] == "ana"
    rt.engine.services["devices"].record_instance(ANA_DEVICE, ANA_INSTANCE)  # as an SSAP JOIN does
    mine = await world.call("bob", "POST", "/devices", {"name": BOB_DEVICE, "topics": ["bob/{device}/#"]})
    assert mine.status_code == 201, mine.text
    return AnaHoldings(key["id"], key["key"], device.json()["token"])


def devices(world: World) -> Any:
    return world.rt.engine.services["devices"]


async def login(world: World, who: str, password: str) -> httpx.Response:
    return await world.http.post("/auth/token", data={"client_id": "node-red-admin", "grant_type": "password",
                                                      "scope": "*", "username": who, "password": password})


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
    return {e["data"]["id"] if e["topic"] == "debug" else e["topic"] for e in events
            if e["topic"] == "debug" or e["topic"].startswith("status/")}


async def comms_carries_only_what_each_caller_may_see(world: World) -> None:
    """Websockets of admin, ana, bob and uma subscribed to everything; ana's and bob's injects fire: each
    sees the debug and status events of their own nodes only (uma none, the administrator all)."""
    mine = {"a": {"a_dbg", "status/a_dbg"}, "b": {"b_dbg", "status/b_dbg"}}
    expected = {"admin": mine["a"] | mine["b"], "ana": mine["a"], "bob": mine["b"], "uma": set()}
    sockets = {who: await _socket(world, who) for who in expected}
    seen: dict[str, list[dict]] = {who: [] for who in expected}
    try:
        await asyncio.sleep(0.2)
        assert (await world.call("ana", "POST", "/inject/a_inj")).status_code == 200
        assert (await world.call("bob", "POST", "/inject/b_inj")).status_code == 200
        # until each has what they should see (bounded), then a while longer for anything they should not
        await asyncio.gather(*(_events(ws, seen[who], lambda who=who: _about(seen[who]) >= expected[who], 10)
                               for who, ws in sockets.items()))
        await asyncio.gather(*(_events(ws, seen[who], lambda: False, 0.5) for who, ws in sockets.items()))
    finally:
        for ws in sockets.values():
            await ws.close()
    assert {who: _about(events) for who, events in seen.items()} == expected


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
    made = await world.call("admin", "POST", "/users", {"username": "ana", "password": "new-ana", "role": "developer"})
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
    assert (await world.call("ana", "PUT", "/flow/ta", {"id": "ta", "label": "mine", "nodes": []})).status_code \
        == 403
    assert (await world.call("ana", "DELETE", "/flow/ta")).status_code == 403
    taking = await world.call("ana", "POST", "/flows", [{"id": "tn", "type": "tab", "label": "new"},
                                                        {"id": "n_in", "type": "mqtt in", "z": "tn", "topic": "x",
                                                         "qos": "0", "broker": "a_cfg", "wires": [[]]}])
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
    for method, path in (("GET", f"/devices/{ANA_DEVICE}"), ("GET", f"/devices/{ANA_DEVICE}/instances"),
                         ("DELETE", f"/devices/{ANA_DEVICE}"), ("POST", f"/devices/{ANA_DEVICE}/tokens")):
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


# ----- every route has an expectation ---------------------------------------------------------------------------
@dataclass
class Probe:
    """What bob (a developer) and uma (a user) get calling `path` about ana's objects (or with her names):
    a status in `bob` / `uma`, `says` in bob's answer, and no name of ana's in any answer below 300
    (`hides` adds strings that must not show). Without a token the call gets a status in `anonymous`.
    `more` are further calls to the same route; `story` is a check that takes more than one call, run on a
    server of its own by test_route_stories (the only check of a websocket route)."""

    path: str
    bob: set[int] = field(default_factory=set)
    uma: set[int] = field(default_factory=set)
    body: Any = None
    says: str = ""
    hides: tuple[str, ...] = ()
    anonymous: set[int] = field(default_factory=lambda: {401})
    more: tuple[Probe, ...] = ()
    story: Callable[[World], Awaitable[None]] | None = None


USERNAMES = ('"admin"', '"ana"', '"bob"', '"uma"')
CLASH = "topic_clash"
NO_RIGHT = "cannot give a device"
ANA_DEV = f"/devices/{ANA_DEVICE}"
BOB_DEV = f"/devices/{BOB_DEVICE}"
WRONG_PASSWORD = {"client_id": "node-red-admin", "grant_type": "password", "username": "ana", "password": "guess"}
ROUTES: dict[tuple[str, str], Probe] = {
    ("GET", "/flows"): Probe("/flows", {200}, {200}),
    ("POST", "/flows"): Probe("/flows", {403}, {403}, bob_tab({"id": "b_in", "type": "mqtt in", "topic": "x",
                                                               "qos": "0", "broker": "a_cfg", "wires": [[]]})),
    ("GET", "/flows/state"): Probe("/flows/state", {200}, {200}),
    ("POST", "/flows/state"): Probe("/flows/state", {403}, {403}, {"state": "stop"}),
    ("POST", "/flow"): Probe("/flow", {403}, {403}, {"label": "x", "nodes": [
        {"id": "b_x", "type": "subflow:a_sf", "wires": [[]]}]}),
    ("GET", "/flow/{flow_id}"): Probe("/flow/ta", {404}, {404}),
    ("PUT", "/flow/{flow_id}"): Probe("/flow/ta", {403}, {403}, {"id": "ta", "label": "mine", "nodes": []}),
    ("DELETE", "/flow/{flow_id}"): Probe("/flow/ta", {403}, {403}),
    ("GET", "/flow/{flow_id}/sharing"): Probe("/flow/a_cfg/sharing", {404}, {404}),
    ("PUT", "/flow/{flow_id}/sharing"): Probe("/flow/a_sf/sharing", {403}, {403}, {"shared": ["bob"]}),
    ("GET", "/context/global"): Probe("/context/global", {403}, {403}),
    ("GET", "/context/global/{key:path}"): Probe(f"/context/global/{ANA_CONTEXT_KEY}", {403}, {403}),
    ("DELETE", "/context/global/{key:path}"): Probe(f"/context/global/{ANA_CONTEXT_KEY}", {403}, {403}),
    ("GET", "/context/{kind}/{scope_id}"): Probe("/context/flow/ta", {404}, {404}),
    ("GET", "/context/{kind}/{scope_id}/{key:path}"): Probe(f"/context/node/a_inj/{ANA_CONTEXT_KEY}", {404}, {404}),
    ("DELETE", "/context/{kind}/{scope_id}/{key:path}"): Probe(f"/context/flow/ta/{ANA_CONTEXT_KEY}", {404}, {403}),
    ("GET", "/credentials/{node_type}/{node_id}"): Probe("/credentials/mqtt-broker/a_cfg", {404}, {404}),
    ("POST", "/inject/{node_id}"): Probe("/inject/a_inj", {404}, {403}),
    ("POST", "/debug/{node_id}/{state}"): Probe("/debug/a_dbg/disable", {404}, {403}),
    ("POST", "/debug/{state}"): Probe("/debug/disable", {404}, {403}, {"nodes": ["a_dbg"]}),
    ("GET", "/metrics"): Probe("/metrics", {200}, {200}),
    ("GET", "/nodes"): Probe("/nodes", {200}, {200}),
    ("GET", "/nodes/{module:path}"): Probe("/nodes/sofiaflow", {200, 404}, {200, 404}),
    ("GET", "/settings"): Probe("/settings", {200}, {200}),
    ("GET", "/diagnostics"): Probe("/diagnostics", {200}, {200}),
    ("GET", "/audit"): Probe("/audit", {403}, {403}),
    # ontologies: ana's ontology "AnaReading"
    ("GET", "/ontologies"): Probe("/ontologies", {200}, {200}),
    ("POST", "/ontologies"): Probe("/ontologies", {201, 400, 409}, {403}, {"name": "AnaReading", "schema": SCHEMA}),
    ("GET", "/ontologies/{name}"): Probe("/ontologies/AnaReading", {404}, {404}),
    ("PUT", "/ontologies/{name}"): Probe("/ontologies/AnaReading", REFUSED, {403}, {"description": "bob's"}),
    ("DELETE", "/ontologies/{name}"): Probe("/ontologies/AnaReading", REFUSED, {403}),
    ("GET", "/ontologies/{name}/data"): Probe("/ontologies/AnaReading/data", {404}, {404}),
    ("POST", "/ontologies/{name}/data"): Probe("/ontologies/AnaReading/data", REFUSED, {403}, {"v": 9}),
    ("PATCH", "/ontologies/{name}/data"): Probe("/ontologies/AnaReading/data?filter=%7B%7D", REFUSED, {403},
                                                {"$set": {"v": 9}}),
    ("DELETE", "/ontologies/{name}/data"): Probe("/ontologies/AnaReading/data?filter=%7B%7D", REFUSED, {403}),
    ("POST", "/ontologies/{name}/validate"): Probe("/ontologies/AnaReading/validate", REFUSED, REFUSED, {"v": 1}),
    ("POST", "/ontologies/{name}/history/move"): Probe("/ontologies/AnaReading/history/move", REFUSED, {403}),
    ("GET", "/ontologies/{name}/grants"): Probe("/ontologies/AnaReading/grants", {404}, {404}),
    ("PUT", "/ontologies/{name}/grants/{user}"): Probe("/ontologies/AnaReading/grants/bob", REFUSED, {403},
                                                       {"access": "ALL"}),
    ("DELETE", "/ontologies/{name}/grants/{user}"): Probe("/ontologies/AnaReading/grants/ana", REFUSED, {403}),
    # API keys and the API Manager: each caller's own keys
    ("GET", "/api-keys"): Probe("/api-keys", {200}, {200}),
    ("POST", "/api-keys"): Probe("/api-keys", {201}, {201, 403}, {"label": "mine"}),
    ("DELETE", "/api-keys/{key_id}"): Probe("/api-keys/{ana_key}", REFUSED, REFUSED),
    ("GET", "/api-manager/catalog"): Probe("/api-manager/catalog", {200}, {200}, anonymous={200}),  # published APIs
    ("GET", "/api-manager/stats"): Probe("/api-manager/stats", {200, 403}, {200, 403}),
    ("GET", "/api-manager/swagger"): Probe("/api-manager/swagger", {200}, {200}, anonymous={200}),
    ("WS", "/comms"): Probe("/comms", story=comms_carries_only_what_each_caller_may_see),
    # devices: ana's device ana-dev (and its token), bob's own bob-dev; the MQTT side of device topics is
    # tests/test_broker_tenancy*.py's
    ("GET", "/devices"): Probe("/devices", {200}, {200}),
    ("POST", "/devices"): Probe("/devices", {403}, {403}, {"name": "b-for-ana", "owner": "ana"},
                                says="only administrators choose", more=(
        Probe("/devices", {400}, {403}, {"name": "b-clash", "topics": ["ana/#"]}, says=CLASH),
        Probe("/devices", {403}, {403}, {"name": "b-rights", "ontologies": {"AnaReading": "QUERY"}}, says=NO_RIGHT),
        Probe("/devices", {409}, {403}, {"name": ANA_DEVICE}))),
    ("GET", "/devices/{name}"): Probe(ANA_DEV, {404}, {404}),
    ("PATCH", "/devices/{name}"): Probe(ANA_DEV, {404}, {403}, {"enabled": False}, more=(
        Probe(ANA_DEV, {404}, {403}, {"owner": "bob"}),
        Probe(BOB_DEV, {400}, {403}, {"topics": ["+/ana-dev/#"]}, says=CLASH),
        Probe(BOB_DEV, {403}, {403}, {"ontologies": {"AnaReading": "ALL"}}, says=NO_RIGHT),
        Probe(BOB_DEV, {403}, {403}, {"owner": "ana"}, says="only administrators choose"))),
    ("DELETE", "/devices/{name}"): Probe(ANA_DEV, {404}, {403}),
    ("GET", "/devices/{name}/instances"): Probe(f"{ANA_DEV}/instances", {404}, {404}),
    ("POST", "/devices/{name}/tokens"): Probe(f"{ANA_DEV}/tokens", {404}, {403}, {"rotate": True}),
    ("DELETE", "/devices/{name}/tokens/{token_id}"): Probe(ANA_DEV + "/tokens/{ana_device_token}", {404}, {403}),
    # users and auth
    ("GET", "/auth/login"): Probe("/auth/login", {200}, {200}, hides=USERNAMES, anonymous={200}),
    ("POST", "/auth/token"): Probe("/auth/token", {401}, {401}, WRONG_PASSWORD, says="invalid username or password",
                                   anonymous={401}),
    ("POST", "/auth/revoke"): Probe("/auth/revoke", {403}, {403}, {"token": "{ana_token}"}, says="only their own"),
    ("GET", "/users"): Probe("/users", {403}, {403}),
    ("POST", "/users"): Probe("/users", {403}, {403}, {"username": "eve", "password": "eve", "role": "administrator"}),
    ("PATCH", "/users/{username}"): Probe("/users/ana", {403}, {403}, {"role": "user", "password": "taken"}, more=(
        Probe("/users/bob", {403}, {403}, {"role": "administrator"}),)),
    ("DELETE", "/users/{username}"): Probe("/users/ana", {403}, {403},
                                           story=a_namesake_of_a_deleted_user_owns_nothing_of_theirs),
}
"""Every admin route (method, path) -> what is asserted. http-in routes are the flows' own endpoints, served by
the app's default route, not admin routes: their tenancy (bob's http in cannot take ana's path) is the http-in
route table's tests' (tests/test_node_http.py)."""


def admin_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route of the app, routers included (WS for websockets); docs pages left out."""
    found: set[tuple[str, str]] = set()

    def add(route: Any, prefix: str) -> None:
        if isinstance(route, APIRoute):
            found.update((m, prefix + route.path) for m in route.methods if m != "HEAD")
        elif isinstance(route, APIWebSocketRoute):
            found.add(("WS", prefix + route.path))
        elif hasattr(route, "original_router"):  # an included router
            for inner in route.original_router.routes:
                add(inner, prefix + route.include_context.prefix)
        elif hasattr(route, "routes") and getattr(route, "path", None) is not None and \
                not str(route.path).startswith("/api-manager/swagger/static"):
            for inner in route.routes:
                add(inner, prefix + route.path)

    for route in app.routes:
        add(route, "")
    return found - {("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc"),
                    ("GET", "/docs/oauth2-redirect")}


def _filled(value: Any, names: dict[str, str]) -> Any:
    """`value` (a path or a JSON body) with every `{name}` of `names` replaced."""
    if isinstance(value, str):
        for name, text in names.items():
            value = value.replace("{" + name + "}", text)
        return value
    if isinstance(value, dict):
        return {k: _filled(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, names) for v in value]
    return value


async def _probe(world: World, method: str, template: str, probe: Probe, names: dict[str, str],
                 ana_names: list[str]) -> None:
    path, body = _filled(probe.path, names), _filled(probe.body, names)
    calls = (("uma", probe.uma), ("bob", probe.bob), (None, probe.anonymous))
    for who, allowed in calls:
        if who is None:
            answer = await world.http.request(method, path, json=body)
        else:
            answer = await world.call(who, method, path, body)
        where = f"{who or 'anonymous'} {method} {path}"
        assert answer.status_code in allowed, f"{where}: {answer.status_code} {answer.text[:300]}"
        if who == "bob":
            assert probe.says in answer.text, f"{where}: {probe.says!r} not in {answer.text[:300]}"
        if answer.status_code < 300:
            text = answer.text
            exempt = template == "/ontologies" and method == "POST"  # bob's own ontology named like ana's
            leaked = [i for i in [*ana_names, *probe.hides] if i in text and not exempt]
            assert leaked == [], f"{where} shows {leaked}"


async def test_every_admin_route_has_an_expectation_and_refuses_other_tenants(world):
    routes = admin_routes(world.app)
    assert routes - set(ROUTES) == set(), "routes without a row in ROUTES"
    assert set(ROUTES) - routes == set(), "rows in ROUTES for routes that are gone"

    rt = world.rt
    held = await give_ana_holdings(world)
    names = {"ana_key": held.key_id, "ana_device_token": held.device_token_id, "ana_token": world.tokens["ana"]}
    ana_names = [*(f'"{i}"' for i in ANA_IDS), "ana-broker", "ana-debug", "ana-only", "AnaReading", ANA_DEVICE,
                 ANA_INSTANCE, held.key_id, held.device_token_id, world.tokens["ana"]]
    before = json.dumps(rt.flows, sort_keys=True)
    device_before = devices(world).get(ANA_DEVICE).as_dict()
    instances_before = devices(world).instances(ANA_DEVICE)
    users_before = {u["username"]: u["role"] for u in (await world.call("admin", "GET", "/users")).json()}

    for (method, template), row in sorted(ROUTES.items()):
        if method == "WS":
            assert row.story is not None, f"{template}: a websocket route is checked by its story"
            continue
        for probe in (row, *row.more):
            await _probe(world, method, template, probe, names, ana_names)

    # nothing of ana's was changed, stopped or taken
    assert json.dumps([n for n in rt.flows if n["id"] in ANA_IDS], sort_keys=True) == \
        json.dumps([n for n in json.loads(before) if n["id"] in ANA_IDS], sort_keys=True)
    assert rt.state == "start"
    for scope in ("flow:ta", "node:ta:a_inj", "global"):
        assert rt.contexts.scope(scope).get(ANA_CONTEXT_KEY, rt.contexts.default) == "ana-only"
    assert rt.deployer.running["a_dbg"].active
    assert (await world.call("ana", "GET", "/ontologies/AnaReading/data")).json()["total"] == 1
    assert [k for k in (await world.call("ana", "GET", "/api-keys")).json() if k["id"] == held.key_id]
    assert devices(world).get(ANA_DEVICE).as_dict() == device_before
    assert devices(world).instances(ANA_DEVICE) == instances_before
    assert devices(world).authenticate(ANA_DEVICE, held.device_token).owner == "ana"
    assert {d.name for d in devices(world).list()} == {ANA_DEVICE, BOB_DEVICE}
    assert devices(world).get(BOB_DEVICE).as_dict()["topics"] == ["bob/{device}/#"]
    assert devices(world).get(BOB_DEVICE).ontologies == {}
    # users: none made or changed; ana's token and password still work, a wrong password gets no token
    assert {u["username"]: u["role"] for u in (await world.call("admin", "GET", "/users")).json()} == users_before
    assert users_before == {"admin": "administrator", **USERS}
    assert (await world.call("ana", "GET", "/flow/ta")).status_code == 200
    assert (await login(world, "ana", "ana-password")).status_code == 200
    assert (await login(world, "ana", "taken")).status_code == 401
    assert any(e["action"].startswith("POST /devices") for e in rt.audit.entries(user="bob", outcome="denied"))
    # the administrator still sees and acts on everything
    assert (await world.call("admin", "GET", "/flow/ta")).status_code == 200
    assert (await world.call("admin", "GET", f"/context/flow/ta/{ANA_CONTEXT_KEY}")).json()["msg"] == "ana-only"
    assert "a_inj" in (await world.call("admin", "GET", "/metrics")).text
    assert (await world.call("admin", "GET", f"{ANA_DEV}/instances")).json()[0]["instance"] == ANA_INSTANCE


STORIES = sorted((f"{method} {template}", row.story) for (method, template), row in ROUTES.items() if row.story)


@pytest.mark.parametrize("story", [story for _, story in STORIES], ids=[route for route, _ in STORIES])
async def test_route_stories(world, story):
    await story(world)


# ----- config nodes, subflows, links ----------------------------------------------------------------------------
async def test_config_nodes_and_subflows_of_others_are_neither_changed_nor_used(world):
    rt = world.rt
    mine = bob_tab(bob_inject())

    async def bob_deploys(*extra: dict[str, Any]) -> httpx.Response:
        return await world.call("bob", "POST", "/flows", mine + list(extra))

    # changing ana's broker (pointing it at bob's listener) or her subflow's code
    evil_broker = {"id": "a_cfg", "type": "mqtt-broker", "broker": "127.0.0.1", "port": "2", "autoConnect": False}
    refused = await bob_deploys(evil_broker)
    assert refused.status_code == 403 and "'a_cfg'" in refused.json()["message"]
    assert "config node" in refused.json()["message"]
    refused = await bob_deploys({"id": "a_sfn", "type": "function", "z": "a_sf", "func": "return msg;",
                                 "wires": [[]]})
    assert refused.status_code == 403 and "'a_sfn'" in refused.json()["message"]
    refused = await bob_deploys({"id": "b_fn", "type": "change", "z": "a_sf", "rules": [], "wires": [[]]})
    assert refused.status_code == 403 and "subflow 'a_sf'" in refused.json()["message"]
    # using them: a property naming the config node, a subflow:<id> type, a link to ana's link in
    uses = [{"id": "b_in", "type": "mqtt in", "z": "tb", "topic": "x", "qos": "0", "broker": "a_cfg", "wires": [[]]},
            {"id": "b_inst", "type": "subflow:a_sf", "z": "tb", "wires": [[]]},
            {"id": "b_lo", "type": "link out", "z": "tb", "mode": "link", "links": ["a_lin"]},
            {"id": "b_lc", "type": "link call", "z": "tb", "links": ["a_lin"], "linkType": "static",
             "wires": [[]]},
            {"id": "b_w", "type": "change", "z": "tb", "rules": [], "wires": [["a_dbg"]]}]
    for node in uses:
        refused = await bob_deploys(node)
        assert refused.status_code == 403, (node, refused.text)
        assert f"'{node['id']}'" in refused.json()["message"] and "not bob's" in refused.json()["message"]
    assert (await world.call("bob", "POST", "/flow", {"label": "via /flow", "nodes": [uses[0]]})).status_code == 403
    assert (await world.call("bob", "PUT", "/flow/tb", {"id": "tb", "label": "t", "nodes": [uses[1]]})).status_code \
        == 403
    assert {n["id"]: n for n in rt.flows}["a_cfg"]["port"] == "1"
    denied = rt.audit.entries(user="bob", outcome="denied")
    assert len(denied) >= len(uses) + 5
    # credentials of ana's config node ride on no deploy of bob's
    stolen = await world.call("bob", "POST", "/flows", {"flows": mine, "credentials": {"a_cfg": {"user": "bob"}}})
    assert stolen.status_code == 403 and "'a_cfg'" in stolen.json()["message"]

    # shared with bob, he uses them; his own new config node is his, not ana's to use
    for unit in ("a_cfg", "a_sf", "ta"):
        assert (await world.call("ana", "PUT", f"/flow/{unit}/sharing", {"shared": ["bob"]})).status_code == 200
    sharing = (await world.call("bob", "GET", "/flow/a_cfg/sharing")).json()
    assert sharing == {"id": "a_cfg", "kind": "config", "owner": "ana", "shared": ["bob"]}
    bob_view = (await world.call("bob", "GET", "/flows")).json()
    mine = [n for n in bob_view]
    own_broker = {"id": "b_cfg", "type": "mqtt-broker", "broker": "127.0.0.1", "port": "3", "autoConnect": False}
    answer = await world.call("bob", "POST", "/flows", mine + uses[:4] + [own_broker])
    assert answer.status_code == 204, answer.text
    assert (await world.call("bob", "GET", "/flow/b_cfg/sharing")).json()["owner"] == "bob"
    ana_uses_bobs = [n for n in (await world.call("ana", "GET", "/flows")).json()] + [
        {"id": "a_in2", "type": "mqtt in", "z": "ta", "topic": "y", "qos": "0", "broker": "b_cfg", "wires": [[]]}]
    refused = await world.call("ana", "POST", "/flows", ana_uses_bobs)
    assert refused.status_code == 403 and "'b_cfg'" in refused.json()["message"]


async def test_ownerless_tabs_and_config_nodes_stay_administrators(world):
    rt = world.rt
    # the shipped IoT Broker flow (deployed at first start, no owner) and a tab deployed from the command line
    assert {"iotBrokerTab", "ssapBroker"} <= running_ids(rt)
    await rt.deploy([*rt.flows, {"id": "cli_tab", "type": "tab", "label": "cli"},
                     {"id": "cli_cfg", "type": "mqtt-broker", "broker": "127.0.0.1", "port": "1",
                      "autoConnect": False}], user=None)
    assert (await world.call("bob", "POST", "/flows", bob_tab(bob_inject("b_two")))).status_code == 204
    for unit in ("iotBrokerTab", "ssapBroker", "cli_tab", "cli_cfg"):
        assert rt.ownership.owner(unit) is None, unit
        assert (await world.call("bob", "GET", f"/flow/{unit}/sharing")).status_code == 404
    assert {"iotBrokerTab", "cli_tab", "cli_cfg"} <= running_ids(rt)
    bob_sees = {n["id"] for n in (await world.call("bob", "GET", "/flows")).json()}
    assert bob_sees & {"iotBrokerTab", "ssapBroker", "cli_tab", "cli_cfg"} == set()
    refused = await world.call("bob", "POST", "/flows", bob_tab(
        {"id": "b_in", "type": "mqtt in", "topic": "x", "qos": "0", "broker": "cli_cfg", "wires": [[]]}))
    assert refused.status_code == 403 and "'cli_cfg'" in refused.json()["message"]
    assert (await world.call("admin", "GET", "/flow/iotBrokerTab/sharing")).json()["owner"] is None


async def test_only_administrators_start_and_stop_the_flows(world):
    rt = world.rt
    for who in ("bob", "uma"):
        answer = await world.call(who, "POST", "/flows/state", {"state": "stop"})
        assert answer.status_code == 403
        assert rt.state == "start" and "a_inj" in rt.deployer.running
    assert any(e["action"] == "POST /flows/state" for e in rt.audit.entries(user="bob", outcome="denied"))
    assert (await world.call("admin", "POST", "/flows/state", {"state": "stop"})).json() == {"state": "stop"}
    assert (await world.call("admin", "POST", "/flows/state", {"state": "start"})).json() == {"state": "start"}


# ----- comms ------------------------------------------------------------------------------------------------------
async def test_unauthenticated_comms_sockets_are_closed(world, monkeypatch):
    monkeypatch.setattr(comms, "AUTH_DEADLINE", 0.3)
    async with connect(f"ws://{world.host}/comms") as ws:  # sends nothing: closed at the deadline
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with connect(f"ws://{world.host}/comms") as ws:  # anything but auth first: closed at once
        await ws.send(json.dumps({"subscribe": "#"}))
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


# ----- metrics and the monitoring page ----------------------------------------------------------------------------
async def test_metrics_and_monitoring_show_each_caller_their_own_nodes(world):
    rt = world.rt
    assert (await world.call("ana", "POST", "/inject/a_inj")).status_code == 200
    for who, mine, others in (("ana", "a_inj", "b_inj"), ("bob", "b_inj", "a_inj")):
        text = (await world.call(who, "GET", "/metrics")).text
        assert f'node="{mine}"' in text and f'node="{others}"' not in text
        assert "sofiaflow_engine_messages" in text
        assert ("ana-broker" in text) == (who == "ana")
    admin = (await world.call("admin", "GET", "/metrics")).text
    assert 'node="a_inj"' in admin and 'node="b_inj"' in admin and 'node="a_cfg"' in admin
    assert 'node="' not in (await world.call("uma", "GET", "/metrics")).text
    # the monitoring page's rows come from the same view
    snap = snapshot(rt.engine)
    assert {r.id for r in tenant_view(snap, rt, "bob", "developer").nodes} == {"b_inj", "b_dbg"}
    assert {r.flow for r in tenant_view(snap, rt, "ana", "developer").nodes} == {"ta"}
    assert tenant_view(snap, rt, "uma", "user").nodes == []
    assert [b.id for b in tenant_view(snap, rt, "bob", "developer").brokers if b.kind == "mqtt-broker"] == []
    assert len(tenant_view(snap, rt, "admin", "administrator").nodes) == len(snap.nodes)
