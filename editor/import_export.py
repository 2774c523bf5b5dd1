"""Import (paste or upload flow JSON, Node-RED exports included) and export (selection, tab, all)."""

from __future__ import annotations

import json
from typing import Any

from nicegui import events, ui

from sofiaflow.editor.flowdoc import parse_flow_json
from sofiaflow.editor.import_remap import is_config
from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

__all__ = ["open_export", "open_import", "parse_flow_json"]


def open_import(ws: Workspace) -> None:
    """The import dialog: paste or upload, into the current tab or a new one."""
    with ui.dialog() as dialog, ui.card().classes("w-[640px] max-w-full").props(testid("import-dialog")):
        ui.label("Import nodes").classes("text-lg font-semibold")
        text = (
            ui.textarea(placeholder="Paste flow JSON here")
            .props("outlined autogrow input-style='min-height:200px;font-family:monospace'")
            .classes("w-full")
            .props(testid("import-text"))
        )

        async def uploaded(e: events.UploadEventArguments) -> None:
            text.value = await e.file.text()  # the report follows the text

        ui.upload(label="or upload a .json file", auto_upload=True, on_upload=uploaded).props(
            "accept=.json flat"
        ).classes("w-full")
        target = (
            ui.radio({"current": "current flow", "new": "new flow"}, value="current")
            .props("inline")
            .props(testid("import-target"))
        )
        error = ui.label("").classes("text-red-600 text-sm").props(testid("import-error"))
        report = ui.column().classes("w-full gap-0").props(testid("import-report"))
        text.on_value_change(lambda: show_report(ws, text.value or "", report))

        def do_import() -> None:
            try:
                items = parse_flow_json(text.value or "")
            except ValueError as exc:
                error.set_text(str(exc))
                return
            added = ws.doc.import_flows(items, ws.tab, new_tab=target.value == "new")
            tab_ids = [n["z"] for n in ws.doc.flows if n.get("id") in added and n.get("z")]
            if tab_ids:
                ws.tab = tab_ids[0]
            ws.redraw()
            configs_in = sum(1 for n in items if is_config(n, ws.types))
            configs_added = sum(1 for i in added if is_config(ws.doc.get(i) or {}, ws.types))
            reused = configs_in - configs_added
            note = f"; {reused} identical config node(s) already here reused" if reused > 0 else ""
            ui.notify(f"imported {len(added)} object(s){note}", position="bottom")
            dialog.close()

        with ui.row().classes("w-full justify-end"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Import", on_click=do_import).props(testid("import-confirm"))
    dialog.open()


REPORT_ROWS = 100
STATUS_COLORS = {"runs": "green", "caveat": "orange", "cannot-run": "red"}


IMPORT_TAB = "__import_target__"


def _placed(items: list[dict]) -> list[dict]:
    """`items` as the import will place them: nodes whose tab is not among them land on the target tab."""
    containers = {n.get("id") for n in items if n.get("type") in ("tab", "subflow")}
    placed = [
        dict(n, z=IMPORT_TAB)
        if ("wires" in n or "x" in n)
        and n.get("type") not in ("tab", "subflow")
        and n.get("z") not in containers
        else n
        for n in items
    ]
    return [{"id": IMPORT_TAB, "type": "tab", "label": "import"}, *placed]


def show_report(ws: Workspace, text: str, area: ui.element) -> None:
    """Before anything is imported: how many nodes run here, run with a caveat, or cannot run, and why."""
    from sofiaflow.runtime.flows.import_report import import_report

    area.clear()
    try:
        entries = import_report(_placed(parse_flow_json(text)), ws.runtime.registry) if text.strip() else []
    except Exception:  # noqa: BLE001 - not flow JSON yet: the import button says why
        return
    entries = [e for e in entries if e["id"] != IMPORT_TAB]
    if not entries:
        return
    counts = {status: sum(1 for e in entries if e["status"] == status) for status in STATUS_COLORS}
    with area:
        with ui.row().classes("items-center gap-2"):
            for status, color in STATUS_COLORS.items():
                ui.badge(f"{counts[status]} {status.replace('-', ' ')}", color=color).props(
                    testid(f"report-{status}")
                )
        for entry in [e for e in entries if e["status"] != "runs"][:REPORT_ROWS]:
            name = f"{entry['type']} {entry['name'] or entry['id']}"
            ui.label(f"{entry['status'].replace('-', ' ')}: {name}: {'; '.join(entry['reasons'])}").classes(
                f"text-xs text-{STATUS_COLORS[entry['status']]}-800"
            ).props(testid("report-entry"))


def open_export(ws: Workspace) -> None:
    """The export dialog: selected nodes, the current tab, or all flows; copy or download."""
    scopes = {"selected": "selected nodes", "flow": "current flow", "all": "all flows"}

    def content(scope: str) -> list[dict]:
        if scope == "selected":
            return ws.doc.export(ws.selection)
        if scope == "flow":
            return ws.doc.export(tab_id=ws.tab)
        return ws.doc.export()

    with ui.dialog() as dialog, ui.card().classes("w-[640px] max-w-full").props(testid("export-dialog")):
        ui.label("Export nodes").classes("text-lg font-semibold")
        initial = "selected" if ws.selection else "flow"
        scope = ui.radio(scopes, value=initial).props("inline").props(testid("export-scope"))
        pretty = ui.checkbox("formatted", value=True)
        text = (
            ui.textarea()
            .props("outlined readonly input-style='min-height:220px;font-family:monospace'")
            .classes("w-full")
            .props(testid("export-text"))
        )

        def render(_e: Any = None) -> None:
            text.value = json.dumps(
                content(scope.value), indent=4 if pretty.value else None, ensure_ascii=False
            )

        scope.on_value_change(render)
        pretty.on_value_change(render)
        render()
        with ui.row().classes("w-full justify-end"):
            ui.button(
                "Copy to clipboard",
                icon="content_copy",
                on_click=lambda: (ui.clipboard.write(text.value), ui.notify("copied", position="bottom")),
            )
            ui.button(
                "Download",
                icon="download",
                on_click=lambda: ui.download.content(text.value, "flows.json", "application/json"),
            )
            ui.button("Close", on_click=dialog.close).props("flat")
    dialog.open()
