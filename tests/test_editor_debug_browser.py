"""The debug sidebar in a real Chromium against a real `sofiaflow run`: an object message opens collapsed (a tree, one
level per click, as Node-RED's), its source reads the node's name or type + short id (never "node: debug"), a click
on the source reveals the node on the canvas, and a plain value shows as text. Unit checks of the labels and tree."""

from __future__ import annotations

import time

from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.editor.debug_sidebar import json_tree, preview, source_label

TAB = "dbgtab"
FLOWS = [
    {"id": TAB, "type": "tab", "label": "Debugging"},
    {
        "id": "objinject0000001",
        "type": "inject",
        "z": TAB,
        "name": "object",
        "props": [{"p": "payload"}],
        "payload": '{"temp": 21.5, "tags": ["a", "b"], "where": {"room": "lab"}}',
        "payloadType": "json",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "x": 120,
        "y": 60,
        "wires": [["a1b2c3d4e5f60718"]],
    },
    {
        "id": "a1b2c3d4e5f60718",
        "type": "debug",
        "z": TAB,
        "active": True,
        "complete": "payload",
        "targetType": "msg",
        "x": 360,
        "y": 60,
        "wires": [],
    },
    {
        "id": "txtinject0000001",
        "type": "inject",
        "z": TAB,
        "props": [{"p": "payload"}],
        "payload": "plain words",
        "payloadType": "str",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "x": 120,
        "y": 160,
        "wires": [["nameddebug000001"]],
    },
    {
        "id": "nameddebug000001",
        "type": "debug",
        "z": TAB,
        "name": "words out",
        "active": True,
        "complete": "payload",
        "targetType": "msg",
        "x": 360,
        "y": 160,
        "wires": [],
    },
]


def wait_until(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def test_debug_messages_open_collapsed_and_name_their_source(editor_server, chromium):  # noqa: F811
    assert editor_server.api("POST", "/flows", FLOWS)[0] == 204
    for page in editor_page(chromium, editor_server):
        page.get_by_text("Debugging", exact=True).first.click()
        assert editor_server.api("POST", "/inject/objinject0000001")[0] == 200
        messages = page.get_by_test_id("debug-message")
        messages.first.wait_for()
        first = messages.first
        source = first.get_by_role("button", name="Show node debug a1b2c3")
        assert source.inner_text().strip() == "debug a1b2c3"
        assert "node: debug" not in first.inner_text()
        # collapsed: the root row only
        tree = first.get_by_test_id("debug-expand")
        assert tree.get_by_text("msg: object").is_visible()
        assert not tree.get_by_text("temp: 21.5").is_visible()
        tree.locator(".q-tree__arrow").first.click()
        tree.get_by_text("temp: 21.5").wait_for()
        assert tree.get_by_text("tags: array[2]").is_visible()
        assert tree.get_by_text("where: object").is_visible()
        assert not tree.get_by_text('room: "lab"').is_visible()  # one level per click
        # the source reveals the node
        source.click()
        page.locator('.sf-node.sf-highlight[data-id="a1b2c3d4e5f60718"]').wait_for()

        assert editor_server.api("POST", "/inject/txtinject0000001")[0] == 200
        wait_until(lambda m=messages: m.count() == 2)
        second = messages.nth(1)
        assert second.get_by_role("button", name="Show node words out").is_visible()
        assert "plain words" in second.inner_text()
        assert page.get_by_role("button", name="Clear debug messages").count() == 1


def test_source_label_name_or_type_and_short_id():
    assert source_label({"type": "debug", "name": "out"}, "a1b2c3d4e5f60718") == "out"
    assert source_label({"type": "debug", "name": "  "}, "a1b2c3d4e5f60718") == "debug a1b2c3"
    assert source_label({}, "a1b2c3d4e5f60718") == "node a1b2c3"
    assert source_label({}, "", "debug") == "debug"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=30,
)


@given(json_values)
def test_the_tree_has_one_row_per_key_and_collapsed_previews(value):
    def count(v):
        if isinstance(v, dict):
            return 1 + sum(count(x) for x in v.values())
        if isinstance(v, list):
            return 1 + sum(count(x) for x in v)
        return 1

    def rows(nodes):
        return sum(1 + rows(n.get("children", [])) for n in nodes)

    tree = json_tree(value)
    assert rows(tree) == count(value)
    assert all(len(preview(v)) <= 60 for v in ([value] if not isinstance(value, (dict, list)) else []))
    assert json_tree({"a": list(range(10))}, limit=5)[0]["children"][0]["children"][-1]["label"].startswith(
        "…"
    )
