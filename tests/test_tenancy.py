"""Tenancy against a real server on a loopback port: two developers (ana, bob), a read-only user (uma) and an
administrator. Nothing of one tenant is read, changed, stopped or used by another: tabs, config nodes,
subflows, links, flow state, context, debug/status on /comms, node actions, credentials, metrics, ontologies,
API keys, devices and their tokens, users and sessions.

`ROUTES` holds a `Probe` for every route of the admin app (the test enumerates the app's routes, so a new
route fails here until it gets a row): bob's and uma's calls about ana's things, each answer's status and
what it must not show; checks that take more than one call (a websocket, a deleted user's namesake) are the
row's `story`, run on a server of their own. The server, ana's holdings and the stories are in
tests/tenancy_helpers.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sofiaflow.runtime.core.metrics import snapshot, tenant_view
from sofiaflow.runtime.http import comms
from tests.tenancy_helpers import (
    ANA_CONTEXT_KEY,
    ANA_DEVICE,
    ANA_IDS,
    ANA_INSTANCE,
    BOB_DEVICE,
    REFUSED,
    SCHEMA,
    USERS,
    World,
    a_namesake_of_a_deleted_user_owns_nothing_of_theirs,
    bob_inject,
    bob_tab,
    comms_carries_only_what_each_caller_may_see,
    devices,
    give_ana_holdings,
    login,
    running_ids,
    serve_world,
)


@pytest.fixture
async def world(tmp_path, registry):
    async with serve_world(tmp_path, registry) as served:
        yield served


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
NO_ALARM = "0" * 32
WRONG_PASSWORD = {
    "client_id": "node-red-admin",
    "grant_type": "password",
    "username": "ana",
    "password": "guess",
}
ROUTES: dict[tuple[str, str], Probe] = {
    ("GET", "/flows"): Probe("/flows", {200}, {200}),
    ("POST", "/flows"): Probe(
        "/flows",
        {403},
        {403},
        bob_tab(
            {"id": "b_in", "type": "mqtt in", "topic": "x", "qos": "0", "broker": "a_cfg", "wires": [[]]}
        ),
    ),
    ("GET", "/flows/state"): Probe("/flows/state", {200}, {200}),
    ("POST", "/flows/state"): Probe("/flows/state", {403}, {403}, {"state": "stop"}),
    ("POST", "/flow"): Probe(
        "/flow", {403}, {403}, {"label": "x", "nodes": [{"id": "b_x", "type": "subflow:a_sf", "wires": [[]]}]}
    ),
    ("GET", "/flow/{flow_id}"): Probe("/flow/ta", {404}, {404}),
    ("PUT", "/flow/{flow_id}"): Probe("/flow/ta", {403}, {403}, {"id": "ta", "label": "mine", "nodes": []}),
    ("DELETE", "/flow/{flow_id}"): Probe("/flow/ta", {403}, {403}),
    ("GET", "/flow/{flow_id}/sharing"): Probe("/flow/a_cfg/sharing", {404}, {404}),
    ("PUT", "/flow/{flow_id}/sharing"): Probe("/flow/a_sf/sharing", {403}, {403}, {"shared": ["bob"]}),
    ("GET", "/context/global"): Probe("/context/global", {403}, {403}),
    ("GET", "/context/global/{key:path}"): Probe(f"/context/global/{ANA_CONTEXT_KEY}", {403}, {403}),
    ("DELETE", "/context/global/{key:path}"): Probe(f"/context/global/{ANA_CONTEXT_KEY}", {403}, {403}),
    ("GET", "/context/{kind}/{scope_id}"): Probe("/context/flow/ta", {404}, {404}),
    ("GET", "/context/{kind}/{scope_id}/{key:path}"): Probe(
        f"/context/node/a_inj/{ANA_CONTEXT_KEY}", {404}, {404}
    ),
    ("DELETE", "/context/{kind}/{scope_id}/{key:path}"): Probe(
        f"/context/flow/ta/{ANA_CONTEXT_KEY}", {404}, {403}
    ),
    ("GET", "/credentials/{node_type}/{node_id}"): Probe("/credentials/mqtt-broker/a_cfg", {404}, {404}),
    ("POST", "/inject/{node_id}"): Probe("/inject/a_inj", {404}, {403}),
    ("POST", "/debug/{node_id}/{state}"): Probe("/debug/a_dbg/disable", {404}, {403}),
    ("POST", "/debug/{state}"): Probe("/debug/disable", {404}, {403}, {"nodes": ["a_dbg"]}),
    ("GET", "/metrics"): Probe("/metrics", {200}, {200}),
    ("GET", "/nodes"): Probe("/nodes", {200}, {200}),
    ("GET", "/nodes/{module:path}"): Probe("/nodes/sofiaflow", {200, 404}, {200, 404}),
    ("PUT", "/nodes/{module:path}"): Probe("/nodes/node-red/inject", {403}, {403}, {"enabled": False}),
    ("GET", "/settings"): Probe("/settings", {200}, {200}),
    ("GET", "/diagnostics"): Probe("/diagnostics", {200}, {200}),
    ("GET", "/audit"): Probe("/audit", {403}, {403}),
    # ontologies: ana's ontology "AnaReading"
    ("GET", "/ontologies"): Probe("/ontologies", {200}, {200}),
    ("POST", "/ontologies"): Probe(
        "/ontologies", {201, 400, 409}, {403}, {"name": "AnaReading", "schema": SCHEMA}
    ),
    ("GET", "/ontologies/{name}"): Probe("/ontologies/AnaReading", {404}, {404}),
    ("PUT", "/ontologies/{name}"): Probe("/ontologies/AnaReading", REFUSED, {403}, {"description": "bob's"}),
    ("DELETE", "/ontologies/{name}"): Probe("/ontologies/AnaReading", REFUSED, {403}),
    ("GET", "/ontologies/{name}/data"): Probe("/ontologies/AnaReading/data", {404}, {404}),
    ("POST", "/ontologies/{name}/data"): Probe("/ontologies/AnaReading/data", REFUSED, {403}, {"v": 9}),
    ("PATCH", "/ontologies/{name}/data"): Probe(
        "/ontologies/AnaReading/data?filter=%7B%7D", REFUSED, {403}, {"$set": {"v": 9}}
    ),
    ("DELETE", "/ontologies/{name}/data"): Probe("/ontologies/AnaReading/data?filter=%7B%7D", REFUSED, {403}),
    ("POST", "/ontologies/{name}/validate"): Probe(
        "/ontologies/AnaReading/validate", REFUSED, REFUSED, {"v": 1}
    ),
    ("POST", "/ontologies/{name}/history/move"): Probe("/ontologies/AnaReading/history/move", REFUSED, {403}),
    ("GET", "/ontologies/{name}/grants"): Probe("/ontologies/AnaReading/grants", {404}, {404}),
    ("PUT", "/ontologies/{name}/grants/{user}"): Probe(
        "/ontologies/AnaReading/grants/bob", REFUSED, {403}, {"access": "ALL"}
    ),
    ("DELETE", "/ontologies/{name}/grants/{user}"): Probe(
        "/ontologies/AnaReading/grants/ana", REFUSED, {403}
    ),
    # API keys and the API Manager: each caller's own keys
    ("GET", "/api-keys"): Probe("/api-keys", {200}, {200}),
    ("POST", "/api-keys"): Probe("/api-keys", {201}, {201, 403}, {"label": "mine"}),
    ("DELETE", "/api-keys/{key_id}"): Probe("/api-keys/{ana_key}", REFUSED, REFUSED),
    ("GET", "/api-manager/catalog"): Probe(
        "/api-manager/catalog", {200}, {200}, anonymous={200}
    ),  # published APIs
    ("GET", "/api-manager/stats"): Probe("/api-manager/stats", {200, 403}, {200, 403}),
    ("GET", "/api-manager/swagger"): Probe("/api-manager/swagger", {200}, {200}, anonymous={200}),
    ("WS", "/comms"): Probe("/comms", story=comms_carries_only_what_each_caller_may_see),
    # devices: ana's device ana-dev (and its token), bob's own bob-dev; the MQTT side of device topics is
    # tests/test_broker_tenancy*.py's
    ("GET", "/devices"): Probe("/devices", {200}, {200}),
    ("POST", "/devices"): Probe(
        "/devices",
        {403},
        {403},
        {"name": "b-for-ana", "owner": "ana"},
        says="only administrators choose",
        more=(
            Probe(
                "/devices",
                {400},
                {403},
                {"name": "b-clash", "topics": ["ana/#"]},
                says=CLASH,
                hides=(ANA_DEVICE, "ana/{device}"),
            ),
            Probe(
                "/devices",
                {403},
                {403},
                {"name": "b-rights", "ontologies": {"AnaReading": "QUERY"}},
                says=NO_RIGHT,
            ),
            Probe("/devices", {409}, {403}, {"name": ANA_DEVICE}),
        ),
    ),
    ("GET", "/devices/{name}"): Probe(ANA_DEV, {404}, {404}),
    ("PATCH", "/devices/{name}"): Probe(
        ANA_DEV,
        {404},
        {403},
        {"enabled": False},
        more=(
            Probe(ANA_DEV, {404}, {403}, {"owner": "bob"}),
            Probe(BOB_DEV, {400}, {403}, {"topics": ["+/ana-dev/#"]}, says=CLASH, hides=("ana/",)),
            Probe(BOB_DEV, {403}, {403}, {"ontologies": {"AnaReading": "ALL"}}, says=NO_RIGHT),
            Probe(BOB_DEV, {403}, {403}, {"owner": "ana"}, says="only administrators choose"),
        ),
    ),
    ("DELETE", "/devices/{name}"): Probe(ANA_DEV, {404}, {403}),
    ("GET", "/devices/{name}/instances"): Probe(f"{ANA_DEV}/instances", {404}, {404}),
    ("POST", "/devices/{name}/tokens"): Probe(f"{ANA_DEV}/tokens", {404}, {403}, {"rotate": True}),
    ("DELETE", "/devices/{name}/tokens/{token_id}"): Probe(
        ANA_DEV + "/tokens/{ana_device_token}", {404}, {403}
    ),
    # cluster: the workers for administrators; the balancer's health check needs no token and tells nothing
    ("GET", "/cluster"): Probe("/cluster", {403}, {403}),
    ("GET", "/cluster/health"): Probe("/cluster/health", {200}, {200}, anonymous={200}),
    # partitions' dead letters: none in a single process (cross-tenant checks: tests/test_partition_routes.py)
    ("GET", "/partitions/dead-letters"): Probe("/partitions/dead-letters", {200}, {200}),
    ("POST", "/partitions/dead-letters/{letter}/replay"): Probe(
        "/partitions/dead-letters/0-1/replay", {404}, {403}
    ),
    ("DELETE", "/partitions/dead-letters/{letter}"): Probe("/partitions/dead-letters/0-1", {404}, {403}),
    # alarms: each caller's own (ana's alarm vs bob: tests/test_alarm_routes.py)
    ("GET", "/alarms"): Probe("/alarms", {200}, {200}),
    ("GET", "/alarms/{alarm_id}"): Probe(f"/alarms/{NO_ALARM}", {404}, {404}),
    ("POST", "/alarms/{alarm_id}/ack"): Probe(f"/alarms/{NO_ALARM}/ack", {404}, {403}),
    ("POST", "/alarms/{alarm_id}/clear"): Probe(f"/alarms/{NO_ALARM}/clear", {404}, {403}),
    ("DELETE", "/alarms/{alarm_id}"): Probe(f"/alarms/{NO_ALARM}", {404}, {403}),
    # users and auth
    ("GET", "/auth/login"): Probe("/auth/login", {200}, {200}, hides=USERNAMES, anonymous={200}),
    ("POST", "/auth/token"): Probe(
        "/auth/token", {401}, {401}, WRONG_PASSWORD, says="invalid username or password", anonymous={401}
    ),
    ("POST", "/auth/revoke"): Probe(
        "/auth/revoke", {403}, {403}, {"token": "{ana_token}"}, says="only their own"
    ),
    ("GET", "/users"): Probe("/users", {403}, {403}),
    ("POST", "/users"): Probe(
        "/users", {403}, {403}, {"username": "eve", "password": "eve", "role": "administrator"}
    ),
    ("PATCH", "/users/{username}"): Probe(
        "/users/ana",
        {403},
        {403},
        {"role": "user", "password": "taken"},
        more=(Probe("/users/bob", {403}, {403}, {"role": "administrator"}),),
    ),
    ("DELETE", "/users/{username}"): Probe(
        "/users/ana", {403}, {403}, story=a_namesake_of_a_deleted_user_owns_nothing_of_theirs
    ),
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
        elif (
            hasattr(route, "routes")
            and getattr(route, "path", None) is not None
            and not str(route.path).startswith("/api-manager/swagger/static")
        ):
            for inner in route.routes:
                add(inner, prefix + route.path)

    for route in app.routes:
        add(route, "")
    return found - {
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/redoc"),
        ("GET", "/docs/oauth2-redirect"),
    }


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


async def _probe(
    world: World, method: str, template: str, probe: Probe, names: dict[str, str], ana_names: list[str]
) -> None:
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
        shown = [i for i in probe.hides if i in answer.text]  # in refusals too
        assert shown == [], f"{where} shows {shown}"
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
    names = {
        "ana_key": held.key_id,
        "ana_device_token": held.device_token_id,
        "ana_token": world.tokens["ana"],
    }
    ana_names = [
        *(f'"{i}"' for i in ANA_IDS),
        "ana-broker",
        "ana-debug",
        "ana-only",
        "AnaReading",
        ANA_DEVICE,
        ANA_INSTANCE,
        held.key_id,
        held.device_token_id,
        world.tokens["ana"],
    ]
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
    assert json.dumps([n for n in rt.flows if n["id"] in ANA_IDS], sort_keys=True) == json.dumps(
        [n for n in json.loads(before) if n["id"] in ANA_IDS], sort_keys=True
    )
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
    assert {
        u["username"]: u["role"] for u in (await world.call("admin", "GET", "/users")).json()
    } == users_before
    assert users_before == {"admin": "administrator", **USERS}
    assert (await world.call("ana", "GET", "/flow/ta")).status_code == 200
    assert (await login(world, "ana", "ana-password")).status_code == 200
    assert (await login(world, "ana", "taken")).status_code == 401
    assert any(
        e["action"].startswith("POST /devices") for e in rt.audit.entries(user="bob", outcome="denied")
    )
    # the administrator still sees and acts on everything
    assert (await world.call("admin", "GET", "/flow/ta")).status_code == 200
    assert (await world.call("admin", "GET", f"/context/flow/ta/{ANA_CONTEXT_KEY}")).json()[
        "msg"
    ] == "ana-only"
    assert "a_inj" in (await world.call("admin", "GET", "/metrics")).text
    assert (await world.call("admin", "GET", f"{ANA_DEV}/instances")).json()[0]["instance"] == ANA_INSTANCE


STORIES = sorted(
    (f"{method} {template}", row.story) for (method, template), row in ROUTES.items() if row.story
)


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
    evil_broker = {
        "id": "a_cfg",
        "type": "mqtt-broker",
        "broker": "127.0.0.1",
        "port": "2",
        "autoConnect": False,
    }
    refused = await bob_deploys(evil_broker)
    assert refused.status_code == 403 and "'a_cfg'" in refused.json()["message"]
    assert "config node" in refused.json()["message"]
    refused = await bob_deploys(
        {"id": "a_sfn", "type": "function", "z": "a_sf", "func": "return msg;", "wires": [[]]}
    )
    assert refused.status_code == 403 and "'a_sfn'" in refused.json()["message"]
    refused = await bob_deploys({"id": "b_fn", "type": "change", "z": "a_sf", "rules": [], "wires": [[]]})
    assert refused.status_code == 403 and "subflow 'a_sf'" in refused.json()["message"]
    # using them: a property naming the config node, a subflow:<id> type, a link to ana's link in
    uses = [
        {
            "id": "b_in",
            "type": "mqtt in",
            "z": "tb",
            "topic": "x",
            "qos": "0",
            "broker": "a_cfg",
            "wires": [[]],
        },
        {"id": "b_inst", "type": "subflow:a_sf", "z": "tb", "wires": [[]]},
        {"id": "b_lo", "type": "link out", "z": "tb", "mode": "link", "links": ["a_lin"]},
        {
            "id": "b_lc",
            "type": "link call",
            "z": "tb",
            "links": ["a_lin"],
            "linkType": "static",
            "wires": [[]],
        },
        {"id": "b_w", "type": "change", "z": "tb", "rules": [], "wires": [["a_dbg"]]},
    ]
    for node in uses:
        refused = await bob_deploys(node)
        assert refused.status_code == 403, (node, refused.text)
        assert f"'{node['id']}'" in refused.json()["message"] and "not bob's" in refused.json()["message"]
    assert (
        await world.call("bob", "POST", "/flow", {"label": "via /flow", "nodes": [uses[0]]})
    ).status_code == 403
    assert (
        await world.call("bob", "PUT", "/flow/tb", {"id": "tb", "label": "t", "nodes": [uses[1]]})
    ).status_code == 403
    assert {n["id"]: n for n in rt.flows}["a_cfg"]["port"] == "1"
    denied = rt.audit.entries(user="bob", outcome="denied")
    assert len(denied) >= len(uses) + 5
    # credentials of ana's config node ride on no deploy of bob's
    stolen = await world.call(
        "bob", "POST", "/flows", {"flows": mine, "credentials": {"a_cfg": {"user": "bob"}}}
    )
    assert stolen.status_code == 403 and "'a_cfg'" in stolen.json()["message"]

    # shared with bob, he uses them; his own new config node is his, not ana's to use
    for unit in ("a_cfg", "a_sf", "ta"):
        assert (
            await world.call("ana", "PUT", f"/flow/{unit}/sharing", {"shared": ["bob"]})
        ).status_code == 200
    sharing = (await world.call("bob", "GET", "/flow/a_cfg/sharing")).json()
    assert sharing == {"id": "a_cfg", "kind": "config", "owner": "ana", "shared": ["bob"]}
    bob_view = (await world.call("bob", "GET", "/flows")).json()
    mine = [n for n in bob_view]
    own_broker = {
        "id": "b_cfg",
        "type": "mqtt-broker",
        "broker": "127.0.0.1",
        "port": "3",
        "autoConnect": False,
    }
    answer = await world.call("bob", "POST", "/flows", mine + uses[:4] + [own_broker])
    assert answer.status_code == 204, answer.text
    assert (await world.call("bob", "GET", "/flow/b_cfg/sharing")).json()["owner"] == "bob"
    ana_uses_bobs = [n for n in (await world.call("ana", "GET", "/flows")).json()] + [
        {
            "id": "a_in2",
            "type": "mqtt in",
            "z": "ta",
            "topic": "y",
            "qos": "0",
            "broker": "b_cfg",
            "wires": [[]],
        }
    ]
    refused = await world.call("ana", "POST", "/flows", ana_uses_bobs)
    assert refused.status_code == 403 and "'b_cfg'" in refused.json()["message"]


async def test_ownerless_tabs_and_config_nodes_stay_administrators(world):
    rt = world.rt
    # the shipped IoT Broker flow (deployed at first start, no owner) and a tab deployed from the command line
    assert {"iotBrokerTab", "ssapBroker"} <= running_ids(rt)
    await rt.deploy(
        [
            *rt.flows,
            {"id": "cli_tab", "type": "tab", "label": "cli"},
            {
                "id": "cli_cfg",
                "type": "mqtt-broker",
                "broker": "127.0.0.1",
                "port": "1",
                "autoConnect": False,
            },
        ],
        user=None,
    )
    assert (await world.call("bob", "POST", "/flows", bob_tab(bob_inject("b_two")))).status_code == 204
    for unit in ("iotBrokerTab", "ssapBroker", "cli_tab", "cli_cfg"):
        assert rt.ownership.owner(unit) is None, unit
        assert (await world.call("bob", "GET", f"/flow/{unit}/sharing")).status_code == 404
    assert {"iotBrokerTab", "cli_tab", "cli_cfg"} <= running_ids(rt)
    bob_sees = {n["id"] for n in (await world.call("bob", "GET", "/flows")).json()}
    assert bob_sees & {"iotBrokerTab", "ssapBroker", "cli_tab", "cli_cfg"} == set()
    refused = await world.call(
        "bob",
        "POST",
        "/flows",
        bob_tab(
            {"id": "b_in", "type": "mqtt in", "topic": "x", "qos": "0", "broker": "cli_cfg", "wires": [[]]}
        ),
    )
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
    assert (await world.call("admin", "POST", "/flows/state", {"state": "start"})).json() == {
        "state": "start"
    }


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
