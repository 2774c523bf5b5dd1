"""Fields that name other nodes of the flow: link targets (`links`) and catch/status/complete `scope`."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.properties.schema import FieldSpec
from sofiaflow.editor.properties.widgets import FormField
from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

LINK_TARGETS = {"link in": ("link out",), "link out": ("link in",), "link call": ("link in",)}
"""The nodes a link node's `links` name, by its type."""
SCOPES = {"all": "all nodes", "group": "nodes in the same group", "selected": "selected nodes"}


def _node_options(ws: Workspace, node: dict, types: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for other in ws.doc.by_id().values():
        if other.get("id") == node.get("id") or "x" not in other:
            continue
        if types and other.get("type") not in types:
            continue
        if not types and other.get("z") != node.get("z"):
            continue
        tab = ws.doc.get(other.get("z") or "") or {}
        where = f" ({tab.get('label')})" if tab.get("label") and other.get("z") != node.get("z") else ""
        out[other["id"]] = f"{other.get('name') or other.get('type')} [{other['id'][:6]}]{where}"
    return out


def nodes_field(ws: Workspace, node: dict, spec: FieldSpec, value: Any, mark: str) -> FormField:
    types = spec.types or LINK_TARGETS.get(node.get("type", ""), ())
    options = _node_options(ws, node, types)
    chosen = [v for v in value or [] if isinstance(value, list)]
    options.update({v: f"{v} (missing)" for v in chosen if v not in options})
    select = (
        ui.select(options, value=chosen, label=spec.label, multiple=True)
        .props("dense outlined options-dense use-chips")
        .classes("w-full")
        .props(testid(mark))
    )
    return FormField(spec.key, select, lambda: {spec.key: list(select.value or [])})


def scope_field(ws: Workspace, node: dict, spec: FieldSpec, value: Any, mark: str) -> FormField:
    """Node-RED's scope: null (all nodes), "group", or a list of node ids."""
    mode = "group" if value == "group" else "selected" if isinstance(value, list) else "all"
    with ui.column().classes("w-full gap-1") as column:
        kind = (
            ui.select(SCOPES, value=mode, label=spec.label)
            .props("dense outlined options-dense")
            .classes("w-full")
            .props(testid(mark))
        )
        options = _node_options(ws, node, ())
        chosen = value if isinstance(value, list) else []
        options.update({v: f"{v} (missing)" for v in chosen if v not in options})
        picked = (
            ui.select(options, value=chosen, label="Nodes", multiple=True)
            .props("dense outlined options-dense use-chips")
            .classes("w-full")
            .props(testid(f"{mark}-nodes"))
        )
    picked.bind_visibility_from(kind, "value", backward=lambda v: v == "selected")

    def read() -> dict:
        if kind.value == "group":
            return {spec.key: "group"}
        if kind.value == "selected":
            return {spec.key: list(picked.value or [])}
        return {spec.key: None}

    return FormField(spec.key, kind, read, container=column, current=lambda: kind.value)
