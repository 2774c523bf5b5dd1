"""The device form in a real Chromium against a real `sofiaflow run`: topic filters as rows (added, removed), ontology
rights chosen with two dropdowns (the ontology, READ/INSERT/ALL), a half-filled right row refused with a message
naming it. Plus the rights rule on its own."""

from __future__ import annotations

import pytest
from editor_server import chromium, editor_server, login  # noqa: F401 - pytest fixtures

from sofiaflow.editor.pages.devices import rights_of

SCHEMA = {"type": "object", "properties": {"v": {"type": "number"}}}


def choose(page, label: str, option: str) -> None:
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_device_topics_as_rows_and_rights_from_dropdowns(editor_server, chromium):  # noqa: F811
    for name in ("Water", "Power"):
        assert editor_server.api("POST", "/ontologies", {"name": name, "schema": SCHEMA})[0] == 201
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, editor_server, "/devices")
        page.get_by_label("Name").fill("pump-7")
        page.get_by_label("Topic filter 1", exact=True).fill("pumps/{device}/#")
        page.get_by_role("button", name="Add topic").click()
        page.get_by_label("Topic filter 2", exact=True).fill("wrong/#")
        page.get_by_role("button", name="Add topic").click()
        page.get_by_label("Topic filter 3", exact=True).fill("alarms/{device}")
        page.get_by_role("button", name="Remove topic filter 2").click()
        page.get_by_role("button", name="Add ontology right").click()
        choose(page, "Ontology 1", "Water")
        choose(page, "Right 1", "READ")
        page.get_by_role("button", name="Add ontology right").click()
        page.get_by_role("button", name="Register").click()
        page.get_by_text("ontology right 2: choose both the ontology and the right").wait_for()
        choose(page, "Ontology 2", "Power")
        choose(page, "Right 2", "ALL")
        page.get_by_role("button", name="Register").click()
        page.get_by_label("Device token").wait_for()
        status, device = editor_server.api("GET", "/devices/pump-7")
        assert status == 200
        assert device["topics"] == ["pumps/{device}/#", "alarms/{device}"]
        assert device["ontologies"] == {"Water": "QUERY", "Power": "ALL"}
    finally:
        context.close()


def test_rights_from_rows():
    assert rights_of([("A", "QUERY"), ("B", "ALL"), (None, None)]) == {"A": "QUERY", "B": "ALL"}
    with pytest.raises(ValueError, match="ontology right 1: choose both"):
        rights_of([("A", None)])
    with pytest.raises(ValueError, match="ontology right 2: A is already given a right above"):
        rights_of([("A", "QUERY"), ("A", "ALL")])
    with pytest.raises(ValueError, match="ontology right 1: 'WRITE' is not one of"):
        rights_of([("A", "WRITE")])
