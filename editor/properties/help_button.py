"""The edit panel's Help button: the help sidebar when the editor has one, else the node type's help text."""

from __future__ import annotations

import importlib
from typing import Any

from nicegui import ui

from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace


def _sidebar_opener() -> Any:
    try:
        module = importlib.import_module("sofiaflow.editor.help")
    except ImportError:
        return None
    return getattr(module, "open_help", None)


def help_button(ws: Workspace, node_type: str, text: str) -> ui.button:
    def show() -> None:
        opener = _sidebar_opener()
        if opener is not None:
            opener(ws, node_type)
            return
        with ui.dialog() as dialog, ui.card().classes("max-w-xl").props(testid("help-dialog")):
            ui.label(node_type).classes("text-lg font-semibold")
            ui.markdown(text or "No help for this node type.")
            ui.button("Close", on_click=dialog.close).props("flat no-caps")
        dialog.open()

    return (
        ui.button("Help", icon="help_outline", on_click=show)
        .props("flat no-caps")
        .props(testid("properties-help"))
    )
