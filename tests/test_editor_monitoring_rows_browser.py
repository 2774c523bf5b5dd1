"""The monitoring page in a real Chromium against a real `sofiaflow run`: the errors tile equals the sum of the Errors
column, comment nodes (and tabs, groups; config nodes are never in the snapshot) are not listed, unnamed nodes read
as type + short id. Plus the row rules on a made-up snapshot."""

from __future__ import annotations

import time

from editor_server import chromium, editor_server, login  # noqa: F401 - pytest fixtures

from sofiaflow.editor.pages.monitoring import node_label, node_rows
from sofiaflow.runtime.core.metrics import NodeRow, Snapshot

TAB = "montab"
FLOWS = [
    {"id": TAB, "type": "tab", "label": "Parsing"},
    {
        "id": "notes00000000001",
        "type": "comment",
        "z": TAB,
        "name": "read me",
        "x": 100,
        "y": 20,
        "wires": [],
    },
    {
        "id": "feed000000000001",
        "type": "inject",
        "z": TAB,
        "name": "feed",
        "props": [{"p": "payload"}],
        "payload": "not json {",
        "payloadType": "str",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "x": 100,
        "y": 80,
        "wires": [["9c8d7e6f5a4b3c2d"]],
    },
    {
        "id": "9c8d7e6f5a4b3c2d",
        "type": "json",
        "z": TAB,
        "property": "payload",
        "x": 300,
        "y": 80,
        "wires": [[]],
    },
]


def poll(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_errors_tile_matches_the_rows_and_rows_name_nodes(editor_server, chromium):  # noqa: F811
    assert editor_server.api("POST", "/flows", FLOWS)[0] == 204
    for _ in range(3):
        assert editor_server.api("POST", "/inject/feed000000000001")[0] == 200
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, editor_server, "/monitoring")
        table = page.get_by_test_id("node-table")
        row = table.locator("tbody tr", has_text="json 9c8d7e")
        row.wait_for()
        poll(lambda: row.locator("td").nth(5).inner_text().strip() == "3")
        assert table.locator("tbody tr", has_text="comment").count() == 0
        assert table.locator("tbody tr", has_text="read me").count() == 0
        assert table.locator("tbody tr", has_text="9c8d7e6f5a4b3c2d").count() == 0  # never the bare id

        def both() -> tuple[str, int]:
            column = sum(
                int(t.strip() or 0) for t in table.locator("tbody tr td:nth-child(6)").all_inner_texts()
            )
            return page.get_by_test_id("value-errors").inner_text().replace(",", ""), column

        poll(lambda: both()[0] == str(both()[1]) == "3")
    finally:
        context.close()


def test_rows_leave_out_non_running_types_and_the_tile_sums_them():
    def row(node_id, node_type, name="", errors=0):
        return NodeRow(node_id, node_type, name, "t", 1, 1, errors, 0, None, None, 0, 0.0)

    snap = Snapshot(
        time=0,
        nodes=[
            row("c1aaaaaaaa", "comment", "notes"),
            row("g1aaaaaaaa", "group"),
            row("t1aaaaaaaa", "tab"),
            row("f1bbbbbbbb", "function", errors=2),
            row("d1cccccccc", "debug", "out", errors=1),
        ],
        flows={"t": "T"},
        pending=0,
        run_queue=0,
        messages_total=5,
        errors_total=7,  # the engine's total may count nodes not listed
        brokers=[],
    )
    rows = node_rows(snap)
    assert sorted(r["node"] for r in rows) == ["function f1bbbb", "out"]
    assert sum(r["errors"] for r in rows) == 3
    assert node_label("  ", "change", "0123456789") == "change 012345"
