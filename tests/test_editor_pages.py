"""Control-panel pages in a real Chromium against a real `sofiaflow run`: monitoring numbers moving while a flow
runs (and its screenshot for the docs, with SOFIAFLOW_SCREENSHOTS=1), ontologies created and edited with the live sample validator and
their stored data queried, devices registered with a token shown once and revoked, settings with secrets
masked."""

from __future__ import annotations

import json
import re
import time

import pytest
from editor_server import chromium, editor_server, login  # noqa: F401 - pytest fixtures
from editor_ui import screenshot_path

TICKS = [
    {"id": "sensors", "type": "tab", "label": "Sensors"},
    {"id": "alarms", "type": "tab", "label": "Alarms"},
    {
        "id": "tick",
        "type": "inject",
        "z": "sensors",
        "name": "tick",
        "props": [{"p": "payload"}],
        "payload": "21.5",
        "payloadType": "num",
        "repeat": "0.1",
        "crontab": "",
        "once": True,
        "onceDelay": 0.1,
        "topic": "",
        "wires": [["label"]],
    },
    {
        "id": "label",
        "type": "change",
        "z": "sensors",
        "name": "label reading",
        "rules": [{"t": "set", "p": "topic", "pt": "msg", "to": "reading", "tot": "str"}],
        "wires": [["out"]],
    },
    {
        "id": "out",
        "type": "debug",
        "z": "sensors",
        "name": "out",
        "active": False,
        "tosidebar": True,
        "console": False,
        "tostatus": False,
        "complete": "payload",
        "targetType": "msg",
        "wires": [],
    },
    {
        "id": "bad",
        "type": "inject",
        "z": "alarms",
        "name": "bad input",
        "props": [{"p": "payload"}],
        "payload": "not json",
        "payloadType": "str",
        "repeat": "0.5",
        "crontab": "",
        "once": True,
        "onceDelay": 0.1,
        "topic": "",
        "wires": [["parse"]],
    },
    {
        "id": "parse",
        "type": "json",
        "z": "alarms",
        "name": "parse",
        "property": "payload",
        "action": "obj",
        "pretty": False,
        "wires": [[]],
    },
]


def deploy(server, flows: list[dict]) -> None:
    status, body = server.api("POST", "/flows", flows, headers={"Node-RED-Deployment-Type": "full"})
    assert status in (200, 204), body


def insert_flow(readings: list[dict]) -> list[dict]:
    """A tab whose inject nodes store `readings` once through ontology-insert."""
    nodes: list[dict] = [
        {"id": "store", "type": "tab", "label": "Store"},
        {"id": "ins", "type": "ontology-insert", "z": "store", "ontology": "Reading", "wires": [[]]},
    ]
    for i, reading in enumerate(readings):
        nodes.append(
            {
                "id": f"r{i}",
                "type": "inject",
                "z": "store",
                "props": [{"p": "payload"}],
                "payload": json.dumps(reading),
                "payloadType": "json",
                "repeat": "",
                "crontab": "",
                "once": True,
                "onceDelay": 0.1,
                "topic": "",
                "wires": [["ins"]],
            }
        )
    return nodes


