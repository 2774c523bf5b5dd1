"""What a newcomer trips on, in a real Chromium against a real `sofiaflow run`: ontology-insert's idempotency key
is one labelled field with its help (a select for the kind, an input only for a key of your own), the Settings
page names each setting in words with a line of help (no snake_case keys or environment names as labels), and
nodes added from the palette with the keyboard land clear of each other, inside the part of the canvas in view.
Controls are found by role, label or visible text."""

from __future__ import annotations

import json
import re

import pytest
from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from editor_ui import cancel_properties, export_all, import_text, node, node_ids, open_properties

INSERT = "plaininsert00001"
FLOWS = [{"id": INSERT, "type": "ontology-insert", "x": 160, "y": 80, "wires": [[]]}]
RAW_NAME = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)+$|SOFIAFLOW_|^[a-z]+[A-Z]\w*$")
"""A label that is a program's name for a thing: snake_case, an environment variable, camelCase."""


@pytest.fixture(scope="module")
def page(editor_server, chromium):  # noqa: F811
    for opened in editor_page(chromium, editor_server, width=1400, height=850):
        import_text(opened, json.dumps(FLOWS))
        node(opened, INSERT).wait_for()
        yield opened


def test_the_idempotency_key_is_one_labelled_field_with_help(page):
    form = open_properties(page, INSERT)
    try:
        # the default kind (stream) needs no expression: the select itself carries the field's name and help
        kind = form.get_by_role("combobox", name="Idempotency key", exact=True)
        kind.wait_for()
        field = form.locator(
            "label.q-field", has=page.get_by_role("combobox", name="Idempotency key", exact=True)
        )
        assert field.locator(".q-field__label").inner_text().strip() == "Idempotency key"
        assert "msg._streamId" in field.inner_text()
        help_line = form.get_by_text("An insert whose key is already stored", exact=False)
        help_line.wait_for()
        # the long help wraps inside the panel (it does not widen the field past the panel's edge)
        panel = form.locator(".q-scrollarea__container").first.bounding_box()
        for box in (field.bounding_box(), help_line.bounding_box()):
            assert box["x"] + box["width"] <= panel["x"] + panel["width"] + 1, (box, panel)
        assert form.get_by_role("textbox", name="Idempotency key").count() == 0
        text = form.inner_text()
        assert "idempotencyKey" not in text and "\ntype\n" not in f"\n{text}\n", text

        kind.click()
        options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
        assert options == ["msg._streamId", "msg.", "J:", "off"], options
        page.get_by_role("option", name="msg.", exact=True).click()
        value = form.get_by_role("textbox", name="Idempotency key", exact=True)
        value.wait_for()
        # the help sits under the expression now, once
        assert form.get_by_text("An insert whose key is already stored", exact=False).count() == 1
        value.fill("payload.seq")
        form.get_by_test_id("properties-done").click()
        form.wait_for(state="detached")
    finally:
        cancel_properties(page)
    saved = {n["id"]: n for n in export_all(page)}[INSERT]
    assert (saved["idempotencyKey"], saved["idempotencyKeyType"]) == ("payload.seq", "msg")

    form = open_properties(page, INSERT)
    try:
        form.get_by_role("textbox", name="Idempotency key", exact=True).wait_for()
        form.get_by_role("combobox", name="Idempotency key type", exact=True).click()
        page.get_by_role("option", name="off", exact=True).click()
        form.get_by_role("combobox", name="Idempotency key", exact=True).wait_for()
        assert form.get_by_role("textbox", name="Idempotency key").count() == 0
        form.get_by_test_id("properties-done").click()
        form.wait_for(state="detached")
    finally:
        cancel_properties(page)
    saved = {n["id"]: n for n in export_all(page)}[INSERT]
    assert saved["idempotencyKeyType"] == "off"


def test_every_setting_has_a_plain_label_and_a_help_line(chromium, editor_server):  # noqa: F811
    for page in editor_page(chromium, editor_server):
        _settings_are_plain(page, editor_server)


