"""A field that references a config node: a picker of the existing ones, "Add new ...", and an edit button.

Picking "Add new <type>..." creates the config node in place and opens its form on top; the edit button
opens the chosen one's form. `open_form(config_id, on_done)` is the property form itself (passed in, so
this module does not import it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from sofiaflow.editor.properties.schema import FieldSpec
from sofiaflow.editor.properties.widgets import FormField
from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

NEW_CONFIG = "__new__"


def config_options(ws: Workspace, ref_type: str) -> dict[str, str]:
    """ "none", the config nodes of `ref_type` by name, and "add new <type>..."."""
    out = {"": "none"}
    out.update({n["id"]: n.get("name") or f"{ref_type} {n['id'][:6]}" for n in ws.doc.config_nodes(ref_type)})
    out[NEW_CONFIG] = f"add new {ref_type}..."
    return out


def config_ref_field(
    ws: Workspace, spec: FieldSpec, value: Any, mark: str, open_form: Callable[[str, Callable], Any]
) -> FormField:
    ref_type = spec.config_type
    options = config_options(ws, ref_type)
    with ui.row().classes("w-full items-center no-wrap") as row:
        select = (
            ui.select(options, value=value if value in options else "", label=spec.label)
            .props("dense outlined options-dense")
            .classes("grow")
            .props(testid(mark))
        )
        if spec.help:
            select.props(f'hint="{spec.help.replace(chr(34), chr(39))}" bottom-slots hide-bottom-space')
        edit = (
            ui.button(icon="edit")
            .props(f'flat dense aria-label="edit this {ref_type}"')
            .tooltip(f"edit this {ref_type}")
            .props(testid(f"{mark}-edit"))
        )

    def opened(config_id: str) -> None:
        select.set_options(config_options(ws, ref_type), value=config_id)

    def changed(e: Any) -> None:
        if e.value == NEW_CONFIG:
            entry = ws.types[ref_type]
            created = ws.doc.add_config_node(ref_type, entry.get("defaults"))
            select.set_options(config_options(ws, ref_type), value=created["id"])
            open_form(created["id"], opened)

    select.on_value_change(changed)
    edit.on_click(
        lambda: open_form(select.value, opened) if select.value not in ("", None, NEW_CONFIG) else None
    )
    return FormField(
        spec.key,
        select,
        lambda: {spec.key: "" if select.value in (None, NEW_CONFIG) else select.value},
        container=row,
    )
