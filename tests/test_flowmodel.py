"""Flow JSON: validation reports every problem at once; import then export gives the same JSON."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.flows.model import errors_only, load, parse_json, validate
from sofiaflow.runtime.flows.store import revision_of

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "nodered"


def _problems(flows, registry):
    return validate(load(flows, registry), registry)


def test_every_problem_is_reported_at_once(registry):
    flows = [
        {"id": "t1", "type": "tab", "label": "x"},
        {"id": "a", "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [["missing"]]},
        {"id": "a", "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[]]},
        {"id": "b", "type": "junction", "z": "nowhere", "x": 1, "y": 1, "wires": [[]]},
        {"id": "c", "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[], ["a"]]},
        {"id": "d", "type": "link call", "z": "t1", "x": 1, "y": 1, "wires": [[]], "timeout": "soon"},
        {"id": "e", "type": "no such type", "z": "t1", "x": 1, "y": 1, "wires": []},
    ]
    problems = _problems(flows, registry)
    text = "\n".join(str(p) for p in problems)
    errors = errors_only(problems)
    assert "duplicate id" in text
    assert "wired to missing node 'missing'" in text
    assert "missing tab or subflow 'nowhere'" in text
    assert "wired from output 2, but the node has 1 output(s)" in text
    assert "node 'd' (link call) field 'timeout'" in text
    assert {p.node_id for p in errors} >= {"a", "b", "c", "d"}
    not_runnable = [p for p in problems if p.severity == "not-runnable"]
    assert [p.node_id for p in not_runnable] == ["e"]


def test_not_json_is_a_format_error():
    import pytest

    from sofiaflow.runtime.errors import FlowFormatError

    with pytest.raises(FlowFormatError, match="line 1"):
        parse_json("[{")
    with pytest.raises(FlowFormatError, match="expected a JSON array"):
        parse_json('{"a": 1}')


def test_nodered_export_has_only_not_runnable_problems(registry):
    flows = parse_json((FIXTURES / "nodered-export.json").read_text())
    problems = _problems(flows, registry)
    assert errors_only(problems) == []
    flagged = {p.node_id for p in problems if p.severity == "not-runnable"}
    js_functions = {n["id"] for n in flows if n["type"] == "function"}
    assert js_functions and not (js_functions & flagged)  # JavaScript functions run here


def test_revision_matches_node_red():
    # the rev Node-RED answered for the fixture's flows (GET /flows v2)
    data = json.loads((FIXTURES / "get-flows-v2.json").read_text())
    assert revision_of(data["flows"]) == data["rev"]


# ----- round trip -----------------------------------------------------------------------------------
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_extra_props = st.dictionaries(
    st.text(min_size=1, max_size=8).filter(
        # not the properties the generated types' configs define (a comment's `info` must be a string)
        lambda k: k not in ("id", "type", "z", "wires", "x", "y", "d", "g", "credentials", "name", "info")
    ),
    _json,
    max_size=4,
)


@st.composite
def flow_sets(draw):
    n_tabs = draw(st.integers(1, 3))
    tabs = [
        {"id": f"tab{i}", "type": "tab", "label": draw(st.text(max_size=10)), **draw(_extra_props)}
        for i in range(n_tabs)
    ]
    nodes = []
    n_nodes = draw(st.integers(0, 12))
    for i in range(n_nodes):
        z = f"tab{draw(st.integers(0, n_tabs - 1))}"
        nodes.append(
            {
                "id": f"n{i}",
                "type": draw(st.sampled_from(["junction", "comment", "some contrib node"])),
                "z": z,
                "x": draw(st.integers(0, 2000)),
                "y": draw(st.integers(0, 2000)),
                "wires": [[]],
                **draw(_extra_props),
            }
        )
    for node in nodes:  # wire to nodes on the same tab only
        peers = [m["id"] for m in nodes if m["z"] == node["z"] and m["id"] != node["id"]]
        if node["type"] == "junction" and peers:
            node["wires"] = [draw(st.lists(st.sampled_from(peers), max_size=3, unique=True))]
        elif node["type"] == "comment":
            node["wires"] = []
    configs = [
        {"id": f"c{i}", "type": "mystery-config", **draw(_extra_props)}
        for i in range(draw(st.integers(0, 2)))
    ]
    items = tabs + nodes + configs
    return draw(st.permutations(items))


@settings(max_examples=60, deadline=None)
@given(flow_sets())
def test_import_then_export_returns_the_same_json(flows):
    import asyncio

    from sofiaflow.runtime.testing import FlowTester

    async def roundtrip():
        async with FlowTester(flows) as t:
            return t.deployer.flows, t.deployer.rev

    exported, rev = asyncio.run(roundtrip())
    assert json.dumps(exported) == json.dumps(flows)
    assert rev == revision_of(flows)


def test_revision_of_text_with_a_lone_surrogate_hashes_like_node():
    import hashlib

    flows = [{"id": "a", "type": "comment", "info": "x\ud800y"}]
    expected = hashlib.sha256('[{"id":"a","type":"comment","info":"x\ufffdy"}]'.encode()).hexdigest()
    assert revision_of(flows) == expected


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=12))
def test_a_stored_revision_reads_back_the_same_flows_under_the_same_rev(text):
    from sofiaflow.runtime.data import config_db
    from sofiaflow.runtime.flows.store import FlowStore

    store = FlowStore(config_db.connect("sqlite://"))
    flows = [{"id": "a", "type": "comment", "info": text, "name": "ü"}]
    rev = store.save(flows, "full")
    loaded, stored_rev = store.current()[:2]
    assert stored_rev == rev == revision_of(flows)
    assert loaded == flows  # lone surrogates included (stored escaped)


def test_two_nodes_claiming_one_resource_refuse_the_deploy(registry):
    from sofiaflow.runtime.api import Node, NodeConfig

    class RouteConfig(NodeConfig):
        url: str = "/"

    class Route(Node):
        type = "test route"
        Config = RouteConfig

        @classmethod
        def claims(cls, config):
            return [f"http:get:{config.url}"]

    registry.register(Route, "tests")
    flows = [
        {"id": "t1", "type": "tab"},
        {"id": "t2", "type": "tab", "disabled": True},
        {"id": "a", "type": "test route", "z": "t1", "x": 1, "y": 1, "url": "/x", "wires": [[]]},
        {"id": "b", "type": "test route", "z": "t1", "x": 1, "y": 1, "url": "/x", "wires": [[]]},
        {"id": "c", "type": "test route", "z": "t1", "x": 1, "y": 1, "url": "/x", "d": True, "wires": [[]]},
        {"id": "d", "type": "test route", "z": "t2", "x": 1, "y": 1, "url": "/x", "wires": [[]]},
        {"id": "e", "type": "test route", "z": "t1", "x": 1, "y": 1, "url": "/y", "wires": [[]]},
    ]
    problems = errors_only(_problems(flows, registry))
    assert sorted((p.node_id, p.message) for p in problems) == [
        ("a", "http:get:/x is also claimed by 'b'"),
        ("b", "http:get:/x is also claimed by 'a'"),
    ]
