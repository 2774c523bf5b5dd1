"""`/settings`: the effective runtime settings, read-only, secrets masked; each named in words with a line of help
(settings_text.py)."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages.settings_text import SETTING_TEXT
from sofiaflow.editor.session import editor_page

MASK = "••••••"
SECRET_NAMES = re.compile(r"password|secret|(^|_)(key|token)$", re.IGNORECASE)
URL_PASSWORD = re.compile(
    r"(?P<head>[a-z][a-z0-9+.-]*://[^/:@]*:)(?P<password>[^@/]*)(?P<tail>@)", re.IGNORECASE
)
DERIVED = ("database_url", "realtime_database_url")


def shown_value(name: str, value: Any) -> str:
    """How a setting is shown: secrets masked (set or not), URL passwords masked, the rest as text."""
    if SECRET_NAMES.search(name):
        return MASK if value else "(not set)"
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        text = ", ".join(map(str, value)) or "(none)"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    else:
        text = str(value)
    return URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["tail"], text)


def setting_text(name: str) -> tuple[str, str]:
    """(label, help) of setting `name`; one missing from SETTING_TEXT gets its name in words."""
    if name in SETTING_TEXT:
        return SETTING_TEXT[name]
    words = name.replace("_", " ").strip()
    return (words[:1].upper() + words[1:], "Not described yet: see the settings in the README.")


def settings_rows(settings: Any) -> list[dict[str, str]]:
    """One row per setting field and per derived URL: name, label, help, value."""
    names = [f.name for f in dataclasses.fields(settings)]
    names += [name for name in DERIVED if hasattr(settings, name)]
    rows = []
    for name in names:
        label, help_text = setting_text(name)
        value = shown_value(name, getattr(settings, name))
        rows.append({"name": name, "label": label, "help": help_text, "value": value})
    return rows


@editor_page("/settings", title="sofiaflow: settings")
def settings_page() -> None:
    page_header("Settings")
    with ui.column().classes("w-full p-4 gap-3"):
        ui.label("Effective settings").classes("text-lg font-semibold")
        ui.label(
            "Set with SOFIAFLOW_* environment variables or command-line options; secrets are not shown."
        ).classes("text-gray-500")
        columns = [
            {"name": "setting", "label": "Setting", "field": "label", "align": "left"},
            {"name": "value", "label": "Value", "field": "value", "align": "left"},
        ]
        table = (
            ui.table(columns=columns, rows=settings_rows(get_context().runtime.settings), row_key="name")
            .classes("w-full")
            .props("dense flat bordered data-testid=settings-table")
        )
        table.add_slot("body-cell-setting", SETTING_CELL)
        table.add_slot("body-cell-value", VALUE_CELL)


SETTING_CELL = """<q-td :props="props" style="white-space: normal; width: 55%">
  <div data-role="setting-label" class="font-medium">{{ props.row.label }}</div>
  <div data-role="setting-help" class="text-xs text-gray-600">{{ props.row.help }}</div>
</q-td>"""
VALUE_CELL = (
    """<q-td :props="props" style="white-space: normal; word-break: break-all">{{ props.row.value }}</q-td>"""
)
