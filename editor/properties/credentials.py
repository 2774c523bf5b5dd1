"""A node's credentials in its form: text ones show the stored value, passwords never do (empty keeps them).

What is typed goes with the next deploy as the node's `credentials`, never into the flow JSON.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.properties.schema import humanize
from sofiaflow.editor.properties.widgets import FormField
from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

LABELS = {"user": "Username", "password": "Password", "token": "Token", "passphrase": "Passphrase"}


def credentials_field(ws: Workspace, node: dict, spec: dict[str, str]) -> FormField:
    deployer = getattr(ws.runtime, "deployer", None)
    stored = (deployer.credentials.get(node["id"]) if deployer is not None else None) or {}
    pending = node.get("credentials") or {}
    inputs: dict[str, tuple[Any, str]] = {}
    with ui.column().classes("w-full gap-1") as column:
        for key, kind in spec.items():
            label = LABELS.get(key, humanize(key))
            current = pending.get(key, stored.get(key, ""))
            if kind == "password":
                hint = "stored; type to replace" if stored.get(key) else ""
                widget = ui.input(
                    label,
                    password=True,
                    password_toggle_button=True,
                    placeholder=hint,
                    value=pending.get(key, ""),
                )
                inputs[key] = (widget, "")
            else:
                widget = ui.input(label, value="" if current is None else str(current))
                inputs[key] = (widget, "" if current is None else str(current))
            widget.props("dense outlined autocomplete=off").classes("w-full").props(testid(f"cred-{key}"))

    def read() -> dict:
        typed = {k: w.value for k, (w, before) in inputs.items() if (w.value or "") != before}
        return {"credentials": {**pending, **typed}} if typed or pending else {}

    return FormField("credentials", None, read, container=column)
