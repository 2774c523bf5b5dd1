"""Import as Node-RED does it: identical config nodes reused, only real references remapped."""

from __future__ import annotations

import copy
import functools
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.editor.flowdoc import FlowDoc
from sofiaflow.editor.import_remap import (
    config_users,
    only_used_by,
    reference_properties,
    remap_import,
)
from sofiaflow.editor.palette import palette_types
from sofiaflow.runtime.flows.registry import default_registry


@functools.cache
def _types() -> dict[str, dict]:
    return palette_types(default_registry())


@pytest.fixture(scope="module")
def types() -> dict[str, dict]:
    return _types()


def _api_flow() -> list[dict]:
    return [
        {"id": "t1", "type": "tab", "label": "api"},
        {"id": "tls1", "type": "tls-config", "name": "certs", "verifyservercert": True},
        {
            "id": "brk",
            "type": "mqtt-broker",
            "name": "local",
            "broker": "127.0.0.1",
            "port": 1883,
            "tls": "tls1",
        },
        {"id": "api1", "type": "api", "name": "brk", "version": 1, "description": "t1"},
        {
            "id": "ep",
            "type": "api-endpoint",
            "z": "t1",
            "x": 100,
            "y": 40,
            "name": "api1",
            "api": "api1",
            "path": "/brk",
            "wires": [],
        },
        {
            "id": "in",
            "type": "mqtt in",
            "z": "t1",
            "x": 100,
            "y": 100,
            "broker": "brk",
            "topic": "ep",
            "wires": [[]],
        },
    ]


def _counter():
    counter = itertools.count()
    return lambda: f"new{next(counter):013d}"


def test_reference_properties_come_from_the_type_and_its_model(types):
    assert reference_properties("api-endpoint", types) == {"api": ("api",)}
    assert reference_properties("mqtt in", types) == {"broker": ("mqtt-broker",)}
    assert "broker" not in reference_properties("mqtt-broker", types), "the broker's host name is text"
    assert reference_properties("mqtt-broker", types) == {"tls": ("tls-config",)}
    assert reference_properties("tcp in", types) == {"tls": ("tls-config",)}, "tcp in's server is a mode"
    marked = {"type": "string", "x-config": "pool"}
    schema_marked = {"thing": {"schema": {"properties": {"conn": marked, "name": {"type": "string"}}}}}
    assert reference_properties("thing", schema_marked) == {"conn": ("pool",)}


def test_reimporting_an_export_reuses_the_identical_config_nodes(types):
    doc = FlowDoc(_api_flow(), "r", types)
    exported = doc.export(tab_id="t1")
    assert {n["id"] for n in exported} == {"t1", "tls1", "brk", "api1", "ep", "in"}
    doc.delete(["t1"])
    added = doc.import_flows(exported, doc.tabs()[0]["id"])
    assert [n["type"] for n in doc.flows].count("api") == 1
    assert [n["type"] for n in doc.flows].count("mqtt-broker") == 1
    assert [n["type"] for n in doc.flows].count("tls-config") == 1
    assert not {"tls1", "brk", "api1"} & set(added)
    assert doc.get("ep")["api"] == "api1" and doc.get("in")["broker"] == "brk"


def test_a_copy_in_the_same_document_reuses_configs_and_keeps_text_equal_to_ids(types):
    doc = FlowDoc(_api_flow(), "r", types)
    added = doc.import_flows(doc.export(["ep", "in"]), "t1")
    new = {doc.get(i)["type"]: doc.get(i) for i in added}
    assert set(new) == {"api-endpoint", "mqtt in"}, "configs were reused, not copied"
    assert new["api-endpoint"]["api"] == "api1" and new["mqtt in"]["broker"] == "brk"
    assert new["api-endpoint"]["name"] == "api1" and new["api-endpoint"]["path"] == "/brk"
    assert new["mqtt in"]["topic"] == "ep"


def test_a_different_config_node_with_a_taken_id_gets_a_new_one_and_its_users_follow(types):
    existing = {n["id"]: n for n in _api_flow()}
    items = copy.deepcopy(_api_flow())
    items[3]["version"] = 2  # api1 differs now
    added, remap = remap_import(items, existing, "t9", _counter(), types)
    by_type = {n["type"]: n for n in added}
    assert remap["api1"] != "api1" and by_type["api"]["id"] == remap["api1"]
    assert by_type["api"]["name"] == "brk", "a text equal to an id stays"
    assert by_type["api-endpoint"]["api"] == remap["api1"]
    assert by_type["api-endpoint"]["name"] == "api1", "the endpoint's name equal to the old id stays"
    assert "mqtt-broker" not in by_type and by_type["mqtt in"]["broker"] == "brk"


def test_a_config_naming_a_changed_config_is_not_identical_any_more(types):
    existing = {n["id"]: n for n in _api_flow()}
    items = copy.deepcopy(_api_flow())
    items[1]["verifyservercert"] = False
    added, remap = remap_import(items, existing, "t9", _counter(), types)
    by_type = {n["type"]: n for n in added}
    assert by_type["mqtt-broker"]["tls"] == remap["tls1"] != "tls1"
    assert by_type["mqtt in"]["broker"] == remap["brk"] != "brk"


