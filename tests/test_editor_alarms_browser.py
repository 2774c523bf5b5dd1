"""The Alarms page in a real Chromium against a real `sofiaflow run`: a flow raises an alarm (inject -> alarm), the
page shows it (severity chip, type, originator, status, count), a new alarm appears without reloading, filters by
status and severity, Acknowledge and Clear (found by their accessible names), and the flow that raised the alarm
hears both (its change node writes the last event to flow context). With SOFIAFLOW_SCREENSHOTS=1 the page is
saved as docs/screenshots/alarms.png."""

from __future__ import annotations

import time

from editor_server import chromium, editor_server, login  # noqa: F401 - pytest fixtures
from editor_ui import screenshot_path

TAB = "tplant"


def inject(node_id: str, device: str, y: int) -> dict:
    return {
        "id": node_id,
        "type": "inject",
        "z": TAB,
        "name": f"{device} overheats",
        "props": [{"p": "payload"}, {"p": "device", "v": device, "vt": "str"}],
        "payload": '{"temp": 97}',
        "payloadType": "json",
        "repeat": "",
        "crontab": "",
        "once": False,
        "topic": "",
        "x": 120,
        "y": y,
        "wires": [["sev"]],
    }


FLOWS = [
    {"id": TAB, "type": "tab", "label": "Plant"},
    inject("boiler", "boiler", 60),
    inject("pump", "pump", 120),
    {
        "id": "raise",
        "type": "alarm",
        "z": TAB,
        "name": "overheat",
        "alarmType": "overheat",
        "severity": "sev",
        "severityType": "msg",
        "details": "payload",
        "x": 330,
        "y": 90,
        "wires": [["remember"]],
    },
    {
        "id": "sev",
        "type": "change",
        "z": TAB,
        "name": "severity by device",
        "rules": [
            {
                "t": "set",
                "p": "sev",
                "pt": "msg",
                "to": "device = 'boiler' ? 'critical' : 'minor'",
                "tot": "jsonata",
            }
        ],
        "x": 120,
        "y": 180,
        "wires": [["raise"]],
    },
    {
        "id": "remember",
        "type": "change",
        "z": TAB,
        "name": "last event",
        "rules": [{"t": "set", "p": "lastEvent", "pt": "flow", "to": "event", "tot": "msg"}],
        "x": 540,
        "y": 90,
        "wires": [],
    },
]


def poll(check, timeout: float = 15.0, every: float = 0.2):
    """The first truthy `check()` within `timeout` seconds (bounded), else AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)


def last_event(server) -> str | None:
    status, body = server.api("GET", f"/context/flow/{TAB}/lastEvent")
    return body.get("msg") if status == 200 and isinstance(body, dict) else None


def row(page, originator: str):
    return page.get_by_test_id("alarm-table").locator("tbody tr", has_text=originator)


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label).click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")
    page.wait_for_selector(".q-menu", state="detached")


def test_alarms_page_shows_acknowledges_and_clears_and_the_flow_hears_it(editor_server, chromium, tmp_path):  # noqa: F811
    status, body = editor_server.api("POST", "/flows", FLOWS)
    assert status == 204, body
    status, body = editor_server.api("POST", "/inject/boiler")
    assert status == 200, body
    poll(lambda: editor_server.api("GET", "/alarms")[1]["total"] == 1)
    context = chromium.new_context(viewport={"width": 1400, "height": 700})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, editor_server, "/alarms")
        boiler = row(page, "boiler")
        boiler.wait_for()
        cells = boiler.locator("td")
        assert [cells.nth(i).inner_text().strip() for i in range(5)] == [
            "critical",
            "overheat",
            "boiler",
            "ACTIVE_UNACK",
            "1",
        ]
        # a new alarm appears without reloading
        assert editor_server.api("POST", "/inject/pump")[0] == 200
        row(page, "pump").wait_for()
        poll(lambda: "2 alarms" in page.get_by_test_id("alarm-summary").inner_text())
        # filter by severity: only the critical one
        choose(page, "Severity", "Critical")
        poll(lambda: row(page, "pump").count() == 0)
        assert row(page, "boiler").count() == 1
        # acknowledge: the status changes and the flow hears it
        page.get_by_role("button", name="Acknowledge overheat of boiler").click()
        poll(lambda: row(page, "ACTIVE_ACK").count() == 1)
        assert page.get_by_role("button", name="Acknowledge overheat of boiler").count() == 0
        assert poll(lambda: last_event(editor_server) == "acknowledged")
        assert row(page, "boiler").locator("td").nth(7).inner_text().strip() == "admin"
        # clear: gone from the active alarms, there among the cleared ones; the flow hears it
        page.get_by_role("button", name="Clear overheat of boiler").click()
        poll(lambda: row(page, "boiler").count() == 0)
        assert poll(lambda: last_event(editor_server) == "cleared")
        choose(page, "Status", "Cleared")
        poll(lambda: row(page, "CLEARED_ACK").count() == 1)
        assert page.get_by_role("button", name="Clear overheat of boiler").count() == 0
        status, alarm = editor_server.api("GET", "/alarms?status=CLEARED")
        assert [(a["originator"], a["ackBy"], a["clearedBy"]) for a in alarm["alarms"]] == [
            ("boiler", "admin", "admin")
        ]
        # back to every alarm for the picture
        choose(page, "Status", "Any status")
        choose(page, "Severity", "Critical")  # chosen again: no severity filter
        poll(lambda: row(page, "boiler").count() == 1 and row(page, "pump").count() == 1)
        picture = screenshot_path("alarms.png", tmp_path)
        page.screenshot(path=str(picture), full_page=True)
        assert picture.stat().st_size > 10_000
    finally:
        context.close()


def test_a_developer_sees_only_their_own_alarms(editor_server, chromium):  # noqa: F811
    assert editor_server.api("POST", "/flows", FLOWS)[0] == 204
    assert editor_server.api("POST", "/inject/boiler")[0] == 200  # the administrator's alarm
    status, body = editor_server.api(
        "POST", "/users", {"username": "dev", "password": "dev-password", "role": "developer"}
    )
    assert status == 201, body
    dev = type(editor_server)(
        url=editor_server.url,
        password="dev-password",
        data_dir=editor_server.data_dir,
        proc=editor_server.proc,
        user="dev",
    )
    meter = {**inject("dinj", "meter-7", 60), "z": "tdev", "wires": [["dalarm"]]}
    dev_tab = [
        {"id": "tdev", "type": "tab", "label": "dev's"},
        meter,
        {
            "id": "dalarm",
            "type": "alarm",
            "z": "tdev",
            "alarmType": "leak",
            "severity": "warning",
            "wires": [[]],
        },
    ]
    assert dev.api("POST", "/flows", dev_tab)[0] == 204
    assert dev.api("POST", "/inject/dinj")[0] == 200
    poll(lambda: dev.api("GET", "/alarms")[1]["total"] == 1)
    context = chromium.new_context(viewport={"width": 1400, "height": 700})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, dev, "/alarms")
        row(page, "meter-7").wait_for()
        assert page.get_by_test_id("alarm-summary").inner_text() == "1 alarm"
        assert row(page, "boiler").count() == 0
        page.get_by_role("button", name="Acknowledge leak of meter-7").click()
        poll(lambda: row(page, "ACTIVE_ACK").count() == 1)
    finally:
        context.close()
    assert (
        editor_server.api("GET", "/alarms?originator=boiler&status=ACTIVE")[1]["alarms"][0]["ackBy"] is None
    )
