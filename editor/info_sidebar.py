"""The info sidebar: what is selected (or the current flow): type, id, name, owner, status and description."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.workspace import Workspace


def info_rows(ws: Workspace, node_id: str | None = None) -> list[tuple[str, str]]:
    """(label, value) rows for node `node_id`, else for the current flow."""
    node = ws.doc.get(node_id) if node_id else None
    if node is not None:
        tab = ws.doc.get(node["z"]) if node.get("z") else None
    else:
        tab = ws.doc.get(ws.tab)
    target = node if node is not None else (tab or {})
    kind = target.get("type", "")
    rows = [("Node" if node is not None else "Flow", target.get("name") or target.get("label") or "")]
    rows += [("Type", kind), ("Id", target.get("id", ""))]
    if node is not None and tab is not None:
        rows.append(("Flow", tab.get("label") or tab.get("id", "")))
    owner = _owner(ws, (tab or node or {}).get("id"))
    rows.append(("Owner", owner or "administrators"))
    if node is not None:
        status = ws.statuses.get(node["id"]) or {}
        rows.append(("Status", " ".join(str(status.get(k, "")) for k in ("fill", "text") if status.get(k))))
        users = ws.doc.config_users().get(node["id"])
        if users is not None:
            rows.append(("Used by", str(len(users))))
    if target.get("d") or target.get("disabled"):
        rows.append(("Disabled", "yes"))
    return rows


def _owner(ws: Workspace, unit: str | None) -> str | None:
    ownership = getattr(ws.runtime, "ownership", None)
    if ownership is None or not unit:
        return None
    try:
        return ownership.owner(unit)
    except Exception:  # noqa: BLE001 - a unit the ownership table has never seen has no owner
        return None


class InfoSidebar:
    """Redrawn when the selection, the tab or the flows change."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        ui.label("info").classes("text-base font-semibold")
        self.body = ui.column().classes("w-full gap-1")
        self._shown: tuple | None = None
        ws.sidebars["info"] = self
        ws.on_redraw.append(self.refresh)
        ws.on_select.append(self.refresh)
        self.refresh()

    def refresh(self, *_args: Any) -> None:
        ws = self.ws
        node_id = ws.selection[0] if len(ws.selection) == 1 else None
        node = ws.doc.get(node_id) if node_id else ws.doc.get(ws.tab)
        shown = (
            info_rows(ws, node_id),
            len(ws.selection),
            (node or {}).get("info"),
            (node or {}).get("type"),
        )
        if shown == self._shown:
            return  # redrawn after every edit and status: rebuild only when something here changed
        self._shown = shown
        self.body.clear()
        with self.body:
            with ui.element("table").classes("w-full text-sm").props('aria-label="information"'):
                for label, value in shown[0]:
                    with ui.element("tr"):
                        with ui.element("th").classes("text-left pr-2 align-top text-gray-600 font-normal"):
                            ui.label(label)
                        with ui.element("td").classes("break-all"):
                            ui.label(value)
            if len(ws.selection) > 1:
                ui.label(f"{len(ws.selection)} nodes selected").classes("text-sm text-gray-600")
            text = (node or {}).get("info") or ""
            if text:
                ui.label("Description").classes("text-sm font-semibold mt-2")
                ui.markdown(str(text)).classes("w-full text-sm")
            if node_id and node and node.get("type") in ws.types:
                from sofiaflow.editor.help import open_help

                ui.button(
                    f"Help on {node['type']}",
                    icon="help_outline",
                    on_click=lambda t=node["type"]: open_help(ws, t),
                ).props("flat dense no-caps")