def _settings_are_plain(page, editor_server) -> None:  # noqa: F811
    page.goto(editor_server.editor_url + "/settings")
    table = page.get_by_test_id("settings-table")
    table.locator("tbody tr").first.wait_for()
    rows = table.locator("tbody tr")
    assert rows.count() >= 30
    labels = table.locator("tbody tr [data-role=setting-label]").all_inner_texts()
    helps = table.locator("tbody tr [data-role=setting-help]").all_inner_texts()
    assert len(labels) == len(helps) == rows.count()
    raw = [text for text in labels if RAW_NAME.search(text.strip())]
    assert not raw, f"settings labelled with program names: {raw}"
    assert all(h.strip() for h in helps), helps
    assert len(set(labels)) == len(labels), "two settings share a label"
    password = _row(table, "Administrator password")
    assert "••••••" in password.inner_text()
    assert editor_server.password not in page.content()
    data = _row(table, "Data folder")
    assert str(editor_server.data_dir) in data.inner_text()
    # where a setting comes from is said in its help, not as its name
    assert "SOFIAFLOW_DATA_DIR" in data.inner_text()
    # yes/no, not Python's True/False
    assert _row(table, "Exec nodes may run commands").locator("td").last.inner_text().strip() == "no"
    assert "False" not in table.inner_text()


def _row(table, label: str):
    """The settings table's row of the setting labelled `label`."""
    return table.locator("tbody tr").filter(has=table.page.get_by_text(label, exact=True))


BOXES = """els => els.map(e => { const r = e.getBoundingClientRect();
    return {id: e.dataset.id, l: r.left, t: r.top, r: r.right, b: r.bottom}; })"""


def _overlapping(boxes: list[dict]) -> list[tuple[str, str]]:
    out = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            if a["l"] < b["r"] and b["l"] < a["r"] and a["t"] < b["b"] and b["t"] < a["b"]:
                out.append((a["id"], b["id"]))
    return out


