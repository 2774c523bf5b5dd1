"""`/settings`: the effective runtime settings, read-only, secrets masked."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
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
    if isinstance(value, (list, tuple)):
        text = ", ".join(map(str, value)) or "(none)"
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={v}" for k, v in value.items()) or "(none)"
    else:
        text = str(value)
    return URL_PASSWORD.sub(lambda m: m["head"] + MASK + m["tail"], text)


def settings_rows(settings: Any) -> list[dict[str, str]]:
    """One row per setting field and per derived URL."""
    rows = [
        {"name": f.name, "value": shown_value(f.name, getattr(settings, f.name))}
        for f in dataclasses.fields(settings)
    ]
    for name in DERIVED:
        if hasattr(settings, name):
            rows.append({"name": name, "value": shown_value(name, getattr(settings, name))})
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
            {"name": "name", "label": "Setting", "field": "name", "align": "left"},
            {"name": "value", "label": "Value", "field": "value", "align": "left"},
        ]
        ui.table(columns=columns, rows=settings_rows(get_context().runtime.settings), row_key="name").classes(
            "w-full"
        ).props("dense flat bordered data-testid=settings-table")
