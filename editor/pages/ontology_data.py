"""`/ontologies/{name}/data`: query an ontology's stored instances with a MongoDB filter, a page at a time."""

from __future__ import annotations

import json
from typing import Any

from nicegui import run, ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._access import query_refusal
from sofiaflow.editor.session import editor_page
from sofiaflow.runtime.data.rtdb import RtdbError

PAGE_SIZE = 20
SHOWN_CHARS = 400


def store() -> Any:
    engine = get_context().runtime.engine
    rtdb = engine.services.get("rtdb") if engine is not None else None
    if rtdb is None:
        raise RuntimeError("the real-time DB is not running")
    return rtdb


def parse_filter(text: str) -> dict[str, Any]:
    """The query box's JSON object ({} when empty); ValueError naming the problem otherwise."""
    if not (text or "").strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"filter: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"filter: must be a JSON object, got {type(value).__name__}")
    return value


def query_page(name: str, filter_: dict[str, Any], page: int) -> tuple[int, list[dict[str, Any]]]:
    """(how many match, the documents of page `page` (from 0)), newest first by `_id` order of the store."""
    rtdb = store()
    total = rtdb.count(name, filter_)
    docs = rtdb.find(name, filter_, skip=page * PAGE_SIZE, limit=PAGE_SIZE)
    return total, docs


def doc_row(doc: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in doc.items() if k not in ("_id", "contextData")}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, default=str)
    stamp = (
        (doc.get("contextData") or {}).get("timestamp", "")
        if isinstance(doc.get("contextData"), dict)
        else ""
    )
    return {
        "_id": str(doc.get("_id")),
        "stored": stamp,
        "document": text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…",
    }


class DataBrowser:
    """Filter box, Run, result count, a table of one page, previous/next."""

    def __init__(self, container: ui.element, name: str) -> None:
        self.name = name
        self.page = 0
        self.total = 0
        self.filter: dict[str, Any] = {}
        with container:
            ui.label(f"Data of {name}").classes("text-lg font-semibold")
            with ui.row().classes("w-full items-start gap-3 no-wrap"):
                self.box = (
                    ui.codemirror("{}", language="JSON", indent="  ")
                    .classes("w-2/3 h-28 border")
                    .props("data-testid=query-filter")
                )
                with ui.column():
                    ui.button("Run query", icon="search", on_click=self.run).props("data-testid=query-run")
                    ui.label('e.g. {"measure": {"$gt": 20}}').classes("text-xs text-gray-500")
            self.status = ui.label("").props("data-testid=query-status")
            columns = [
                {"name": "_id", "label": "_id", "field": "_id", "align": "left"},
                {"name": "stored", "label": "Stored", "field": "stored", "align": "left"},
                {
                    "name": "document",
                    "label": "Document",
                    "field": "document",
                    "align": "left",
                    "style": "white-space: normal; font-family: monospace",
                },
            ]
            self.table = (
                ui.table(columns=columns, rows=[], row_key="_id")
                .classes("w-full")
                .props("dense flat bordered data-testid=query-results")
            )
            with ui.row().classes("items-center gap-2"):
                self.prev = ui.button("Previous", on_click=lambda: self.show(self.page - 1)).props("flat")
                self.position = ui.label("").props("data-testid=query-page")
                self.next = ui.button("Next", on_click=lambda: self.show(self.page + 1)).props("flat")

    async def run(self) -> None:
        try:
            self.filter = parse_filter(self.box.value)
        except ValueError as exc:
            self.fail(str(exc))
            return
        await self.show(0)

    async def show(self, page: int) -> None:
        refusal = query_refusal(self.name)
        if refusal is not None:
            self.fail(refusal)
            return
        try:
            result = await run.io_bound(query_page, self.name, self.filter, max(page, 0))
        except (RtdbError, ValueError) as exc:
            self.fail(str(exc))
            return
        if result is None:  # the app is shutting down
            return
        self.total, docs = result
        self.page = max(page, 0)
        self.table.rows = [doc_row(d) for d in docs]
        self.table.update()
        pages = max(1, -(-self.total // PAGE_SIZE))
        self.status.set_text(f"{self.total} matching")
        self.status.classes(replace="")
        self.position.set_text(f"page {self.page + 1} of {pages}")
        self.prev.set_enabled(self.page > 0)
        self.next.set_enabled(self.page + 1 < pages)

    def fail(self, text: str) -> None:
        self.status.set_text(text)
        self.status.classes(replace="text-red-700")


@editor_page("/ontologies/{name}/data", title="sofiaflow: ontology data")
async def ontology_data_page(name: str) -> None:
    page_header("Ontologies")
    with ui.column().classes("w-full p-4 gap-3") as body:
        browser = DataBrowser(body, name)
    await browser.run()
