"""The ontology data browser in a real Chromium against a real `sofiaflow run`: instances newest first (by when they
were stored, not by id), their contextData (time, source, user) shown, a row click opens the whole instance as JSON,
and the example filter names a field the ontology has. Plus the example rule on made-up schemas."""

from __future__ import annotations

import json
import time
from urllib.parse import quote

from editor_server import chromium, editor_server, login  # noqa: F401 - pytest fixtures

from sofiaflow.editor.pages.ontology_data import example_filter

SCHEMA = {
    "type": "object",
    "required": ["Meter"],
    "properties": {
        "Meter": {
            "type": "object",
            "properties": {"kwh": {"type": "number"}, "site": {"type": "string"}},
        }
    },
}


def poll(check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.2)


def test_data_newest_first_with_context_and_a_readable_instance(editor_server, chromium):  # noqa: F811
    status, body = editor_server.api("POST", "/ontologies", {"name": "Meter", "schema": SCHEMA})
    assert status == 201, body
    stamps = []
    for kwh in (1.5, 2.5, 3.5):  # stored one after another: each gets a later contextData.timestamp
        before = len(stamps)
        while len(stamps) == before:
            status, body = editor_server.api(
                "POST", "/ontologies/Meter/data", {"Meter": {"kwh": kwh, "site": "s"}}
            )
            assert status == 201, body
            by_id = quote(json.dumps({"_id": body["id"]}))
            doc = editor_server.api("GET", f"/ontologies/Meter/data?filter={by_id}")[1]["items"][0]
            millis = doc["contextData"]["timestampMillis"]
            if stamps and millis <= stamps[-1]:  # the same millisecond: drop it and store again
                editor_server.api("DELETE", f"/ontologies/Meter/data?filter={by_id}")
                continue
            stamps.append(millis)
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, editor_server, "/ontologies/Meter/data")
        status_label = page.get_by_test_id("query-status")
        poll(lambda: status_label.inner_text() == "3 matching")
        assert page.get_by_test_id("query-example").inner_text() == 'e.g. {"Meter.kwh": {"$gt": 0}}'
        rows = page.get_by_test_id("query-results").locator("tbody tr")
        texts = rows.all_inner_texts()
        assert [next(k for k in ("3.5", "2.5", "1.5") if k in t) for t in texts] == ["3.5", "2.5", "1.5"]
        first = [c.strip() for c in rows.first.locator("td").all_inner_texts()]
        assert first[1:3] == ["http", "admin"]
        assert first[0].startswith(time.strftime("%Y-", time.gmtime())) and "T" not in first[0]
        rows.first.click()
        shown = page.get_by_role("dialog").get_by_test_id("instance-json")
        shown.wait_for()
        instance = json.loads(shown.locator("code, pre").first.inner_text())
        assert instance["Meter"]["kwh"] == 3.5
        assert instance["contextData"]["source"] == "http" and instance["contextData"]["user"] == "admin"
        assert instance["contextData"]["timestampMillis"] == stamps[-1]
        page.get_by_role("dialog").get_by_role("button", name="Close").click()
        page.get_by_role("dialog").wait_for(state="hidden")
        # from the keyboard: each row has an Open button
        rows.nth(2).get_by_role("button", name="Open instance").focus()
        page.keyboard.press("Enter")
        shown = page.get_by_role("dialog").get_by_test_id("instance-json")
        shown.wait_for()
        assert json.loads(shown.locator("code, pre").first.inner_text())["Meter"]["kwh"] == 1.5
    finally:
        context.close()


def test_the_example_names_a_field_of_the_schema():
    assert example_filter(SCHEMA) == '{"Meter.kwh": {"$gt": 0}}'
    assert example_filter({"type": "object", "properties": {"assetId": {"type": "string"}}}) == (
        '{"assetId": {"$exists": true}}'
    )
    assert example_filter({"properties": {"on": {"type": "boolean"}}}) == '{"on": true}'
    assert example_filter({"properties": {"mode": {"type": "string", "enum": ["eco", "max"]}}}) == (
        '{"mode": "eco"}'
    )
    assert example_filter({"type": "object"}) == "{}"
    assert example_filter(None) == "{}"
    assert example_filter({"properties": {"a": {"type": "object"}}}) == "{}"
