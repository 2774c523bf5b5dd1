"""`/`: the flow editor page (palette, tabs, canvas, debug sidebar, deploy, import/export)."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.canvas import FlowCanvas
from sofiaflow.editor.config_sidebar import ConfigSidebar, node_title
from sofiaflow.editor.context import get_context
from sofiaflow.editor.debug_sidebar import DebugSidebar
from sofiaflow.editor.deploy_panel import DeployButton
from sofiaflow.editor.help import HelpSidebar
from sofiaflow.editor.import_export import open_export, open_import
from sofiaflow.editor.info_sidebar import InfoSidebar
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.palette import PALETTE_CSS, palette_panel, palette_types
from sofiaflow.editor.properties import PropertyForm
from sofiaflow.editor.session import current_role, current_user, editor_page
from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

PAGE_CSS = """
.nicegui-content { padding: 0 !important; gap: 0 !important; }
.sf-canvas-host { width: 100%; height: calc(100vh - 96px); }
.sf-tab { border-radius: 4px 4px 0 0 !important; text-transform: none !important; }
.sf-tab.sf-current { background: #fff !important; border: 1px solid #ccc; border-bottom: none; }
.sf-tab.sf-tab-disabled .q-btn__content { text-decoration: line-through; opacity: .6; }
"""


def tab_bar(ws: Workspace) -> None:
    """The row of flow tabs (click: open; menu: rename, enable/disable, delete; +: add)."""
    modified = ws.doc.modified_tabs()
    with (
        ui.row()
        .classes("w-full items-end gap-1 px-2 pt-1 bg-gray-100 no-wrap overflow-x-auto")
        .props(testid("tabs"))
    ):
        for tab in ws.doc.tabs():
            label = (tab.get("label") or tab["id"]) + (" *" if tab["id"] in modified else "")
            current = tab["id"] == ws.tab
            classes = (
                "sf-tab"
                + (" sf-current" if current else "")
                + (" sf-tab-disabled" if tab.get("disabled") else "")
            )
            button = (
                ui.button(label, on_click=lambda t=tab["id"]: ws.show_tab(t))
                .props("flat dense no-caps")
                .classes(classes)
                .props(testid("tab"))
            )
            button.props(f'data-tab="{tab["id"]}"')
            button.on("dblclick", lambda _e, t=tab: rename_tab(ws, t))
            if current:
                with (
                    ui.button(icon="more_vert")
                    .props('flat dense size=sm aria-label="Flow menu: rename, disable, delete"')
                    .props(testid("tab-menu"))
                    .tooltip("Flow menu: rename, disable, delete")
                ):
                    with ui.menu():
                        ui.menu_item("Rename", on_click=lambda t=tab: rename_tab(ws, t)).props(
                            testid("tab-rename")
                        ).props("role=menuitem")
                        ui.menu_item(
                            "Enable flow" if tab.get("disabled") else "Disable flow",
                            on_click=lambda t=tab: _set_tab(ws, t["id"], disabled=not t.get("disabled")),
                        ).props(testid("tab-disable")).props("role=menuitem")
                        ui.menu_item("Delete", on_click=lambda t=tab: _delete_tab(ws, t["id"])).props(
                            testid("tab-delete")
                        ).props("role=menuitem")
        for subflow in ws.doc.subflows():
            classes = "sf-tab" + (" sf-current" if subflow["id"] == ws.tab else "")
            ui.button(
                f"subflow: {subflow.get('name') or subflow['id']}",
                icon="account_tree",
                on_click=lambda s=subflow["id"]: ws.show_tab(s),
            ).props(f'flat dense no-caps data-tab="{subflow["id"]}"').classes(classes).props(testid("tab"))
        ui.button(icon="add", on_click=lambda: _add_tab(ws)).props(
            'flat dense size=sm aria-label="Add a flow"'
        ).tooltip("Add a flow").props(testid("tab-add"))


def _add_tab(ws: Workspace) -> None:
    tab = ws.doc.add_tab()
    ws.show_tab(tab["id"])


def _set_tab(ws: Workspace, tab_id: str, **props: Any) -> None:
    ws.doc.set_tab(tab_id, **props)
    ws.redraw()


def _delete_tab(ws: Workspace, tab_id: str) -> None:
    """Delete a flow; when config nodes are used by it alone, a dialog offers to delete them too."""
    only_here = ws.doc.configs_only_used_by([tab_id])
    if not only_here:
        ws.doc.delete([tab_id])
        ws.redraw()
        return
    tab = ws.doc.get(tab_id) or {}
    with ui.dialog() as dialog, ui.card().classes("min-w-[420px]"):
        ui.label(f"Delete the flow {tab.get('label') or tab_id!r}?").classes("text-lg font-semibold")
        ui.label("These config nodes are used by this flow only:").classes("text-sm")
        boxes = [
            (config["id"], ui.checkbox(f"also delete {node_title(config)}", value=True))
            for config in only_here
        ]

        def confirm() -> None:
            ws.doc.delete([tab_id, *(i for i, box in boxes if box.value)])
            dialog.close()
            ws.redraw()

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Delete flow", on_click=confirm).props("color=red-7")
    dialog.open()


SIDEBARS = {"debug": "debug", "info": "info", "help": "help", "config": "config nodes"}


def sidebar_tabs(ws: Workspace) -> None:
    """The right sidebar: debug messages, info on the selection, node help, config nodes."""
    with ui.tabs().props("dense no-caps inline-label").classes("w-full text-gray-700") as tabs:
        tab_of = {name: ui.tab(name, label=label) for name, label in SIDEBARS.items()}
    with ui.tab_panels(tabs, value=tab_of["debug"]).props("keep-alive").classes("w-full") as panels:
        with ui.tab_panel(tab_of["debug"]).classes("p-0"):
            DebugSidebar(ws)
        with ui.tab_panel(tab_of["info"]).classes("p-0"):
            InfoSidebar(ws)
        with ui.tab_panel(tab_of["help"]).classes("p-0"):
            HelpSidebar(ws)
        with ui.tab_panel(tab_of["config"]).classes("p-0"):
            ConfigSidebar(ws)
    ws.on_open_sidebar = lambda name: panels.set_value(tab_of[name]) if name in tab_of else None


def rename_tab(ws: Workspace, tab: dict) -> None:
    with ui.dialog() as dialog, ui.card():
        name = ui.input("Flow name", value=tab.get("label", "")).props("autofocus").props(testid("tab-name"))

        def done() -> None:
            _set_tab(ws, tab["id"], label=name.value.strip() or tab.get("label"))
            dialog.close()

        name.on("keydown.enter", done)
        with ui.row():
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Done", on_click=done).props(testid("tab-name-done"))
    dialog.open()


def _toolbar(ws: Workspace) -> None:
    for icon, tip, action, mark in (
        ("undo", "Undo (Ctrl+Z)", ws._on_undo, "undo"),
        ("redo", "Redo (Ctrl+Y)", ws._on_redo, "redo"),
        ("file_upload", "Import flows", lambda: open_import(ws), "import"),
        ("file_download", "Export flows", lambda: open_export(ws), "export"),
    ):
        ui.button(icon=icon, on_click=action).props(f'flat dense color=white aria-label="{tip}"').tooltip(
            tip
        ).props(testid(mark))
    DeployButton(ws)


@editor_page("/", title="sofiaflow: flows")
def editor_main() -> None:
    ctx = get_context()
    ws = Workspace(ctx.runtime, palette_types(ctx.runtime.registry), current_user() or "", current_role())
    ui.add_css(PALETTE_CSS + PAGE_CSS)
    page_header("Flows", extra=lambda: _toolbar(ws))
    with (
        ui.left_drawer(value=True)
        .props("width=210 bordered")
        .classes("p-1 bg-gray-50")
        .props(testid("palette"))
    ):
        palette_panel(ws.types, on_add=ws.add_node_in_view)
    with ui.right_drawer(value=True).props("width=360 bordered").classes("p-2").props(testid("sidebar")):
        sidebar_tabs(ws)
    tabs = ui.refreshable(tab_bar)
    tabs(ws)
    canvas = FlowCanvas().props(testid("canvas"))
    ws.attach(canvas)
    ws.on_redraw.append(tabs.refresh)
    ws.on_edit_node = lambda node_id: PropertyForm(ws, node_id)

    status_changed = {"dirty": False}

    def on_status(topic: str, data: Any) -> None:
        ws.on_status(topic, data)
        status_changed["dirty"] = True

    unsubscribe = ctx.runtime.events.subscribe("status/#", on_status)
    ui.context.client.on_delete(unsubscribe)

    def tick() -> None:
        canvas.set_active(ws.active_sources())
        if status_changed["dirty"]:
            status_changed["dirty"] = False
            ws.redraw()

    ui.timer(0.5, tick)
    ws.redraw()
