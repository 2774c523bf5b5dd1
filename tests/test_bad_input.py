"""Bad input to the API Manager and the admin API: malformed JSON, wrong types, oversized bodies and injection
strings in parameters and filters. Every answer is a 4xx with a message (never a 500), and the stored data (ontology
instances, flows, users, devices, ontologies, API keys) is unchanged.

A real runtime with real SQLite stores runs in process; requests go through the whole ASGI app (httpx's ASGI
transport, which returns 500 answers instead of raising, so a 500 is seen as a client sees it)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.flows.registry import default_registry
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

SCHEMA = {
    "type": "object",
    "required": ["sensor", "value"],
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}, "zone": {"type": "string"}},
}
API = "/api-manager/server/api/v1/readings"
FLOWS = [
    {"id": "t", "type": "tab", "label": "apis"},
    {"id": "readings", "type": "api", "name": "readings", "version": 1, "state": "published"},
    {
        "id": "byZone",
        "type": "api-endpoint",
        "z": "t",
        "api": "readings",
        "method": "GET",
        "path": "/byZone",
        "operation": "query",
        "ontology": "Reading",
        "query": '{"zone": "{$zone}", "value": {"$gte": "{$min}"}}',
        "parameters": [
            {"name": "zone", "in": "query", "type": "string", "required": True},
            {"name": "min", "in": "query", "type": "number"},
            {"name": "strict", "in": "query", "type": "boolean"},
        ],
        "wires": [],
    },
    {
        "id": "search",
        "type": "api-endpoint",
        "z": "t",
        "api": "readings",
        "method": "POST",
        "path": "/search",
        "operation": "query",
        "ontology": "Reading",
        "query": '{"zone": "{$zone}", "value": {"$gte": "{$min}"}}',
        "parameters": [
            {"name": "zone", "in": "body", "type": "string", "required": True},
            {"name": "min", "in": "body", "type": "number"},
        ],
        "wires": [],
    },
    {
        "id": "byId",
        "type": "api-endpoint",
        "z": "t",
        "api": "readings",
        "method": "GET",
        "path": "/{id}",
        "operation": "getById",
        "ontology": "Reading",
        "parameters": [{"name": "id", "in": "path"}],
        "wires": [],
    },
    {
        "id": "add",
        "type": "api-endpoint",
        "z": "t",
        "api": "readings",
        "method": "POST",
        "path": "/",
        "operation": "insert",
        "ontology": "Reading",
        "wires": [],
    },
    {
        "id": "put",
        "type": "api-endpoint",
        "z": "t",
        "api": "readings",
        "method": "PUT",
        "path": "/{id}",
        "operation": "update",
        "ontology": "Reading",
        "parameters": [{"name": "id", "in": "path"}],
        "wires": [],
    },
    {
        "id": "del",
        "type": "api-endpoint",
        "z": "t",
        "api": "readings",
        "method": "DELETE",
        "path": "/{id}",
        "operation": "delete",
        "ontology": "Reading",
        "parameters": [{"name": "id", "in": "path"}],
        "wires": [],
    },
]


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    runtime: Runtime
    auth: AuthService
    http: httpx.AsyncClient
    key: str

    def send(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"X-OP-APIKey": self.key, **(headers or {})}
        if body is not None:
            sent["Content-Type"] = content_type
        return self.loop.run_until_complete(self.http.request(method, path, content=body, headers=sent))

    def snapshot(self) -> str:
        services = self.runtime.engine.services
        return json.dumps(
            {
                "data": sorted(services["ontology-data"].find("Reading", {}), key=lambda d: d["_id"]),
                "rev": self.runtime.rev,
                "users": self.auth.users(),
                "devices": [d.as_dict() for d in services["devices"].list()],
                "ontologies": [o.as_dict() for o in services["ontologies"].list()],
                "keys": services["api-manager"].keys.list(),
            },
            sort_keys=True,
            default=str,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    loop = asyncio.new_event_loop()
    rt = Runtime(
        Settings(
            data_dir=tmp_path_factory.mktemp("bad-input"),
            admin_password="pw",
            history_interval=0,
            ontologies_dir=None,
            default_flows=None,
            mqtt_port=0,
        ),
        registry=default_registry(),
    )
    loop.run_until_complete(rt.start())
    auth = AuthService(rt.db, rt.settings)
    auth._hasher = PasswordHasher(
        time_cost=1, memory_cost=1024, parallelism=1
    )  # quick hashes keep tests fast
    auth.ensure_admin()
    auth.add_user("bob", "bob-password", "user")
    transport = httpx.ASGITransport(app=create_app(rt, auth), raise_app_exceptions=False)
    http = httpx.AsyncClient(transport=transport, base_url="http://t")

    async def prepare() -> str:
        token = (
            await http.post(
                "/auth/token",
                data={
                    "client_id": "node-red-admin",
                    "grant_type": "password",
                    "scope": "*",
                    "username": "admin",
                    "password": "pw",
                },
            )
        ).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        assert (await http.post("/ontologies", json={"name": "Reading", "schema": SCHEMA})).status_code == 201
        for i in range(3):
            assert (
                await http.post("/ontologies/Reading/data", json={"sensor": f"s{i}", "value": i, "zone": "z"})
            ).status_code == 201
        assert (
            await http.post("/devices", json={"name": "dev1", "ontologies": {"Reading": "INSERT"}})
        ).status_code == 201
        assert (await http.post("/flows", json=FLOWS)).status_code in (200, 204)
        return (await http.post("/api-keys", json={"label": "bad input"})).json()["key"]

    key = loop.run_until_complete(prepare())
    yield World(loop, rt, auth, http, key)
    loop.run_until_complete(http.aclose())
    loop.run_until_complete(rt.stop())
    loop.close()


def assert_refused(answer: httpx.Response, what: Any) -> None:
    assert 400 <= answer.status_code < 500, (what, answer.status_code, answer.text[:300])
    body = answer.json()
    assert isinstance(body.get("message"), str) and body["message"], (what, body)


# ----- what is sent ------------------------------------------------------------------------------------------------
BODY_ENDPOINTS = [
    ("POST", "/flows"),
    ("POST", "/ontologies"),
    ("PUT", "/ontologies/Reading"),
    ("POST", "/ontologies/Reading/data"),
    ("PATCH", "/ontologies/Reading/data"),
    ("POST", "/devices"),
    ("PATCH", "/devices/dev1"),
    ("POST", "/users"),
    ("PATCH", "/users/bob"),
    ("POST", "/api-keys"),
    ("POST", f"{API}/"),
    ("PUT", f"{API}/some-id"),
    ("POST", f"{API}/search"),
]


def _not_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return True
    return False


malformed_json = st.one_of(
    st.binary(min_size=1, max_size=60).filter(_not_json),
    st.text(min_size=1, max_size=60).map(str.encode).filter(_not_json),
    st.sampled_from(
        [
            b"{",
            b'{"sensor":',
            b"[1,",
            b'{"a" 1}',
            b"NaN",
            b'{"value": NaN}',
            b'{"value": -Infinity}',
            b"\xff\xfe{}",
            b'{"a": "\xc3"}',
            b"[" * 5000,
            b'{"a":' * 3000,
            b"{'a': 1}",
            b'{"a": 1,}',
            b"[" * 70 + b"]" * 70,
            b'{"sensor": "a", "value": 1, "x": ' + b"[" * 100 + b"]" * 100 + b"}",
        ]
    ),
)

not_string = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
not_number = st.one_of(
    st.text(max_size=8), st.booleans(), st.none(), st.lists(st.integers(), max_size=2), st.just({"$gt": ""})
)
not_object = st.one_of(st.integers(), st.text(max_size=8), st.booleans(), st.lists(st.integers(), max_size=2))
not_list = st.one_of(
    st.integers(),
    st.text(max_size=8),
    st.booleans(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

# (method, path, a valid body, {field: strategy of wrong values}); one field at a time goes wrong
WRONG_TYPES = [
    (
        "POST",
        "/users",
        {"username": "eve", "password": "eve-password", "role": "user"},
        {"username": not_string, "password": not_string, "role": st.one_of(not_string, st.just("root"))},
    ),
    (
        "PATCH",
        "/users/bob",
        {"role": "developer"},
        {"role": st.one_of(not_string, st.just("god")).filter(lambda v: v is not None)},
    ),  # null: unchanged
    (
        "POST",
        "/ontologies",
        {"name": "Other", "schema": SCHEMA},
        {"name": st.one_of(not_string, st.just("bad name"), st.just("$where")), "schema": not_object},
    ),
    (
        "POST",
        "/ontologies/Reading/data",
        {"sensor": "new", "value": 1},
        {"sensor": not_string, "value": not_number, "zone": not_string},
    ),
    (
        "PATCH",
        "/ontologies/Reading/data",
        {"filter": {"sensor": "s0"}, "update": {"$set": {"value": 5}}},
        {
            "filter": not_object,
            "update": st.one_of(
                not_object,
                st.just({"$where": "1"}),
                st.just({"$rename": {}}),
                st.just({"$set": {"_id": "x"}}),
            ),
        },
    ),
    (
        "POST",
        "/devices",
        {"name": "dev2", "ontologies": {"Reading": "QUERY"}},
        {
            "name": st.one_of(not_string, st.just("../x")),
            "ontologies": not_object,
            "topics": not_list,
            "enabled": not_string.filter(lambda v: not isinstance(v, bool)),
        },
    ),
    (
        "PATCH",
        "/devices/dev1",
        {"enabled": True},
        {
            "enabled": not_string.filter(
                lambda v: not isinstance(v, bool) and v is not None
            ),  # null: unchanged
            "topics": not_list.filter(lambda v: v is not None),
        },
    ),
    (
        "POST",
        "/flows",
        [{"id": "t2", "type": "tab"}, {"id": "n", "type": "inject", "z": "t2", "wires": [[]]}],
        {"wires": st.one_of(not_list, st.just([[5]]), st.just([["nowhere"]])), "type": not_string},
    ),
    (
        "POST",
        "/api-keys",
        {"label": "x"},
        {"label": st.one_of(not_string, st.text(min_size=201, max_size=210))},
    ),
    (
        "POST",
        f"{API}/",
        {"sensor": "new", "value": 1},
        {"sensor": not_string, "value": not_number, "_id": st.just({"$gt": ""}), "contextData": st.just({})},
    ),
    ("PUT", f"{API}/some-id", {"sensor": "s0", "value": 1}, {"sensor": not_string, "value": not_number}),
    (
        "POST",
        f"{API}/search",
        {"zone": "z"},
        {"zone": not_string, "min": not_number.filter(lambda v: v is not None)},
    ),  # null: not given
]

injections = st.one_of(
    st.sampled_from(
        [
            '{"$where": "sleep(1000)"}',
            '{"$function": {"body": "return 1", "args": [], "lang": "js"}}',
            '{"sensor": {"$where": "1"}}',
            '{"$expr": {"$eq": [1, 1]}}',
            '{"sensor": {"$function": 1}}',
            '{"$accumulator": {}}',
            '{"sensor": {"$regex": "("}}',
            '{"sensor": {"$gt": ""}, "$or": 5}',
            '{"$or": []}',
            '{"a.": 1}',
            '{"": 1}',
            "not json",
            "[1]",
            '"text"',
            "5",
            "null x",
            '{"x": ' + "[" * 20 + "]" * 20 + "}",
        ]
    ),
    st.text(min_size=1, max_size=30).filter(lambda t: _not_json(t.encode()) or not t.strip().startswith("{")),
)

injection_values = st.one_of(
    st.sampled_from(
        [
            '{"$gt": ""}',
            '{"$ne": null}',
            '{"$where": "1"}',
            "' || '1'=='1",
            '"; DROP TABLE x; --',
            "$context.userId",
            "{$zone}",
            "%00",
            "../../etc/passwd",
            "\u0000",
            '{"$regex": ".*"}',
        ]
    ),
    st.text(max_size=40),
)

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


# ----- the properties --------------------------------------------------------------------------------------------
@SETTINGS
@given(endpoint=st.sampled_from(BODY_ENDPOINTS), body=malformed_json)
def test_malformed_json_is_refused_and_changes_nothing(world, endpoint, body):
    before = world.snapshot()
    assert_refused(world.send(*endpoint, body=body), (endpoint, body[:80]))
    assert world.snapshot() == before


@SETTINGS
@given(case=st.sampled_from(WRONG_TYPES), data=st.data())
def test_wrong_types_are_refused_and_change_nothing(world, case, data):
    method, path, valid, wrong = case
    field = data.draw(st.sampled_from(sorted(wrong)))
    value = data.draw(wrong[field])
    if isinstance(valid, list):  # a flow set: the wrong value goes into its node
        body: Any = [dict(valid[0]), {**valid[1], field: value}]
    else:
        body = {**valid, field: value}
    before = world.snapshot()
    assert_refused(world.send(method, path, body=json.dumps(body).encode()), (method, path, body))
    assert world.snapshot() == before


@SETTINGS
@given(
    flt=injections,
    method=st.sampled_from(["GET", "DELETE"]),
    param=st.sampled_from(["filter", "sort", "projection"]),
)
def test_injection_in_admin_filters_is_refused(world, flt, method, param):
    if method == "DELETE":
        param = "filter"
    before = world.snapshot()
    answer = world.send(method, f"/ontologies/Reading/data?{param}={quote(flt)}")
    if param != "filter" and not _not_json(flt.encode()) and isinstance(json.loads(flt), list):
        assert answer.status_code in (200, 400), answer.text  # a list is a valid sort or projection shape
    else:
        assert_refused(answer, (method, param, flt))
    assert world.snapshot() == before


@SETTINGS
@given(value=injection_values, where=st.sampled_from(["zone", "min", "strict", "id", "path-name"]))
def test_injection_in_api_parameters_never_widens_a_query(world, value, where):
    before = world.snapshot()
    if where == "zone":  # a string parameter: compared as the string it is, so nothing matches
        answer = world.send("GET", f"{API}/byZone?zone={quote(value)}")
        assert answer.status_code == 200 and answer.json()["total"] == (3 if value == "z" else 0), answer.text
    elif where in ("min", "strict"):  # typed parameters refuse what is not their type
        answer = world.send("GET", f"{API}/byZone?zone=z&{where}={quote(value)}")
        if answer.status_code == 200:
            assert answer.json()["total"] <= 3
        else:
            assert_refused(answer, (where, value))
    elif where == "id":
        answer = world.send("GET", f"{API}/{quote(value, safe='')}")
        assert answer.status_code in (400, 404, 405), answer.text  # 405: an empty id is the insert path
        assert_refused(answer, value)
    elif value.lower() not in ("reading", "bob", "dev1", ""):  # real names; "" is another route (the list)
        for path in (
            f"/ontologies/{quote(value, safe='')}/data",
            f"/users/{quote(value, safe='')}",
            f"/devices/{quote(value, safe='')}",
        ):
            answer = world.send("DELETE", path + ("?filter={}" if "ontologies" in path else ""))
            assert_refused(answer, (path, value))
    assert world.snapshot() == before


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_oversized_bodies_are_413_and_change_nothing(world, method, path):
    before = world.snapshot()
    huge = json.dumps(
        {"sensor": "x" * (6 * 1024 * 1024), "value": 1, "name": "Huge", "username": "huge"}
    ).encode()
    assert_refused(world.send(method, path, body=huge), path)
    assert world.send(method, path, body=huge).status_code == 413
    if path.startswith(API):  # API calls take at most 1 MiB
        big = json.dumps({"sensor": "x" * (1024 * 1024 + 10), "value": 1}).encode()
        assert world.send(method, path, body=big).status_code == 413
    assert world.snapshot() == before


def test_a_body_of_the_wrong_media_type_is_415_for_ontology_operations(world):
    before = world.snapshot()
    answer = world.send(
        "POST", f"{API}/", body=b"sensor=a&value=1", content_type="application/x-www-form-urlencoded"
    )
    assert answer.status_code == 415 and "application/json" in answer.json()["message"]
    assert world.snapshot() == before
