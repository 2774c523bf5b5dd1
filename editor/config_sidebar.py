"""The config nodes sidebar: each config node with the nodes that use it; unused ones marked and deletable."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.workspace import Workspace


def node_title(node: dict) -> str:
    """`type 'name'`, or `type id` for a node without a name."""
    name = node.get("name") or node.get("label")
    return f"{node.get('type', '?')} {name!r}" if name else f"{node.get('type', '?')} {node.get('id', '')}"


class ConfigSidebar:
    """Redrawn after every edit; opening a config node edits it, a user's name selects it on the canvas."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        ui.label("config nodes").classes("text-base font-semibold")
        self.body = ui.column().classes("w-full gap-1")
        self._shown: list | None = None
        ws.sidebars["config"] = self
        ws.on_redraw.append(self.refresh)
        self.refresh()

    def refresh(self, *_args: Any) -> None:
        ws = self.ws
        users = ws.doc.config_users()
        configs = sorted(ws.doc.config_nodes(), key=lambda n: (n.get("type", ""), node_title(n)))
        shown = [
            (node_title(c), c["id"], [(u["id"], node_title(u), "x" in u) for u in users.get(c["id"], [])])
            for c in configs
        ]
        if shown == self._shown:
            return  # redrawn after every edit: rebuild only when something here changed
        self._shown = shown
        self.body.clear()
        with self.body:
            if not configs:
                ui.label("No config nodes yet.").classes("text-sm text-gray-600")
            for config in configs:
                self._row(config, users.get(config["id"], []))

    def _row(self, config: dict, users: list[dict]) -> None:
        ws = self.ws
        title = node_title(config)
        with ui.card().tight().classes("w-full p-2").props("flat bordered") as card:
            card.props(f'role=group aria-label="{title}"')
            with ui.row().classes("w-full items-center no-wrap gap-1"):
                ui.link(title).classes("font-medium cursor-pointer text-sm").on(
                    "click", lambda _e, i=config["id"]: self._edit(i)
                ).tooltip("edit")
                ui.space()
                if users:
                    ui.badge(f"{len(users)} user{'s' if len(users) != 1 else ''}", color="blue-grey")
                else:
                    ui.badge("unused", color="orange")
                    ui.button(icon="delete", on_click=lambda i=config["id"]: self._delete(i)).props(
                        f'flat dense size=sm aria-label="delete {title}"'
                    )
            if users:
                with ui.row().classes("w-full gap-x-2 gap-y-0 text-xs"):
                    for user in users:
                        if "x" in user:
                            ui.link(node_title(user)).classes("cursor-pointer").on(
                                "click", lambda _e, i=user["id"]: ws.reveal([i])
                            )
                        else:
                            ui.link(node_title(user)).classes("cursor-pointer").on(
                                "click", lambda _e, i=user["id"]: self._edit(i)
                            )
                if len([u for u in users if "x" in u]) > 1:
                    ui.button(
                        "select all users",
                        on_click=lambda ids=[u["id"] for u in users if "x" in u]: ws.reveal(ids),
                    ).props("flat dense no-caps size=sm")

    def _edit(self, node_id: str) -> None:
        if self.ws.on_edit_node is not None:
            self.ws.on_edit_node(node_id)

    def _delete(self, node_id: str) -> None:
        self.ws.doc.delete([node_id])
        self.ws.redraw()
        ui.notify("config node deleted (deploy to apply)", position="bottom")