def poll(check, timeout: float = 10.0, every: float = 0.2):
    """The first truthy `check()` within `timeout` seconds (bounded), else AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)


def cell(page, table: str, row_text: str, column: int) -> str:
    return (
        page.get_by_test_id(table)
        .locator("tbody tr", has_text=row_text)
        .locator("td")
        .nth(column)
        .inner_text()
    )


def replace_code(page, testid: str, text: str) -> None:
    """Replace the whole text of a CodeMirror editor, as a user pasting would."""
    page.get_by_test_id(testid).locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(text)


@pytest.fixture
def page(chromium, editor_server):  # noqa: F811 - the fixtures above
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    yield context.new_page()
    context.close()


def test_monitoring_numbers_move_after_messages_flow(page, editor_server, tmp_path):  # noqa: F811
    deploy(editor_server, TICKS)
    login(page, editor_server, "/monitoring")
    page.get_by_test_id("node-table").locator("tbody tr", has_text="label reading").wait_for()
    first = int(cell(page, "node-table", "label reading", 3))
    later = poll(lambda: (n := int(cell(page, "node-table", "label reading", 3))) > first + 5 and n)
    assert later > first + 5
    assert cell(page, "node-table", "label reading", 0) == "Sensors"
    assert int(cell(page, "node-table", "label reading", 4)) >= first  # out follows in
    # mean time: a random sixteenth of calm batches is timed, so it may take a moment to appear
    poll(
        lambda: re.fullmatch(r"\d+ µs|\d+\.\d\d ms", cell(page, "node-table", "label reading", 6)), timeout=25
    )
    poll(lambda: int(cell(page, "node-table", "parse", 5)) >= 2)  # errors of the json node
    assert int(page.get_by_test_id("value-handled").inner_text().replace(",", "")) > 0
    assert page.get_by_test_id("value-memory").inner_text().endswith("MB")
    rate = poll(lambda: float(page.get_by_test_id("value-rate").inner_text().replace(",", "") or 0))
    assert 5 <= rate <= 60  # about 10/s in each of change and debug, 2/s in the json node
    names = poll(
        lambda: page.evaluate(
            "id => getElement(id).chart.getOption().series.filter(s => s.data.length > 2).map(s => s.name)",
            int(page.get_by_test_id("flow-chart").get_attribute("id").removeprefix("c")),
        )
    )
    assert {"Sensors", "Alarms"} <= set(names)
    time.sleep(3)  # a few more points on the chart for the picture
    picture = screenshot_path("monitoring.png", tmp_path)
    page.screenshot(path=str(picture), full_page=True)
    assert picture.stat().st_size > 20_000


SCHEMA = {
    "type": "object",
    "required": ["assetId", "measure"],
    "properties": {"assetId": {"type": "string"}, "measure": {"type": "number"}},
}


def test_ontology_create_edit_with_live_validator_and_query(page, editor_server):  # noqa: F811
    login(page, editor_server, "/ontologies")
    page.get_by_test_id("ontology-new").click()
    page.get_by_test_id("ontology-name").wait_for()
    page.get_by_label("Name").fill("Reading")
    page.get_by_label("Description").fill("A sensor reading")
    replace_code(page, "schema-editor", json.dumps(SCHEMA))
    verdict = page.get_by_test_id("sample-verdict")
    replace_code(page, "sample-editor", '{"assetId": 7}')
    poll(lambda: "invalid" in verdict.inner_text())
    problems = page.get_by_test_id("sample-problems").inner_text()
    assert (
        "sample /assetId: 7 is not of type 'string'" in problems
        and "'measure' is a required property" in problems
    )
    replace_code(page, "sample-editor", '{"assetId": "s-1", "measure": 20.5}')
    poll(lambda: verdict.inner_text() == "The sample is valid")
    replace_code(page, "schema-editor", '{"type": "object", "required": 5}')  # not a valid schema
    poll(lambda: "schema:" in page.get_by_test_id("sample-problems").inner_text())
    replace_code(page, "schema-editor", json.dumps(SCHEMA))
    poll(lambda: verdict.inner_text() == "The sample is valid")
    page.get_by_test_id("ontology-save").click()
    page.wait_for_url(re.compile(r"/ontologies/Reading$"))
    status, stored = editor_server.api("GET", "/ontologies/Reading")
    assert status == 200 and stored["schema"] == SCHEMA and stored["description"] == "A sensor reading"
    assert stored["owner"] == "admin"

    # edit: a maximum the sample breaks, seen live, then saved
    bounded = json.loads(json.dumps(SCHEMA))
    bounded["properties"]["measure"]["maximum"] = 100
    page.get_by_test_id("sample-verdict").wait_for()
    replace_code(page, "schema-editor", json.dumps(bounded))
    replace_code(page, "sample-editor", '{"assetId": "s-1", "measure": 150}')
    poll(
        lambda: (
            "150 is greater than the maximum of 100" in page.get_by_test_id("sample-problems").inner_text()
        )
    )
    page.get_by_test_id("ontology-save").click()
    poll(lambda: page.get_by_test_id("ontology-outcome").inner_text() == "Saved Reading")
    assert (
        editor_server.api("GET", "/ontologies/Reading")[1]["schema"]["properties"]["measure"]["maximum"]
        == 100
    )

    # stored data, queried with a MongoDB filter
    deploy(
        editor_server,
        insert_flow(
            [
                {"assetId": "s-1", "measure": 12.0},
                {"assetId": "s-2", "measure": 25.5},
                {"assetId": "s-3", "measure": 31.0},
            ]
        ),
    )
    page.goto(f"{editor_server.editor_url}/ontologies")
    row = (
        page.get_by_test_id("ontology-table")
        .locator("tbody tr")
        .filter(has=page.get_by_role("cell", name="Reading", exact=True))
    )
    row.get_by_role("button", name="Data").click()
    page.wait_for_url(re.compile(r"/ontologies/Reading/data$"))
    status_label = page.get_by_test_id("query-status")

    def stored_all() -> bool:
        page.get_by_test_id("query-run").click()
        return status_label.inner_text() == "3 matching"

    poll(stored_all)
    replace_code(page, "query-filter", '{"measure": {"$gt": 20}}')
    page.get_by_test_id("query-run").click()
    poll(lambda: status_label.inner_text() == "2 matching")
    shown = page.get_by_test_id("query-results").inner_text()
    assert "s-2" in shown and "s-3" in shown and "s-1" not in shown
    assert page.get_by_test_id("query-page").inner_text() == "page 1 of 1"
    replace_code(page, "query-filter", '{"measure": {"$bogus": 1}}')
    page.get_by_test_id("query-run").click()
    poll(lambda: "$bogus" in status_label.inner_text())


def test_device_register_token_shown_once_then_revoked(page, editor_server):  # noqa: F811
    login(page, editor_server, "/devices")
    page.get_by_test_id("device-name").fill("meter-1")
    page.get_by_label("Topic filter 1", exact=True).fill("meters/{device}/#")
    page.get_by_role("button", name="Add ontology right").click()
    page.get_by_label("Ontology 1", exact=True).click()
    page.get_by_role("option", name="Reading", exact=True).click()
    page.get_by_label("Right 1", exact=True).click()
    page.get_by_role("option", name="INSERT", exact=True).click()
    page.get_by_test_id("device-register").click()
    token = page.get_by_test_id("new-token").input_value(timeout=10000)
    status, device = editor_server.api("GET", "/devices/meter-1")
    assert (
        status == 200
        and device["topics"] == ["meters/{device}/#"]
        and device["ontologies"] == {"Reading": "INSERT"}
    )
    [listed] = device["tokens"]
    assert token.startswith(listed["id"] + ".") and len(token.split(".", 1)[1]) >= 40
    page.get_by_test_id("token-done").click()
    page.get_by_test_id("token-dialog").wait_for(state="detached")
    secret = token.split(".", 1)[1]
    assert secret not in page.content()
    page.reload()
    page.get_by_test_id(f"token-{listed['id']}").wait_for()
    assert secret not in page.content()

    page.get_by_test_id(f"revoke-{listed['id']}").click()
    poll(lambda: "revoked" in page.get_by_test_id(f"token-{listed['id']}").inner_text())
    assert editor_server.api("GET", "/devices/meter-1")[1]["tokens"][0]["active"] is False

    page.get_by_test_id("device-name").fill("bad name")
    page.get_by_test_id("device-register").click()
    poll(lambda: "is not a device name" in page.get_by_test_id("device-error").inner_text())


def test_settings_page_masks_secrets(page, editor_server):  # noqa: F811
    login(page, editor_server, "/settings")
    table = page.get_by_test_id("settings-table")

    def row(label: str):  # the row whose setting reads exactly `label`
        return table.locator("tbody tr", has=page.get_by_text(label, exact=True))

    row("Administrator password").wait_for()
    assert "••••••" in row("Administrator password").inner_text()
    assert str(editor_server.data_dir) in row("Data folder").inner_text()
    assert editor_server.password not in page.content()


def test_a_read_only_user_cannot_change_devices_or_ontologies_nor_read_unshared_data(chromium, editor_server):  # noqa: F811
    status, body = editor_server.api(
        "POST", "/users", {"username": "viewer", "password": "viewer-pass-1", "role": "user"}
    )
    assert status == 201, body
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.goto(f"{editor_server.editor_url}/login?redirect_to=/editor/devices")
        page.get_by_label("Username").fill("viewer")
        page.get_by_label("Password").fill("viewer-pass-1")
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("Your role only reads: devices cannot be registered or changed.").wait_for()
        assert not page.get_by_test_id("device-register").is_visible()

        page.goto(
            f"{editor_server.editor_url}/ontologies/EnergyMeter"
        )  # no right on it: as the API, no such one
        page.get_by_test_id("ontology-missing").wait_for()
        assert not page.get_by_test_id("ontology-save").count()
        assert not page.get_by_test_id("ontology-new").count()

        page.goto(f"{editor_server.editor_url}/ontologies/EnergyMeter/data")
        poll(
            lambda: (
                "has no QUERY right on ontology 'EnergyMeter'"
                in page.get_by_test_id("query-status").inner_text()
            )
        )
    finally:
        context.close()
    status, entries = editor_server.api("GET", "/audit?user=viewer&outcome=denied")
    assert status == 200 and any(e["target"] == "EnergyMeter" for e in entries), entries


def test_administrators_manage_users_and_read_the_audit_log(page, editor_server):  # noqa: F811
    login(page, editor_server, "/users")
    page.get_by_test_id("user-name").fill("ops")
    page.get_by_test_id("user-password").fill("ops-pass-1")
    page.get_by_test_id("user-create").click()
    page.get_by_test_id("user-ops").wait_for()
    assert any(
        u["username"] == "ops" and u["role"] == "developer" for u in editor_server.api("GET", "/users")[1]
    )
    page.get_by_test_id("role-ops").click()
    page.get_by_role("option", name="user", exact=True).click()
    poll(
        lambda: any(
            u["username"] == "ops" and u["role"] == "user" for u in editor_server.api("GET", "/users")[1]
        )
    )
    page.get_by_test_id("user-name").fill("ops")
    page.get_by_test_id("user-password").fill("again")
    page.get_by_test_id("user-create").click()
    poll(lambda: "already exists" in page.get_by_test_id("user-error").inner_text())
    page.get_by_test_id("delete-user-admin").click()  # the last administrator stays
    poll(lambda: "last administrator" in page.get_by_test_id("user-error").inner_text())
    page.reload()
    table = page.get_by_test_id("audit-table")
    table.locator("tbody tr", has_text="user.change").wait_for()
    assert "ops" in table.locator("tbody tr", has_text="user.create").first.inner_text()

    # a developer is turned away, and that is recorded
    status, body = editor_server.api(
        "POST", "/users", {"username": "dev2", "password": "dev2-pass-1", "role": "developer"}
    )
    assert status == 201, body
    context = page.context.browser.new_context()
    try:
        other = context.new_page()
        other.goto(f"{editor_server.editor_url}/login?redirect_to=/editor/users")
        other.get_by_label("Username").fill("dev2")
        other.get_by_label("Password").fill("dev2-pass-1")
        other.get_by_role("button", name="Log in").click()
        other.get_by_test_id("users-refused").wait_for()
        assert not other.get_by_test_id("user-create").count()
    finally:
        context.close()
    status, entries = editor_server.api("GET", "/audit?user=dev2&outcome=denied")
    assert any(e["action"] == "open users page" for e in entries), entries
