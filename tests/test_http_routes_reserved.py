"""Flows' HTTP routes may not shadow one another nor the platform: overlaps between routes (checked against
the real matcher with hypothesis) refuse the deploy naming both nodes and a path; non-administrators' flows
may not serve under the platform's prefixes (a real Runtime with users)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.flows.claims import claim_problems
from sofiaflow.runtime.flows.route_overlap import claim_key, shared_path
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.http.node_routes import NodeRoutes, app_prefixes
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "routes"}
FRAGMENTS = ["/", "/", "a", "B", "ab", ":p", ":q?", "*", ":", "-", "x", "\\"]
route_paths = st.lists(st.sampled_from(FRAGMENTS), max_size=7).map(lambda parts: "/" + "".join(parts))
concrete = st.text(alphabet="/aAbBx:-\\", max_size=10).map(lambda s: "/" + s)


async def _never(request, params):  # pragma: no cover - never served
    raise AssertionError


def serves(route: str, path: str) -> bool:
    """Whether the runtime's matcher gives a GET on `path` to a route `route` (alone)."""
    routes = NodeRoutes()
    routes.add_route("get", route, _never, owner="n")
    return routes.find("get", path)[0] is not None


def instance(route: str, fill: list[str]) -> str:
    """`route` with its params and wildcards replaced by `fill` values (cycled)."""
    values = iter(fill * 8 or ["x"] * 8)
    return re.sub(r":\w+\??|\*", lambda m: next(values, "x"), route)


@settings(max_examples=400, deadline=None)
@given(
    route_paths,
    route_paths,
    st.lists(concrete, max_size=6),
    st.lists(st.text(alphabet="aBx:-/", max_size=4), max_size=4),
)
def test_overlap_is_exactly_a_path_both_routes_serve(a, b, samples, fill):
    example = shared_path(claim_key(a), claim_key(b))
    if example is not None:
        assert serves(a, example) and serves(b, example), (a, b, example)
        return
    for path in [*samples, instance(a, fill), instance(b, fill)]:
        assert not (serves(a, path) and serves(b, path)), (a, b, path)


@settings(max_examples=100, deadline=None)
@given(st.lists(route_paths, max_size=8, unique_by=claim_key))
def test_a_flow_set_reports_every_overlapping_pair(paths):
    keys = [claim_key(p) for p in paths]
    claims = {f"http:get:{key}": [f"n{i}"] for i, key in enumerate(keys)}
    found = {
        (p.node_id, p.message.split(" of ")[1].split(":")[0]) for p in claim_problems(claims, lambda h: None)
    }
    expected = {
        (f"n{i}", repr(f"n{j}"))
        for i, a in enumerate(keys)
        for j, b in enumerate(keys)
        if i != j and shared_path(a, b) is not None
    }
    assert found == expected


def test_overlap_examples():
    assert (
        shared_path(
            claim_key("/iot-broker/rest/ontology/X"), claim_key("/iot-broker/rest/ontology/:ontology")
        )
        == "/iot-broker/rest/ontology/x"
    )
    assert shared_path(claim_key("/a/:b"), claim_key("/a/:c/d")) is None
    assert shared_path(claim_key("/user/:id?"), claim_key("/USER/")) is not None
    assert shared_path(claim_key("/files/*"), claim_key("/files/a/b")) == "/files/a/b"
    assert shared_path(claim_key("/a:/b"), claim_key("/a:b")) is None  # a literal colon, and a param
    assert shared_path(claim_key("/x:"), claim_key("/x:y")) == "/x:"  # param y takes the colon


def ssap_rest_in(nid: str, url: str = "/iot-broker/rest") -> dict:
    return {"id": nid, "type": "ssap-rest in", "z": "t1", "url": url, "x": 1, "y": 1, "wires": [[]]}


def http_in(nid: str, url: str, method: str = "get") -> dict:
    return {
        "id": nid,
        "type": "http in",
        "z": "t1",
        "url": url,
        "method": method,
        "x": 1,
        "y": 1,
        "wires": [[]],
    }


async def test_a_static_route_inside_the_iot_brokers_patterns_refuses_the_deploy(registry):
    tester = FlowTester(
        [TAB, ssap_rest_in("broker"), http_in("thief", "/iot-broker/rest/ontology/X")], registry=registry
    )
    tester.engine.services["http"] = NodeRoutes()
    with pytest.raises(FlowValidationError) as info:
        async with tester:
            pass
    problems = [(p.node_id, p.message) for p in info.value.problems]
    assert any(
        nid == "thief" and "'broker'" in msg and "/iot-broker/rest/ontology/x" in msg for nid, msg in problems
    )
    assert any(nid == "broker" and "'thief'" in msg for nid, msg in problems)


async def test_two_patterns_matching_the_same_paths_refuse_the_deploy(registry):
    tester = FlowTester([TAB, http_in("a", "/shop/:item"), http_in("b", "/shop/*", "all")], registry=registry)
    tester.engine.services["http"] = NodeRoutes()
    with pytest.raises(FlowValidationError, match=r"overlaps.*'b'.*both would serve /shop/"):
        async with tester:
            pass
    other_method = FlowTester(
        [TAB, http_in("a", "/shop/:item"), http_in("b", "/shop/*", "post")], registry=registry
    )
    other_method.engine.services["http"] = NodeRoutes()
    async with other_method:
        pass


@pytest.fixture
async def runtime(tmp_path, registry):
    rt = Runtime(
        Settings(data_dir=tmp_path, admin_password="pw", history_interval=0, ontologies_dir=None),
        registry=registry,
    )
    await rt.start()
    auth = AuthService(rt.db, rt.settings)
    auth.ensure_admin()
    auth.add_user("dev", "dev-password", "developer")
    rt.engine.services["http"].reserve(app_prefixes(create_app(rt, auth)))
    yield rt
    await rt.stop()


@pytest.mark.parametrize(
    "url",
    [
        "/iot-broker/rest/client/join",
        "/IOT-BROKER",
        "/:any/rest/ontology/:o",
        "/api-manager/server/api/x",
        "/flows/mine",
        "/auth/token",
        "/*",
    ],
)
async def test_developers_flows_may_not_serve_platform_paths(runtime, url):
    with pytest.raises(FlowValidationError, match="reserves; only flows of administrators"):
        await runtime.deploy([TAB, http_in("h", url)], user="dev")
    await runtime.deploy([TAB, http_in("h", url)], user="admin")  # an administrator's flow may
    assert any(path == url for _m, path, _o in runtime.engine.services["http"].routes())


async def test_developers_may_not_run_an_iot_broker_on_any_path(runtime):
    # an SSAP gateway serves every device of the platform: only administrators' flows hold one
    for path in ("/iot-broker", "/dev/iot"):
        with pytest.raises(FlowValidationError, match="only an administrator's flow may hold it"):
            await runtime.deploy([TAB, ssap_rest_in("b", path)], user="dev")
    await runtime.deploy([TAB, ssap_rest_in("b", "/dev/iot")], user="admin")


async def test_developers_own_paths_are_fine(runtime):
    await runtime.deploy([TAB, http_in("h", "/hello/:name")], user="dev")


def test_the_admin_apis_paths_are_reserved(runtime):
    reserved = runtime.engine.services["http"].reserved
    for prefix in (
        "/flows",
        "/flow",
        "/nodes",
        "/auth",
        "/users",
        "/ontologies",
        "/devices",
        "/settings",
        "/iot-broker",
        "/api-manager",
        "/docs",
        "/openapi.json",
    ):
        assert prefix in reserved, prefix
