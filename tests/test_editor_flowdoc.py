"""The editor's flow document: edits, undo/redo, change marks, import id handling, export scopes."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.editor.flowdoc import FlowDoc, parse_flow_json

EXPORT = Path(__file__).parent / "fixtures" / "nodered" / "nodered-export.json"


def _doc() -> FlowDoc:
    flows = [
        {"id": "t1", "type": "tab", "label": "one"},
        {"id": "a", "type": "inject", "z": "t1", "x": 100, "y": 50, "wires": [["b"]]},
        {"id": "b", "type": "debug", "z": "t1", "x": 300, "y": 50, "wires": []},
        {"id": "cfg", "type": "mqtt-broker", "broker": "localhost"},
        {"id": "m", "type": "mqtt in", "z": "t1", "x": 100, "y": 150, "broker": "cfg", "wires": [[]]},
    ]
    return FlowDoc(flows, "rev1")


def test_an_empty_flow_set_gets_one_tab_that_is_not_a_change():
    doc = FlowDoc([], "")
    assert [t["label"] for t in doc.tabs()] == ["Flow 1"]
    assert not doc.is_dirty()


def test_edits_are_marked_as_changes_until_deployed():
    doc = _doc()
    assert not doc.is_dirty()
    doc.move({"a": (120.4, 60.6)})
    assert doc.get("a")["x"] == 120 and doc.get("a")["y"] == 61
    assert doc.changed_ids() == {"a"} and doc.modified_tabs() == {"t1"}
    doc.delete(["b"])
    assert doc.removed_ids() == {"b"} and doc.get("a")["wires"] == [[]]
    doc.mark_deployed("rev2")
    assert not doc.is_dirty() and doc.deployed_rev == "rev2"


def test_add_node_takes_the_type_defaults_and_one_wire_list_per_output():
    doc = _doc()
    node = doc.add_node(
        "switch", "t1", 10.2, 20.7, {"property": "payload", "id": "ignored", "x": 5}, outputs=2
    )
    assert node["type"] == "switch" and node["z"] == "t1" and node["property"] == "payload"
    assert (node["x"], node["y"]) == (10, 21) and node["wires"] == [[], []] and node["id"] != "ignored"
    assert len(node["id"]) == 16


def test_wires_join_nodes_of_one_tab_once():
    doc = _doc()
    assert doc.add_wire("m", 0, "b")
    assert not doc.add_wire("m", 0, "b"), "no duplicate wire"
    assert not doc.add_wire("b", 0, "b"), "no wire to itself"
    assert not doc.add_wire("m", 0, "missing")
    other = doc.add_tab()
    far = doc.add_node("debug", other["id"], 0, 0)
    assert not doc.add_wire("m", 0, far["id"]), "no wire across tabs"
    doc.remove_wires([("m", 0, "b")])
    assert doc.get("m")["wires"] == [[]]


def test_deleting_a_tab_removes_its_nodes_and_keeps_one_tab():
    doc = _doc()
    doc.delete(["t1"])
    assert [n for n in doc.flows if n.get("z") == "t1"] == []
    assert doc.get("cfg") is not None, "config nodes stay"
    assert len(doc.tabs()) == 1


def test_update_resizes_wires_to_the_number_of_outputs():
    doc = _doc()
    doc.update("a", {"name": "tick", "id": "evil", "x": 0}, outputs=3)
    node = doc.get("a")
    assert node["name"] == "tick" and node["id"] == "a" and node["x"] == 100
    assert node["wires"] == [["b"], [], []]
    doc.update("a", {}, outputs=1)
    assert doc.get("a")["wires"] == [["b"]]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["move", "wire", "delete", "add", "tab", "update"]), min_size=1, max_size=12))
def test_undoing_every_edit_restores_the_start_and_redo_replays_them(ops):
    doc = _doc()
    start = copy.deepcopy(doc.flows)
    states = []
    for i, op in enumerate(ops):
        if op == "move":
            doc.move({"a": (i * 10, i * 5)})
        elif op == "wire":
            if not doc.add_wire("a", 0, "m"):
                doc.checkpoint()
        elif op == "delete":
            ids = [n["id"] for n in doc.flows if n.get("type") == "debug"][:1] or ["nothing"]
            if doc.get(ids[0]) is None:
                doc.checkpoint()
            doc.delete(ids)
        elif op == "add":
            doc.add_node("debug", "t1", i, i)
        elif op == "tab":
            doc.add_tab()
        else:
            doc.update("m", {"name": f"n{i}"})
        states.append(copy.deepcopy(doc.flows))
    for _ in ops:
        assert doc.undo()
    assert doc.flows == start
    assert not doc.undo()
    for state in states:
        assert doc.redo()
        assert doc.flows == state


def test_importing_into_an_empty_document_keeps_ids_tabs_and_positions():
    flows = json.loads(EXPORT.read_text())
    doc = FlowDoc([], "")
    added = doc.import_flows(flows, doc.tabs()[0]["id"])
    assert set(added) == {n["id"] for n in flows}
    by_id = doc.by_id()
    for node in flows:
        assert by_id[node["id"]] == node


def test_importing_again_gives_new_ids_and_rewires_to_them():
    doc = _doc()
    copied = doc.export(["a", "b"])
    added = doc.import_flows(copied, "t1", offset=(10, 20))
    assert len(added) == 2 and not set(added) & {"a", "b"}
    new_a = next(doc.get(i) for i in added if doc.get(i)["type"] == "inject")
    new_b = next(i for i in added if doc.get(i)["type"] == "debug")
    assert new_a["wires"] == [[new_b]] and (new_a["x"], new_a["y"]) == (110, 70)
    assert doc.get("a")["wires"] == [["b"]], "the originals are untouched"


def test_importing_into_a_new_tab_and_dropping_wires_to_missing_nodes():
    doc = _doc()
    added = doc.import_flows(
        [
            {"id": "x", "type": "debug", "x": 1, "y": 2, "z": "elsewhere", "wires": []},
            {"id": "y", "type": "inject", "x": 1, "y": 2, "wires": [["x", "gone"]]},
        ],
        "t1",
        new_tab=True,
    )
    tabs = {doc.get(i)["z"] for i in added}
    assert len(tabs) == 1 and tabs != {"t1"} and doc.get(tabs.pop())["type"] == "tab"
    assert doc.get("y")["wires"] == [["x"]]


def test_export_scopes_take_the_config_nodes_they_use():
    doc = _doc()
    assert {n["id"] for n in doc.export(["m"])} == {"m", "cfg"}
    assert {n["id"] for n in doc.export(tab_id="t1")} == {"t1", "a", "b", "m", "cfg"}
    assert doc.export() == doc.flows and doc.export() is not doc.flows


def test_parse_flow_json_accepts_lists_objects_and_v2_and_says_what_is_wrong():
    assert parse_flow_json('{"id": "a", "type": "debug"}') == [{"id": "a", "type": "debug"}]
    assert parse_flow_json('{"flows": [{"id": "a", "type": "debug"}], "rev": "x"}')[0]["id"] == "a"
    for text, message in (
        ("[", "not valid JSON"),
        ('"x"', "expected a JSON array"),
        ('[{"id": "a"}]', "item 0 has no id or type"),
    ):
        try:
            parse_flow_json(text)
        except ValueError as exc:
            assert message in str(exc)
        else:
            raise AssertionError(f"{text!r} was accepted")
