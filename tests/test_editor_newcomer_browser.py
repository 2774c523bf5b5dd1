"""What a newcomer sees on a 1280x800 window: the flow menu's entries are menu items (by role), and a type
select whose value needs no input (inject's timestamp, debug's complete msg object) shows its whole label.
A real server, a real Chromium, controls found by role, label or text."""

from __future__ import annotations

import pytest
from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from editor_ui import node

TAB = "newcomertab00001"
FLOWS = [
    {"id": TAB, "type": "tab", "label": "Newcomer"},
    {
        "id": "newcomerinject01",
        "type": "inject",
        "z": TAB,
        "props": [{"p": "payload"}],
        "payloadType": "date",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "x": 140,
        "y": 80,
        "wires": [["newcomerdebug001"]],
    },
    {
        "id": "newcomerdebug001",
        "type": "debug",
        "z": TAB,
        "active": True,
        "complete": "true",
        "targetType": "full",
        "x": 380,
        "y": 80,
        "wires": [],
    },
    {"id": "newcomerwindow01", "type": "window", "z": TAB, "x": 140, "y": 180, "wires": [[]]},
]


@pytest.fixture(scope="module")
def page(editor_server, chromium):  # noqa: F811
    assert editor_server.api("POST", "/flows", FLOWS)[0] == 204
    yield from editor_page(chromium, editor_server, width=1280, height=800)


def _shown_whole(page, label: str) -> None:
    """The select showing `label` is wide enough for it (nothing cut off with an ellipsis)."""
    shown = page.locator(".q-field__native").filter(has_text=label).first
    shown.wait_for()
    widths = shown.evaluate(
        "e => { const s = e.querySelector('span') || e; return [s.scrollWidth, s.clientWidth]; }"
    )
    assert widths[0] <= widths[1], (label, widths)


def test_the_flow_menu_offers_menu_items_by_role(page):
    page.get_by_role("button", name="Flow menu: rename, disable, delete", exact=True).click()
    menu = page.get_by_role("menu")
    menu.wait_for()
    for name in ("Rename", "Disable flow", "Delete"):
        assert menu.get_by_role("menuitem", name=name, exact=True).count() == 1, name
    page.keyboard.press("Escape")
    menu.wait_for(state="hidden")


@pytest.mark.parametrize(
    ("node_id", "label"), [("newcomerinject01", "timestamp"), ("newcomerdebug001", "complete msg object")]
)
def test_a_type_without_a_value_shows_its_whole_label(page, node_id, label):
    node(page, node_id).dblclick()
    dialog = page.get_by_role("button", name="Done", exact=True)
    dialog.wait_for()
    try:
        _shown_whole(page, label)
    finally:
        page.get_by_role("button", name="Cancel", exact=True).click()
        dialog.wait_for(state="hidden")


def test_the_new_ontology_form_labels_are_whole_and_explain_their_format(page, editor_server):  # noqa: F811
    page.goto(editor_server.editor_url + "/ontologies/new")
    window = page.get_by_label("Real-time window (days)", exact=True)
    window.wait_for()
    for label in ("Real-time window (days)", "Indexes", "Unique"):
        shown = page.locator(".q-field__label").filter(has_text=label).first
        widths = shown.evaluate("e => [e.scrollWidth, e.clientWidth]")
        assert widths[0] <= widths[1], (label, widths)
    for hint in ("Empty: kept forever", "Fields, comma-separated"):
        assert page.get_by_text(hint).count() >= 1, hint
    page.goto(editor_server.editor_url + "/")
    page.wait_for_selector(".sf-canvas .sf-node")


OVERLAPS = """() => {
    const boxes = [...document.querySelectorAll('.q-field__control')]
        .map(e => e.getBoundingClientRect());
    const hints = [...document.querySelectorAll('.q-field__bottom')].filter(e => e.innerText.trim());
    const out = [];
    for (const hint of hints) {
        const h = hint.getBoundingClientRect();
        for (const b of boxes) {
            if (h.bottom > b.top + 1 && h.top < b.bottom - 1 && h.right > b.left && h.left < b.right) {
                out.push(hint.innerText.slice(0, 60));
            }
        }
    }
    return out;
}"""


def test_a_long_help_text_under_a_field_does_not_run_into_the_next_field(page):
    node(page, "newcomerwindow01").dblclick()
    page.get_by_role("button", name="Done", exact=True).wait_for()
    try:
        page.get_by_text("What groups events into their own windows").wait_for()
        assert page.evaluate(OVERLAPS) == []
        # the type select beside the key keeps its width when the help text beneath the input is long
        width = page.get_by_label("Key type", exact=True).evaluate("e => e.closest('.q-field').offsetWidth")
        assert width >= 100, width
    finally:
        page.get_by_role("button", name="Cancel", exact=True).click()
        page.get_by_role("button", name="Done", exact=True).wait_for(state="hidden")
