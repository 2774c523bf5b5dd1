"""The partition node's retry pause in its edit form (real Chromium against a real `sofiaflow run`): two labelled
fields with their help, shown while failures are retried, stored as numbers of milliseconds. Controls are found
by role, label or visible text."""

from __future__ import annotations

import json

import pytest
from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from editor_ui import cancel_properties, export_all, import_text, node, open_properties

PART = "backoffpart00001"
FLOWS = [{"id": PART, "type": "partition", "x": 160, "y": 80, "wires": [[]]}]


@pytest.fixture(scope="module")
def page(editor_server, chromium):  # noqa: F811
    for opened in editor_page(chromium, editor_server, width=1400, height=850):
        import_text(opened, json.dumps(FLOWS))
        node(opened, PART).wait_for()
        yield opened


def test_the_retry_pause_fields_are_labelled_with_help_and_follow_the_strategy(page):
    form = open_properties(page, PART)
    try:
        first = form.get_by_label("Retry pause (ms)", exact=True)
        most = form.get_by_label("Longest pause (ms)", exact=True)
        first.wait_for()
        assert first.input_value() == "100" and most.input_value() == "5000"
        form.get_by_text("doubling with each delivery", exact=False).wait_for()
        form.get_by_text("grows to at most this", exact=False).wait_for()
        first.fill("250")
        form.get_by_test_id("properties-done").click()
        form.wait_for(state="detached")
    finally:
        cancel_properties(page)
    saved = {n["id"]: n for n in export_all(page)}[PART]
    assert int(saved["retryDelay"]) == 250 and int(saved["retryDelayMax"]) == 5000

    form = open_properties(page, PART)
    try:
        form.get_by_role("combobox", name="On failure", exact=True).click()
        page.get_by_role("option", name="skip failed messages", exact=True).click()
        form.get_by_label("Retry pause (ms)", exact=True).wait_for(state="hidden")
        assert not form.get_by_label("Longest pause (ms)", exact=True).is_visible()
    finally:
        cancel_properties(page)