def test_an_identical_config_under_another_id_is_reused(types):
    existing = {n["id"]: n for n in _api_flow()}
    items = [
        {"id": "other-tls", "type": "tls-config", "name": "certs", "verifyservercert": True},
        {"id": "x", "type": "http request", "z": "zz", "x": 1, "y": 2, "tls": "other-tls", "wires": [[]]},
    ]
    added, remap = remap_import(items, existing, "t1", _counter(), types)
    assert [n["id"] for n in added] == ["x"] and added[0]["tls"] == "tls1" and added[0]["z"] == "t1"


def test_structural_references_follow_new_ids(types):
    existing = {
        n["id"]: n
        for n in [
            {"id": "t1", "type": "tab"},
            {"id": "lo", "type": "link out", "z": "t1", "x": 1, "y": 1, "links": ["li"], "wires": []},
            {"id": "li", "type": "link in", "z": "t1", "x": 1, "y": 1, "links": ["lo"], "wires": [[]]},
            {"id": "g1", "type": "group", "z": "t1", "nodes": ["lo"], "x": 0, "y": 0},
            {"id": "sf", "type": "subflow", "name": "s", "in": [{"wires": [{"id": "c"}]}], "out": []},
        ]
    }
    items = [copy.deepcopy(n) for n in existing.values()] + [
        {"id": "c", "type": "catch", "z": "sf", "x": 1, "y": 1, "scope": ["lo", "nowhere"], "wires": [[]]},
        {"id": "inst", "type": "subflow:sf", "z": "t1", "x": 1, "y": 1, "g": "g1", "wires": []},
    ]
    added, remap = remap_import(items, existing, "t1", _counter(), types)
    new = {n["type"]: n for n in added}
    assert new["link out"]["links"] == [remap["li"]] and new["link in"]["links"] == [remap["lo"]]
    assert new["group"]["nodes"] == [remap["lo"]] and new["group"]["z"] == remap["t1"]
    assert new["subflow"]["in"][0]["wires"] == [{"id": "c"}], "c's id was free"
    assert new["catch"]["scope"] == [remap["lo"]] and new["catch"]["z"] == remap["sf"]
    inst = new[f"subflow:{remap['sf']}"]
    assert inst["g"] == remap["g1"] and inst["z"] == remap["t1"]


def test_config_users_and_the_configs_only_a_tab_uses(types):
    flows = _api_flow() + [
        {"id": "t2", "type": "tab"},
        {"id": "other", "type": "mqtt out", "z": "t2", "x": 1, "y": 1, "broker": "brk", "wires": []},
        {"id": "lonely", "type": "api", "name": "spare"},
    ]
    users = config_users(flows, types)
    assert [u["id"] for u in users["brk"]] == ["in", "other"]
    assert [u["id"] for u in users["tls1"]] == ["brk"] and users["lonely"] == []
    doc = FlowDoc(flows, "r", types)
    assert [c["id"] for c in doc.configs_only_used_by(["t1"])] == ["api1"]
    assert {c["id"] for c in doc.configs_only_used_by(["t1", "t2"])} == {"api1", "brk", "tls1"}
    assert only_used_by(flows, {"ep"}, types) == [flows[3]]


_ID = st.sampled_from(["t1", "tls1", "brk", "api1", "ep", "in"])
_TEXT_KEYS = st.sampled_from(["name", "topic", "path", "description", "info", "label", "payload"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 5), _TEXT_KEYS, st.one_of(_ID, st.text(max_size=8))), max_size=12),
    st.booleans(),
    st.booleans(),
)
def test_import_never_changes_a_string_that_is_not_a_reference(changes, differ, keep_original):
    types = _types()
    flows = _api_flow()
    items = copy.deepcopy(flows)
    for index, key, value in changes:
        items[index][key] = value
    if differ:
        items[3]["version"] = 7
    existing = {n["id"]: n for n in (flows if keep_original else [flows[0]])}
    added, remap = remap_import(items, existing, "t1", _counter(), types)
    originals = {remap[n["id"]]: n for n in items}
    for node in added:
        before = originals[node["id"]]
        refs = set(reference_properties(node["type"], types)) | {"id", "z", "wires"}
        for key, value in before.items():
            if key not in refs:
                assert node[key] == value, (key, value, node)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.lists(st.tuples(st.integers(0, 5), _TEXT_KEYS, _ID), max_size=6))
def test_importing_an_export_again_and_again_adds_no_config_node_and_every_reference_resolves(times, texts):
    types = _types()
    flows = _api_flow()
    for index, key, value in texts:
        flows[index][key] = value
    doc = FlowDoc(flows, "r", types)
    configs = sorted(n["id"] for n in doc.config_nodes())
    exported = doc.export(tab_id="t1")
    for _ in range(times):
        doc.import_flows(exported, "t1")
    assert sorted(n["id"] for n in doc.config_nodes()) == configs
    by_id = doc.by_id()
    assert len(by_id) == len(doc.flows), "ids stay unique"
    for node in doc.flows:
        for key, targets in reference_properties(node["type"], types).items():
            if node.get(key):
                assert by_id[node[key]]["type"] in targets
        for port in node.get("wires", []):
            assert all(t in by_id and by_id[t]["z"] == node["z"] for t in port)