def test_nodes_added_from_the_keyboard_land_clear_of_each_other_and_in_view(page):
    page.wait_for_selector(".sf-canvas")
    before = set(node_ids(page))
    count = len(before)
    for kind in ("inject", "change", "change", "debug", "inject"):
        entry = page.locator(f'.sf-palette-node[data-type="{kind}"]')
        entry.focus()
        page.keyboard.press("Enter")
        page.wait_for_function(
            f"document.querySelectorAll('.sf-canvas .sf-node').length > {len(before)}", timeout=10000
        )
        before = set(node_ids(page))
        # focus stays in the palette; a screen reader hears what happened
        page.get_by_role("status").filter(has_text=f"{kind} node added").wait_for(state="attached")
    boxes = page.eval_on_selector_all(".sf-canvas .sf-node", BOXES)
    assert len(boxes) == count + 5
    assert not _overlapping(boxes), _overlapping(boxes)
    canvas = page.locator(".sf-canvas").bounding_box()
    for box in boxes:
        assert canvas["x"] <= box["l"] and box["r"] <= canvas["x"] + canvas["width"], box
        assert canvas["y"] <= box["t"] and box["b"] <= canvas["y"] + canvas["height"], box

    # panned away (Alt+drag), a new node still lands where the user is looking
    cx, cy = canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2
    page.keyboard.down("Alt")
    page.mouse.move(cx, cy)
    page.mouse.down()
    for step in range(1, 6):
        page.mouse.move(cx - 120 * step, cy - 90 * step)
    page.mouse.up()
    page.keyboard.up("Alt")
    ids = set(node_ids(page))
    page.locator('.sf-palette-node[data-type="debug"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('.sf-canvas .sf-node').length > {len(ids)}")
    added = next(i for i in node_ids(page) if i not in ids)
    box = node(page, added).bounding_box()
    assert canvas["x"] <= box["x"] and box["x"] + box["width"] <= canvas["x"] + canvas["width"], box
    assert canvas["y"] <= box["y"] and box["y"] + box["height"] <= canvas["y"] + canvas["height"], box
    boxes = page.eval_on_selector_all(".sf-canvas .sf-node", BOXES)
    assert not _overlapping(boxes), _overlapping(boxes)


def test_a_new_trigger_shows_its_values_kind_not_the_stored_val(page):
    """Node-RED stores a new trigger's kinds as "val" (guessed when it runs) and its editor shows them as a-z."""
    before = set(node_ids(page))
    page.locator('.sf-palette-node[data-type="trigger"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('.sf-canvas .sf-node').length > {len(before)}")
    added = next(i for i in node_ids(page) if i not in before)
    node(page, added).dblclick()
    form = page.get_by_test_id("properties")
    form.wait_for()
    try:
        for name in ("Send type", "Then send type"):
            kind = form.get_by_role("combobox", name=name, exact=True)
            assert kind.input_value() == "a-z", (name, kind.input_value())
        assert "val" not in form.inner_text().split()
        form.get_by_test_id("properties-done").click()
        form.wait_for(state="detached")
    finally:
        cancel_properties(page)
    saved = {n["id"]: n for n in export_all(page)}[added]
    assert (saved["op1"], saved["op1type"], saved["op2"], saved["op2type"]) == ("1", "str", "0", "str")


def test_split_s_array_chunk_length_is_a_plain_number_field(page):
    """arraySplt has a stored kind beside it (arraySpltType, always "len") but is edited as a number, as in
    Node-RED: no type select offering every kind and a bare "len"."""
    before = set(node_ids(page))
    page.locator('.sf-palette-node[data-type="split"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('.sf-canvas .sf-node').length > {len(before)}")
    added = next(i for i in node_ids(page) if i not in before)
    node(page, added).dblclick()
    form = page.get_by_test_id("properties")
    form.wait_for()
    try:
        length = form.get_by_role("textbox", name="Array: split into chunks of length", exact=True)
        length.fill("3")
        assert form.get_by_role("combobox", name="Array: split into chunks of length type").count() == 0
        assert "len" not in form.inner_text().split()
        form.get_by_test_id("properties-done").click()
        form.wait_for(state="detached")
    finally:
        cancel_properties(page)
    saved = {n["id"]: n for n in export_all(page)}[added]
    assert (str(saved["arraySplt"]), saved["arraySpltType"]) == ("3", "len")


def test_sort_and_split_kinds_read_as_words(page):
    """The kinds only sort and split use are named as Node-RED names them, and the message sequence (no value)
    hides the property input."""
    before = set(node_ids(page))
    page.locator('.sf-palette-node[data-type="sort"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"document.querySelectorAll('.sf-canvas .sf-node').length > {len(before)}")
    added = next(i for i in node_ids(page) if i not in before)
    node(page, added).dblclick()
    form = page.get_by_test_id("properties")
    form.wait_for()
    try:
        # sorting an array in a msg property: by the element's value or a JSONata key (Node-RED's "Key")
        key = form.get_by_role("combobox", name="Array key", exact=True)
        key.wait_for()
        assert key.input_value() == "element's value"
        form.get_by_role("combobox", name="Sort type", exact=True).click()
        options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
        assert options == ["msg.", "message sequence"], options
        page.get_by_role("option", name="message sequence", exact=True).click()
        form.get_by_role("combobox", name="Sort", exact=True).wait_for()
        assert form.get_by_role("textbox", name="Sort", exact=True).count() == 0
        key.wait_for(state="hidden")
    finally:
        cancel_properties(page)


def test_the_ontology_list_says_its_schema_version_and_time_in_words(chromium, editor_server):  # noqa: F811
    for page in editor_page(chromium, editor_server):
        page.goto(editor_server.editor_url + "/ontologies")
        table = page.get_by_test_id("ontology-table")
        table.locator("tbody tr").first.wait_for()
        headers = [h.strip() for h in table.locator("thead th").all_inner_texts()]
        assert "JSON Schema" in headers and "Draft" not in headers, headers
        rows = table.locator("tbody tr")
        for index in range(rows.count()):
            cells = [c.strip() for c in rows.nth(index).locator("td").all_inner_texts()]
            version, updated = cells[headers.index("JSON Schema")], cells[headers.index("Updated")]
            assert version in ("draft-04", "draft-06", "draft-07", "2019-09", "2020-12"), cells
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", updated), cells


def test_a_device_token_says_when_it_was_made_in_words(chromium, editor_server):  # noqa: F811
    status, body = editor_server.api("POST", "/devices", {"name": "plain-meter"})
    assert status == 201, body
    for page in editor_page(chromium, editor_server):
        page.goto(editor_server.editor_url + "/devices")
        made = page.get_by_text(re.compile(r"^created ")).first
        made.wait_for()
        assert re.fullmatch(r"created \d{4}-\d\d-\d\d \d\d:\d\d UTC", made.inner_text().strip()), (
            made.inner_text()
        )
