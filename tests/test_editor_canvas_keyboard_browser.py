"""The flow canvas from the keyboard alone, in a real Chromium against a real `sofiaflow run`: nodes are focusable
groups named by type and label, ports are named; Tab focuses and selects a node, arrow keys move it (Shift: 20 px,
undoable), W then Tab to another node then Enter wires the first one's output to it (Escape cancels), Delete removes
a node, Enter opens its properties."""

from __future__ import annotations

import re

from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from playwright.sync_api import expect

TAB = "kbdtab"
FLOWS = [
    {"id": TAB, "type": "tab", "label": "Keys"},
    {
        "id": "kbdinject0000001",
        "type": "inject",
        "z": TAB,
        "name": "tick",
        "props": [{"p": "payload"}],
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "x": 160,
        "y": 100,
        "wires": [[]],
    },
    {
        "id": "kbdchange0000001",
        "type": "change",
        "z": TAB,
        "name": "spare",
        "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "x", "tot": "str"}],
        "x": 160,
        "y": 220,
        "wires": [[]],
    },
    {"id": "kbddebug00000001", "type": "debug", "z": TAB, "active": True, "x": 420, "y": 100, "wires": []},
]


def node(page, node_id: str):
    return page.locator(f'.sf-node[data-id="{node_id}"]')


def focused_id(page) -> str | None:
    return page.evaluate("document.activeElement && document.activeElement.dataset.id || null")


def test_select_move_wire_and_delete_from_the_keyboard(editor_server, chromium):  # noqa: F811
    assert editor_server.api("POST", "/flows", FLOWS)[0] == 204
    for page in editor_page(chromium, editor_server):
        page.set_default_timeout(30000)  # other tests share the cores: wait long for each answer
        page.locator(f'[data-tab="{TAB}"]').click()
        page.locator('.sf-node[data-id="kbddebug00000001"]').wait_for()
        inject = page.get_by_role("group", name="inject node: tick")
        debug = page.get_by_role("group", name="debug node: msg.payload")
        assert inject.count() == 1 and debug.count() == 1
        assert inject.get_by_role("button", name="output 1 of tick").count() == 1
        assert debug.get_by_role("button", name="input of msg.payload").count() == 1
        assert page.get_by_role("region", name="Flow canvas").count() == 1

        # Tab from the canvas: the first node, focused and selected
        page.locator(".sf-canvas").click(position={"x": 700, "y": 500})
        page.keyboard.press("Tab")
        page.wait_for_function(
            "document.activeElement && document.activeElement.dataset.id === 'kbdinject0000001'"
        )
        page.wait_for_selector('.sf-node.sf-selected[data-id="kbdinject0000001"]')

        # move: Shift+Right twice (40 px), Down once (1 px); then undo puts it back (the server has the moves)
        # (each key once the previous move is shown: keys pressed faster than the server's echo can be
        # undone by a full redraw arriving in between)
        for key, (x, y) in (
            ("Shift+ArrowRight", (180, 100)),
            ("Shift+ArrowRight", (200, 100)),
            ("ArrowDown", (200, 101)),
        ):
            page.keyboard.press(key)
            page.wait_for_function(
                "([x, y]) => { const n = document.querySelector('.sf-node[data-id=\"kbdinject0000001\"]');"
                " return n.dataset.x === x && n.dataset.y === y; }",
                arg=[str(x), str(y)],
            )
        page.keyboard.press("Control+z")
        page.wait_for_function(
            "document.querySelector('.sf-node[data-id=\"kbdinject0000001\"]').dataset.y === '100'"
        )

        # wire: W on the inject node, Tab to the debug node, Enter
        inject.focus()
        page.keyboard.press("w")
        status = page.get_by_role("status")
        expect(status).to_contain_text("tick", timeout=30000)
        expect(status).to_contain_text("output 1", timeout=30000)
        while focused_id(page) != "kbddebug00000001":
            page.keyboard.press("Tab")
            assert focused_id(page) is not None
        page.keyboard.press("Enter")
        page.locator('[data-wire="kbdinject0000001:0:kbddebug00000001"]').wait_for(state="attached")
        expect(status).to_contain_text(re.compile("wired", re.IGNORECASE), timeout=30000)
        # Escape cancels a wiring
        inject.focus()
        page.keyboard.press("w")
        page.keyboard.press("Escape")
        expect(status).to_contain_text(re.compile("cancel", re.IGNORECASE), timeout=30000)

        # delete: focus the change node, Delete
        page.get_by_role("group", name="change node: spare").focus()
        page.keyboard.press("Delete")
        node(page, "kbdchange0000001").wait_for(state="detached")

        # Enter opens the node's properties
        debug.focus()
        page.keyboard.press("Enter")
        page.get_by_role("dialog").wait_for()
