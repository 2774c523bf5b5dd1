"""`/api-keys`: create API keys (each shown once, with a copy button), list them (label, owner, created, last used,
state) and revoke them.

Every signed-in user manages their own keys (as `POST/GET/DELETE /api-keys` allow); administrators may also list
and revoke everyone's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._access import audit
from sofiaflow.editor.pages._format import NONE
from sofiaflow.editor.pages.apis import manager
from sofiaflow.editor.session import current_role, current_user, editor_page

COLUMNS = [
    {"name": "label", "label": "Label", "field": "label", "align": "left", "sortable": True},
    {"name": "user", "label": "Owner", "field": "user", "align": "left", "sortable": True},
    {"name": "created", "label": "Created", "field": "created", "align": "left", "sortable": True},
    {"name": "last_used", "label": "Last used", "field": "last_used", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {"name": "action", "label": "", "field": "action"},
]


def _when(iso: str | None) -> str:
    return iso.replace("T", " ")[:19] if iso else NONE


def key_rows(keys: list[dict[str, Any]], last_used: dict[str, float]) -> list[dict[str, Any]]:
    """The table's rows: one per key, newest first, with when it last called an API."""
    rows = []
    for key in keys:
        used = last_used.get(key["id"])
        rows.append(
            {
                "id": key["id"],
                "label": key["label"] or "(no label)",
                "user": key["user"],
                "created": _when(key["created"]),
                "last_used": (
                    datetime.fromtimestamp(used, UTC).strftime("%Y-%m-%d %H:%M:%S") if used else "never"
                ),
                "state": f"revoked {_when(key['revoked'])}" if key["revoked"] else "active",
                "active": not key["revoked"],
            }
        )
    return rows


class ApiKeysView:
    """The new-key form and the key list."""

    def __init__(self, service: Any) -> None:
        self.service = service
        self.user, self.role = current_user() or "", current_role()
        with ui.card().classes("w-full").props("flat bordered"):
            ui.label("New API key").classes("text-lg font-semibold")
            ui.label(
                "Send the key in the X-OP-APIKey header when calling an API. It is shown only once, "
                "right after you create it."
            ).classes("text-sm text-gray-600")
            with ui.row().classes("items-center gap-3"):
                self.label = ui.input("Label (what the key is for)").classes("w-80")
                ui.button("Create key", icon="vpn_key", on_click=self.create)
            self.problem = ui.label("").classes("text-red-700")
        with ui.row().classes("items-center gap-3"):
            ui.label("API keys").classes("text-lg font-semibold")
            self.everyone = (
                ui.switch("Everyone's keys", on_change=lambda: self.render())
                if self.role == "administrator"
                else None
            )
        with ui.element("section").classes("w-full").props('aria-label="API keys"'):
            self.table = (
                ui.table(columns=COLUMNS, rows=[], row_key="id", pagination=25)
                .classes("w-full")
                .props("dense flat bordered")
            )
        self.table.add_slot(
            "body-cell-action",
            '<q-td :props="props"><q-btn v-if="props.row.active" flat dense color="negative" label="Revoke" '
            ":aria-label=\"'Revoke ' + props.row.label\" "
            "@click=\"$parent.$emit('revoke', props.row.id)\" /></q-td>",
        )
        self.table.on("revoke", lambda e: self.ask_revoke(e.args))
        self.render()

    def render(self) -> None:
        everyone = self.everyone is not None and bool(self.everyone.value)
        keys = self.service.keys.list(None if everyone else self.user)
        self.table.rows = key_rows(keys, self.service.last_used())
        self.table.update()

    def create(self) -> None:
        label = (self.label.value or "").strip()
        try:
            created = self.service.keys.create(self.user, label)
        except ValueError as exc:
            self.problem.set_text(f"Label: {exc}")
            return
        audit("api-key.create", created["id"], detail={"label": label})
        self.problem.set_text("")
        self.label.value = ""
        self.render()
        self.show_once(created["key"], label)

    def show_once(self, key: str, label: str) -> None:
        with ui.dialog() as dialog, ui.card().classes("min-w-[36rem]").props('aria-label="Your new API key"'):
            ui.label(f"Your new API key{f' ({label})' if label else ''}").classes("text-lg font-semibold")
            ui.label("Copy it now: it is not shown again.").classes("text-orange-800")
            with ui.row().classes("items-center gap-2 w-full no-wrap"):
                field = ui.input("API key", value=key).props("readonly outlined").classes("grow font-mono")
                ui.button(
                    icon="content_copy",
                    on_click=lambda: (ui.clipboard.write(key), ui.notify("API key copied")),
                ).props('flat aria-label="Copy API key"').tooltip("Copy API key")
            field.props('aria-label="API key"')
            ui.button("Done", on_click=dialog.close)
        dialog.open()

    def ask_revoke(self, key_id: Any) -> None:
        key_id = str(key_id)
        owner = self.service.keys.owner_of_id(key_id)
        if owner is None or (owner != self.user and self.role != "administrator"):
            self.problem.set_text(f"API key {key_id}: not one you may revoke")
            return
        with ui.dialog() as dialog, ui.card():
            ui.label("Revoke this API key? Calls with it are refused from now on.")
            with ui.row():

                def revoke() -> None:
                    dialog.close()
                    if self.service.keys.revoke(key_id):
                        audit("api-key.revoke", key_id, detail={"owner": owner})
                    self.render()

                ui.button("Revoke", color="negative", on_click=revoke)
                ui.button("Cancel", on_click=dialog.close).props("flat")
        dialog.open()


@editor_page("/api-keys", title="sofiaflow: API keys")
def api_keys_page() -> None:
    page_header("API keys")
    with ui.column().classes("w-full p-4 gap-3"):
        service = manager()
        if service is None:
            ui.label("The API Manager service is not running.")
            return
        ApiKeysView(service)
