"""`/ontologies/{name}/data`: query an ontology's stored instances with a MongoDB filter, a page at a time, newest
first (by `contextData.timestamp`), with who stored each and from where; a row opens the whole instance as JSON.
The example filter names a field of the ontology's own schema."""

from __future__ import annotations

import json
from typing import Any

from nicegui import run, ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import CODE_THEME, page_header
from sofiaflow.editor.pages._access import query_refusal
from sofiaflow.editor.session import editor_page
from sofiaflow.runtime.data.rtdb import RtdbError

PAGE_SIZE = 20
SHOWN_CHARS = 400
NEWEST_FIRST = [("contextData.timestampMillis", -1), ("_id", -1)]


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
    """(how many match, the documents of page `page` (from 0)), newest first by when they were stored."""
    rtdb = store()
    total = rtdb.count(name, filter_)
    docs = rtdb.find(name, filter_, sort=NEWEST_FIRST, skip=page * PAGE_SIZE, limit=PAGE_SIZE)
    return total, docs


def doc_row(doc: dict[str, Any]) -> dict[str, Any]:
    """A table row: when and how the instance was stored (its contextData), and its body in short."""
    body = {k: v for k, v in doc.items() if k not in ("_id", "contextData")}
    text = json.dumps(body, ensure_ascii=False, sort_keys=True, default=str)
    context = doc.get("contextData") if isinstance(doc.get("contextData"), dict) else {}
    stamp = str(context.get("timestamp") or "")
    return {
        "_id": str(doc.get("_id")),
        "stored": stamp.replace("T", " ").removesuffix("Z") if stamp else "",
        "source": str(context.get("source") or ""),
        "by": str(context.get("device") or context.get("user") or ""),
        "document": text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…",
    }


def example_filter(schema: Any) -> str:
    """A filter on a field the schema really has (the first leaf property, inside a single root object as
    onesait's ontologies wrap their fields): `{"Reading.measure": {"$gt": 0}}`; `{}` for a schema without one."""
    path: list[str] = []
    node = schema if isinstance(schema, dict) else {}
    for _ in range(4):
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        if not props:
            break
        key, sub = next(iter(props.items()))
        path.append(key)
        node = sub if isinstance(sub, dict) else {}
        if node.get("type") != "object":
            break
    if not path or node.get("type") == "object":
        return "{}"
    kind = node.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    value: Any
    if kind in ("number", "integer"):
        value = {"$gt": 0}
    elif kind == "string":
        value = (node.get("enum") or ["…"])[0] if isinstance(node.get("enum"), list) else {"$exists": True}
    elif kind == "boolean":
        value = True
    else:
        value = {"$exists": True}
    return json.dumps({".".join(path): value}, ensure_ascii=False)


def ontology_schema(name: str) -> Any:
    engine = get_context().runtime.engine
    registry = engine.services.get("ontologies") if engine is not None else None
    try:
        return registry.get(name).schema if registry is not None else None
    except Exception:  # noqa: BLE001 - an unknown ontology: no example
        return None


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
                    ui.codemirror("{}", language="JSON", indent="  ", theme=CODE_THEME)
                    .classes("w-2/3 h-28 border")
                    .props("data-testid=query-filter")
                )
                self.box.props('aria-label="Query filter (MongoDB JSON)"')
                with ui.column():
                    ui.button("Run query", icon="search", on_click=self.run).props("data-testid=query-run")
                    ui.label(f"e.g. {example_filter(ontology_schema(name))}").classes(
                        "text-xs text-gray-600"
                    ).props("data-testid=query-example")
            self.status = ui.label("").props("data-testid=query-status")
            columns = [
                {"name": "stored", "label": "Stored (UTC)", "field": "stored", "align": "left"},
                {"name": "source", "label": "Source", "field": "source", "align": "left"},
                {"name": "by", "label": "Device / user", "field": "by", "align": "left"},
                {"name": "open", "label": "", "field": "_id", "align": "left"},
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
            self.table.add_slot(
                "body-cell-open",
                '<q-td :props="props"><q-btn flat dense no-caps size="sm" label="Open" '
                ":aria-label=\"'Open instance ' + props.row._id\" "
                "@click.stop=\"$parent.$emit('open', props.row._id)\" /></q-td>",
            )
            self.table.on("open", lambda e: self.open(e.args))
            self.table.on("rowClick", lambda e: self.open(e.args[1]["_id"] if len(e.args) > 1 else None))
            self.docs: dict[str, dict[str, Any]] = {}
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
        self.docs = {str(d.get("_id")): d for d in docs}
        self.table.rows = [doc_row(d) for d in docs]
        self.table.update()
        pages = max(1, -(-self.total // PAGE_SIZE))
        self.status.set_text(f"{self.total} matching")
        self.status.classes(replace="")
        self.position.set_text(f"page {self.page + 1} of {pages}")
        self.prev.set_enabled(self.page > 0)
        self.next.set_enabled(self.page + 1 < pages)

    def open(self, doc_id: Any) -> None:
        """A dialog with the whole instance, contextData included, as indented JSON."""
        doc = self.docs.get(str(doc_id))
        if doc is None:
            return
        text = json.dumps(doc, ensure_ascii=False, indent=2, default=str)
        with ui.dialog() as dialog, ui.card().classes("w-[48rem] max-w-full"):
            ui.label(f"Instance {doc_id} of {self.name}").classes("text-lg font-semibold")
            ui.code(text, language="json").classes("w-full text-sm").props("data-testid=instance-json")
            ui.button("Close", on_click=dialog.close).props("flat")
        dialog.open()

    def fail(self, text: str) -> None:
        self.status.set_text(text)
        self.status.classes(replace="text-red-700")


@editor_page("/ontologies/{name}/data", title="sofiaflow: ontology data")
async def ontology_data_page(name: str) -> None:
    page_header("Ontologies")
    with ui.column().classes("w-full p-4 gap-3") as body:
        browser = DataBrowser(body, name)
    await browser.run()
