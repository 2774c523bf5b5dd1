"""API Manager end to end over the admin app (in process, real runtime, real SQLite stores): APIs defined by
`api` / `api-endpoint` nodes over an ontology, called with API keys, quotas, rights of the key's user, OpenAPI
documents, the catalogue and call counters."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from argon2 import PasswordHasher
from openapi_spec_validator import validate

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

SCHEMA = {
    "type": "object",
    "required": ["sensor", "value"],
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}, "zone": {"type": "string"}},
}
BASE = "/api-manager/server/api"


def api_flows(quota: int = 0, state: str = "published") -> list[dict]:
    return [
        {"id": "t", "type": "tab", "label": "apis"},
        {
            "id": "readings",
            "type": "api",
            "name": "readings",
            "version": 1,
            "state": state,
            "description": "Readings by zone",
            "quota": quota,
        },
        {
            "id": "secret",
            "type": "api",
            "name": "secret",
            "version": 2,
            "state": "development",
            "owner": "ana",
            "quota": 2,
        },
        {
            "id": "byZone",
            "type": "api-endpoint",
            "z": "t",
            "api": "readings",
            "method": "GET",
            "path": "/byZone",
            "operation": "query",
            "ontology": "Reading",
            "sort": '{"value": 1}',
            "query": '{"zone": "{$zone}", "value": {"$gte": "{$min}"}}',
            "parameters": [
                {"name": "zone", "in": "query", "type": "string", "required": True},
                {"name": "min", "in": "query", "type": "number"},
            ],
            "wires": [],
        },
        {
            "id": "mine",
            "type": "api-endpoint",
            "z": "t",
            "api": "readings",
            "method": "GET",
            "path": "/mine",
            "operation": "query",
            "ontology": "Reading",
            "query": '{"contextData.user": "$context.userId"}',
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
            "parameters": [{"name": "id", "in": "path", "type": "string"}],
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
            "parameters": [{"name": "id", "in": "path", "type": "string"}],
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
            "parameters": [{"name": "id", "in": "path", "type": "string"}],
            "wires": [],
        },
        {
            "id": "hello",
            "type": "api-endpoint",
            "z": "t",
            "api": "readings",
            "method": "GET",
            "path": "/hello/{n}",
            "operation": "flow",
            "parameters": [
                {"name": "n", "in": "path", "type": "integer"},
                {"name": "X-Who", "in": "header", "type": "string"},
            ],
            "wires": [["answer"]],
        },
        {
            "id": "answer",
            "type": "change",
            "z": "t",
            "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "api", "tot": "msg"}],
            "wires": [["res"]],
        },
        {"id": "res", "type": "http response", "z": "t", "statusCode": "", "headers": {}, "wires": []},
        {
            "id": "ping",
            "type": "api-endpoint",
            "z": "t",
            "api": "secret",
            "method": "GET",
            "path": "/ping",
            "operation": "query",
            "ontology": "Reading",
            "wires": [],
        },
    ]


async def _token(http: httpx.AsyncClient, user: str, password: str) -> str:
    answer = await http.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": user,
            "password": password,
        },
    )
    return answer.json()["access_token"]


@pytest.fixture
async def env(tmp_path, registry):
    rt = Runtime(
        Settings(
            data_dir=tmp_path,
            admin_password="pw",
            history_interval=0,
            ontologies_dir=None,
            default_flows=None,
            mqtt_port=0,
        ),
        registry=registry,
    )
    await rt.start()
    auth = AuthService(rt.db, rt.settings)
    auth._hasher = PasswordHasher(
        time_cost=1, memory_cost=1024, parallelism=1
    )  # quick hashes keep tests fast
    auth.ensure_admin()
    auth.add_user("bob", "bob-pw", "user")
    auth.add_user("ana", "ana-pw", "developer")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(rt, auth)), base_url="http://t"
    ) as http:
        tokens = {
            u: await _token(http, u, p) for u, p in (("admin", "pw"), ("bob", "bob-pw"), ("ana", "ana-pw"))
        }
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        created = await http.post("/ontologies", json={"name": "Reading", "schema": SCHEMA}, headers=admin)
        assert created.status_code == 201, created.text
        keys = {}
        for user, token in tokens.items():
            made = await http.post(
                "/api-keys", json={"label": "tests"}, headers={"Authorization": f"Bearer {token}"}
            )
            assert made.status_code == 201, made.text
            keys[user] = made.json()["key"]
        rt.engine.services["permissions"].grant("Reading", "ana", "QUERY", by="admin")
        await rt.deploy(api_flows())
        yield rt, http, tokens, keys
    await rt.stop()


def _key(key: str) -> dict[str, str]:
    return {"X-OP-APIKey": key}


async def test_insert_query_by_parameter_and_get_by_id(env):
    rt, http, _tokens, keys = env
    rows = [{"sensor": f"s{i}", "value": i, "zone": "north" if i % 2 else "south"} for i in range(10)]
    ids = []
    for row in rows:
        answer = await http.post(f"{BASE}/v1/readings/", json=row, headers=_key(keys["admin"]))
        assert answer.status_code == 201, answer.text
        ids.append(answer.json()["id"])
    page = await http.get(
        f"{BASE}/v1/readings/byZone",
        params={"zone": "north", "min": "4", "limit": "2"},
        headers=_key(keys["admin"]),
    )
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["total"] == 3 and body["limit"] == 2 and body["offset"] == 0  # 5, 7, 9
    assert [item["sensor"] for item in body["items"]] == ["s5", "s7"]
    rest = (
        await http.get(
            f"{BASE}/v1/readings/byZone",
            params={"zone": "north", "min": "4", "offset": "2"},
            headers=_key(keys["admin"]),
        )
    ).json()
    assert [item["sensor"] for item in rest["items"]] == ["s9"] and rest["total"] == 3
    everything = (
        await http.get(f"{BASE}/v1/readings/byZone", params={"zone": "south"}, headers=_key(keys["admin"]))
    ).json()
    assert everything["total"] == 5  # the optional min left out drops its condition
    one = await http.get(f"{BASE}/v1/readings/{ids[3]}", headers={"X-SOFIA2-APIKey": keys["admin"]})
    assert one.status_code == 200 and one.json()["sensor"] == "s3" and one.json()["_id"] == ids[3]
    assert one.json()["contextData"]["user"] == "admin" and one.json()["contextData"]["source"] == "http"
    missing = await http.get(f"{BASE}/v1/readings/nope", headers=_key(keys["admin"]))
    assert missing.status_code == 404 and "nope" in missing.json()["message"]

    changed = await http.put(
        f"{BASE}/v1/readings/{ids[3]}", json={"sensor": "s3", "value": 33}, headers=_key(keys["admin"])
    )
    assert changed.json() == {"matched": 1}
    assert (await http.get(f"{BASE}/v1/readings/{ids[3]}", headers=_key(keys["admin"]))).json()["value"] == 33
    gone = await http.delete(f"{BASE}/v1/readings/{ids[3]}", headers=_key(keys["admin"]))
    assert gone.json() == {"deleted": 1}
    assert (await http.get(f"{BASE}/v1/readings/{ids[3]}", headers=_key(keys["admin"]))).status_code == 404
    batch = await http.post(
        f"{BASE}/v1/readings/",
        json=[{"sensor": "b", "value": 1}, {"sensor": "c", "value": 2}],
        headers=_key(keys["admin"]),
    )
    assert batch.status_code == 201 and len(batch.json()["ids"]) == 2
    assert rt.engine.services["ontology-data"].count("Reading", {}) == 11


async def test_missing_or_wrong_key_is_401_and_revoked_keys_stop_working(env):
    _rt, http, tokens, keys = env
    url = f"{BASE}/v1/readings/byZone?zone=north"
    missing = await http.get(url)
    assert missing.status_code == 401 and "X-OP-APIKey" in missing.json()["message"]
    assert (await http.get(url, headers=_key("sfk_wrong"))).status_code == 401
    assert (
        await http.get(url, headers=_key(keys["bob"]))
    ).status_code == 403  # a valid key, no QUERY right yet
    bob = {"Authorization": f"Bearer {tokens['bob']}"}
    listed = (await http.get("/api-keys", headers=bob)).json()
    assert len(listed) == 1 and "key" not in listed[0] and listed[0]["user"] == "bob"
    others = await http.get("/api-keys", params={"all": "true"}, headers=bob)
    assert others.status_code == 403
    assert (await http.delete(f"/api-keys/{listed[0]['id']}", headers=bob)).status_code == 204
    assert (await http.get(url, headers=_key(keys["bob"]))).status_code == 401
    assert (await http.delete(f"/api-keys/{listed[0]['id']}", headers=bob)).status_code == 404


async def test_operations_act_with_the_rights_of_the_keys_user(env):
    rt, http, _tokens, keys = env
    refused = await http.post(
        f"{BASE}/v1/readings/", json={"sensor": "x", "value": 1}, headers=_key(keys["bob"])
    )
    assert refused.status_code == 403 and "INSERT" in refused.json()["message"]
    audit = rt.audit.entries(user="bob", outcome="denied")
    assert audit and audit[0]["action"] == "api.call" and "/v1/readings/" in audit[0]["target"]
    rt.engine.services["permissions"].grant("Reading", "bob", "QUERY", by="admin")
    assert (await http.get(f"{BASE}/v1/readings/byZone?zone=a", headers=_key(keys["bob"]))).status_code == 200
    assert (
        await http.post(f"{BASE}/v1/readings/", json={"sensor": "x", "value": 1}, headers=_key(keys["bob"]))
    ).status_code == 403
    rt.engine.services["permissions"].grant("Reading", "bob", "ALL", by="admin")
    stored = await http.post(
        f"{BASE}/v1/readings/", json={"sensor": "x", "value": 1}, headers=_key(keys["bob"])
    )
    assert stored.status_code == 201
    mine = (await http.get(f"{BASE}/v1/readings/mine", headers=_key(keys["bob"]))).json()
    assert mine["total"] == 1 and mine["items"][0]["contextData"]["user"] == "bob"  # $context.userId
    assert (await http.get(f"{BASE}/v1/readings/mine", headers=_key(keys["ana"]))).json()["total"] == 0


async def test_parameters_are_typed_and_values_never_become_operators(env):
    _rt, http, _tokens, keys = env
    await http.post(
        f"{BASE}/v1/readings/", json={"sensor": "a", "value": 1, "zone": "z"}, headers=_key(keys["admin"])
    )
    url = f"{BASE}/v1/readings/byZone"
    hdr = _key(keys["admin"])
    for zone in ('{"$gt": ""}', '{"$ne": null}', "z' || '1'=='1", '{"$where": "1"}'):
        answer = await http.get(url, params={"zone": zone}, headers=hdr)
        assert answer.status_code == 200 and answer.json()["total"] == 0, (zone, answer.text)
    bad_min = await http.get(url, params={"zone": "z", "min": '{"$gt": ""}'}, headers=hdr)
    assert bad_min.status_code == 400 and "'min'" in bad_min.json()["message"]
    assert (await http.get(url, headers=hdr)).status_code == 400  # zone is required
    assert (await http.get(url, params=[("zone", "a"), ("zone", "b")], headers=hdr)).status_code == 400
    for limit in ("0", "1001", "-1", "x"):
        assert (await http.get(url, params={"zone": "z", "limit": limit}, headers=hdr)).status_code == 400
    hello = await http.get(f"{BASE}/v1/readings/hello/x", headers=hdr)
    assert hello.status_code == 400 and "integer" in hello.json()["message"]
    assert (await http.post(f"{BASE}/v1/readings/byZone", headers=hdr)).status_code == 405


async def test_flow_operation_answers_through_http_response(env):
    _rt, http, _tokens, keys = env
    answer = await http.get(f"{BASE}/v1/readings/hello/42", headers={**_key(keys["ana"]), "X-Who": "me"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "name": "readings",
        "version": 1,
        "user": "ana",
        "key": answer.json()["key"],
        "params": {"n": 42, "X-Who": "me"},
    }


async def test_quota_is_429_with_retry_after_and_development_apis_are_for_owner_and_admins(env):
    rt, http, _tokens, keys = env
    url = f"{BASE}/v2/secret/ping"
    assert (await http.get(url, headers=_key(keys["bob"]))).status_code == 403  # in development, not his
    assert any(e["action"] == "api.call" for e in rt.audit.entries(user="bob", outcome="denied"))
    assert [(await http.get(url, headers=_key(keys["ana"]))).status_code for _ in range(2)] == [200, 200]
    over = await http.get(url, headers=_key(keys["ana"]))
    assert over.status_code == 429 and 0 < int(over.headers["retry-after"]) <= 60
    assert (await http.get(url, headers=_key(keys["admin"]))).status_code == 200  # quotas are per key
    stats = {(s["api"], s["user"]): s for s in rt.engine.services["api-manager"].stats()}
    assert stats[("secret", "ana")]["calls"] == 3 and stats[("secret", "ana")]["status"] == {
        "200": 2,
        "429": 1,
    }
    assert stats[("secret", "bob")]["status"] == {"403": 1}
    admin = {"Authorization": f"Bearer {_tokens['admin']}"}
    over_http = (await http.get("/api-manager/stats", headers=admin)).json()
    assert {"api": "secret", "version": 2, "user": "ana", "calls": 3}.items() <= {
        k: v for s in over_http if s["user"] == "ana" and s["api"] == "secret" for k, v in s.items()
    }.items()
    assert (
        await http.get("/api-manager/stats", headers={"Authorization": f"Bearer {_tokens['bob']}"})
    ).status_code == 403


async def test_deprecated_apis_answer_with_a_deprecation_header(env):
    rt, http, _tokens, keys = env
    await rt.deploy(api_flows(state="deprecated"))
    answer = await http.get(f"{BASE}/v1/readings/byZone?zone=a", headers=_key(keys["admin"]))
    assert answer.status_code == 200 and answer.headers["deprecation"] == "true"
    doc = (await http.get(f"{BASE}/v1/readings/openapi.json")).json()
    assert doc["paths"]["/byZone"]["get"]["deprecated"] is True


async def test_openapi_documents_validate_and_the_catalogue_lists_what_a_caller_may_see(env):
    _rt, http, tokens, _keys = env
    doc = await http.get(f"{BASE}/v1/readings/openapi.json")
    assert doc.status_code == 200
    validate(doc.json())
    spec = doc.json()
    assert spec["servers"] == [{"url": f"{BASE}/v1/readings"}]
    assert spec["components"]["securitySchemes"]["X-OP-APIKey"]["name"] == "X-OP-APIKey"
    by_zone = spec["paths"]["/byZone"]["get"]
    assert {p["name"]: p["required"] for p in by_zone["parameters"]} == {
        "zone": True,
        "min": False,
        "limit": False,
        "offset": False,
    }
    assert set(spec["paths"]["/{id}"]) == {"get", "put", "delete"}
    assert (await http.get(f"{BASE}/v2/secret/openapi.json")).status_code == 404  # development, anonymous
    ana = {"Authorization": f"Bearer {tokens['ana']}"}
    secret = await http.get(f"{BASE}/v2/secret/openapi.json", headers=ana)
    assert secret.status_code == 200
    validate(secret.json())
    public = (await http.get("/api-manager/catalog")).json()
    assert [(a["name"], a["version"], a["state"]) for a in public] == [("readings", 1, "published")]
    assert public[0]["openapi"] == f"{BASE}/v1/readings/openapi.json"
    assert len(public[0]["operations"]) == 7
    mine = (await http.get("/api-manager/catalog", headers=ana)).json()
    assert [a["name"] for a in mine] == ["readings", "secret"]
    page = await http.get("/api-manager/swagger")
    assert (
        page.status_code == 200
        and f"{BASE}/v1/readings/openapi.json" in page.text
        and "secret" not in page.text
    )
    assert (await http.get("/api-manager/swagger/static/swagger-ui-bundle.js")).status_code == 200


BAD_ENDPOINTS = [
    ({"parameters": [{"name": "zone", "in": "query", "type": "date"}]}, "'type'"),
    ({"query": '{"zone": "{$nope}"}'}, "{$nope}"),
    ({"query": '{"$where": "this.zone == \'{$zone}\'"}'}, "$where"),
    ({"query": '{"{$zone}": 1}'}, "field names"),
    ({"query": "{not json"}, "not JSON"),
    ({"ontology": "Nope"}, "Nope"),
    ({"path": "byZone"}, "'path'"),
    ({"path": "/{zone}/x"}, "path parameters"),
    ({"method": "TRACE"}, "'method'"),
    ({"operation": "getById", "path": "/x"}, "{id}"),
    ({"parameters": [{"name": "limit", "in": "query"}], "query": ""}, "reserved"),
]


async def test_bad_endpoint_configuration_refuses_the_deploy(env):
    rt, *_ = env
    for change, message in BAD_ENDPOINTS:
        flows = api_flows()
        node = next(n for n in flows if n["id"] == "byZone")
        node.update(change)
        with pytest.raises(FlowValidationError) as err:
            await rt.deploy(flows)
        assert message in str(err.value), (change, str(err.value))


async def test_clashes_and_bad_api_config(env):
    rt, *_ = env
    flows = api_flows()
    flows.append({**next(n for n in flows if n["id"] == "byZone"), "id": "again"})
    with pytest.raises(FlowValidationError):
        await rt.deploy(flows)  # same API, method and path twice
    for change in ({"state": "gone"}, {"version": 0}, {"name": "a b"}, {"quota": -1}):
        flows = api_flows()
        flows[1].update(change)
        with pytest.raises(FlowValidationError):
            await rt.deploy(flows)
    assert json.dumps(rt.flows)  # the running flows were left as they were
    assert rt.engine.services["api-manager"].find("readings", 1) is not None


async def test_a_flow_that_does_not_answer_gives_504_and_a_redeploy_503(env):
    rt, http, _tokens, keys = env
    flows = api_flows()
    flows.append(
        {
            "id": "silent",
            "type": "api-endpoint",
            "z": "t",
            "api": "readings",
            "method": "GET",
            "path": "/silent",
            "operation": "flow",
            "wires": [[]],
        }
    )
    await rt.deploy(flows)
    rt.engine.services["api-manager"].response_timeout = 0.3
    answer = await http.get(f"{BASE}/v1/readings/silent", headers=_key(keys["admin"]))
    assert answer.status_code == 504 and "0.3" in answer.json()["message"]
    rt.engine.services["api-manager"].response_timeout = 30
    waiting = asyncio.ensure_future(http.get(f"{BASE}/v1/readings/silent", headers=_key(keys["admin"])))
    await asyncio.sleep(0.2)
    await rt.deploy(api_flows())  # the silent operation goes away while the call waits
    answer = await asyncio.wait_for(waiting, 10)
    assert answer.status_code == 503 and answer.json()["code"] == "stopping"
    assert (await http.get(f"{BASE}/v1/readings/silent", headers=_key(keys["admin"]))).status_code == 404


async def test_an_endpoint_naming_no_api_is_reported_when_it_starts(env):
    rt, http, _tokens, keys = env
    flows = api_flows()
    flows.append(
        {
            "id": "orphan",
            "type": "api-endpoint",
            "z": "t",
            "api": "missing",
            "method": "GET",
            "path": "/orphan",
            "operation": "query",
            "ontology": "Reading",
            "wires": [],
        }
    )
    await rt.deploy(flows)
    node = rt.engine.nodes["orphan"]
    assert node.last_status.get("fill") == "red"
    assert (await http.get(f"{BASE}/v1/readings/orphan", headers=_key(keys["admin"]))).status_code == 404
