"""`/apis`: the APIs of the API Manager: URL, state, owner, operations, Swagger link and call counts.

Everyone signed in sees the APIs they may call (published and deprecated ones, and development ones they own);
administrators see every API's call counts, developers and users those of the APIs they own.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._format import NONE
from sofiaflow.editor.session import current_role, current_user, editor_page

SERVICE = "api-manager"
SWAGGER = "/api-manager/swagger"
REFRESH_SECONDS = 2.0

COLUMNS = [
    {"name": "api", "label": "API", "field": "api", "align": "left", "sortable": True},
    {"name": "state", "label": "State", "field": "state", "align": "left", "sortable": True},
    {"name": "owner", "label": "Owner", "field": "owner", "align": "left"},
    {"name": "url", "label": "URL", "field": "url", "align": "left"},
    {"name": "operations", "label": "Operations", "field": "operations", "align": "left"},
    {"name": "quota", "label": "Quota / min", "field": "quota"},
    {"name": "calls", "label": "Calls", "field": "calls", "sortable": True},
    {"name": "ok", "label": "Answered 2xx", "field": "ok"},
    {"name": "refused", "label": "Refused 4xx", "field": "refused"},
    {"name": "failed", "label": "Failed 5xx", "field": "failed"},
    {"name": "openapi", "label": "OpenAPI", "field": "openapi", "align": "left"},
]


def manager() -> Any:
    engine = get_context().runtime.engine
    return engine.services.get(SERVICE) if engine is not None else None


def api_rows(service: Any, user: str | None, role: str | None) -> list[dict[str, Any]]:
    """One row per API `user` may see; call counts (summed over keys, by status class) where they may see them."""
    totals: dict[tuple[str, int], Counter] = {}
    for entry in service.stats():
        counter = totals.setdefault((entry["api"], entry["version"]), Counter())
        for status, count in entry["status"].items():
            counter[str(status)[:1] + "xx"] += count
    rows = []
    for spec, endpoints in service.apis():
        if not (spec.state != "development" or role == "administrator" or (user and user == spec.owner)):
            continue
        counts = totals.get((spec.name, spec.version), Counter())
        url, document = service.urls(spec)
        shown = role == "administrator" or (user is not None and user == spec.owner)
        rows.append(
            {
                "id": f"{spec.name}@{spec.version}",
                "api": spec.label,
                "state": spec.state,
                "owner": spec.owner or NONE,
                "url": url,
                "operations": ", ".join(f"{e.method} {e.path}" for e in endpoints) or NONE,
                "quota": spec.quota or "no limit",
                "calls": sum(counts.values()) if shown else NONE,
                "ok": counts["2xx"] if shown else NONE,
                "refused": counts["4xx"] if shown else NONE,
                "failed": counts["5xx"] if shown else NONE,
                "openapi": document,
            }
        )
    return rows


class ApisView:
    """The APIs table, refreshed every few seconds."""

    def __init__(self) -> None:
        self.user, self.role = current_user(), current_role()
        with ui.row().classes("items-center gap-3"):
            ui.label("APIs").classes("text-xl font-semibold")
            ui.link("Swagger UI: try the APIs", SWAGGER, new_tab=True).classes("text-blue-800")
            ui.link("Your API keys", "api-keys").classes("text-blue-800")
        self.empty = ui.label(
            "No API is published yet: add an api config node and api-endpoint nodes to a flow, then deploy."
        )
        with ui.element("section").classes("w-full").props('aria-label="APIs"'):
            self.table = (
                ui.table(columns=COLUMNS, rows=[], row_key="id", pagination=25)
                .classes("w-full")
                .props("dense flat bordered")
            )
        self.table.add_slot(
            "body-cell-url",
            '<q-td :props="props"><a :href="props.value" target="_blank" class="text-blue-800 underline">'
            "{{ props.value }}</a></q-td>",
        )
        self.table.add_slot(
            "body-cell-openapi",
            '<q-td :props="props"><a :href="props.value" target="_blank" class="text-blue-800 underline"'
            " :aria-label=\"'OpenAPI document of ' + props.row.api\">openapi.json</a></q-td>",
        )
        self.refresh()
        ui.timer(REFRESH_SECONDS, self.refresh)

    def refresh(self) -> None:
        service = manager()
        rows = [] if service is None else api_rows(service, self.user, self.role)
        self.empty.set_visibility(not rows)
        if rows != self.table.rows:
            self.table.rows = rows
            self.table.update()


@editor_page("/apis", title="sofiaflow: APIs")
def apis_page() -> None:
    page_header("APIs")
    with ui.column().classes("w-full p-4 gap-3"):
        if manager() is None:
            ui.label("The API Manager service is not running.")
            return
        ApisView()
