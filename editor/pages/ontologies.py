"""`/ontologies`: the list, and the editor (`/ontologies/new`, `/ontologies/{name}`): a JSON Schema in a code
editor with a sample instance validated live against it while either is typed."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import CODE_THEME, page_header
from sofiaflow.editor.pages._access import audit, may_change_ontology, may_write
from sofiaflow.editor.pages._format import schema_version, when
from sofiaflow.editor.session import current_user, editor_page
from sofiaflow.runtime.data.ontologies import (
    Ontology,
    OntologyError,
    OntologyIncompatibleError,
    OntologyNotFoundError,
    OntologyRegistry,
    OntologyValidationError,
)
from sofiaflow.runtime.data.schema import compile_schema, validation_errors

NEW_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["assetId", "measure"],
    "properties": {"assetId": {"type": "string"}, "measure": {"type": "number"}},
}
NEW_SAMPLE = {"assetId": "sensor-1", "measure": 21.5}


def registry() -> OntologyRegistry:
    engine = get_context().runtime.engine
    ontologies = engine.services.get("ontologies") if engine is not None else None
    if ontologies is None:
        raise RuntimeError("the ontology registry is not running")
    return ontologies


def check_sample(schema_text: str, sample_text: str) -> tuple[bool, list[str]]:
    """(valid, problems) for `sample_text` against `schema_text`; problems name the schema or the sample path."""
    try:
        validator = compile_schema(schema_text)
    except OntologyValidationError as exc:
        return False, [f"schema: {str(exc).removeprefix('schema: ')}"]
    try:
        sample = json.loads(sample_text)
    except ValueError as exc:
        return False, [f"sample: not JSON: {exc}"]
    errors = validation_errors(validator, sample)
    return not errors, [f"sample {e['path'] or '/'}: {e['message']}" for e in errors]


def split_paths(text: str) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def sample_for(ontology: Ontology) -> dict[str, Any]:
    """A first stored instance would be the best sample; without one, a skeleton of the required properties."""
    props = ontology.schema.get("properties") if isinstance(ontology.schema, dict) else None
    required = ontology.schema.get("required", []) if isinstance(ontology.schema, dict) else []
    defaults = {"string": "", "number": 0, "integer": 0, "boolean": False, "object": {}, "array": []}
    out: dict[str, Any] = {}
    for key in required if isinstance(required, list) else []:
        kind = (props or {}).get(key, {}).get("type") if isinstance((props or {}).get(key), dict) else None
        out[key] = defaults.get(kind if isinstance(kind, str) else "", None)
    return out


class OntologyEditor:
    """Name and settings, schema and sample editors, the live verdict, and Save."""

    def __init__(self, container: ui.element, existing: Ontology | None) -> None:
        self.existing = existing
        schema = existing.schema if existing else NEW_SCHEMA
        with container:
            with ui.row().classes("w-full items-start gap-3"):
                self.name = ui.input("Name", value=existing.name if existing else "").props(
                    f"data-testid=ontology-name {'readonly' if existing else ''}"
                )
                self.description = (
                    ui.input("Description", value=existing.description if existing else "")
                    .classes("w-96")
                    .props("data-testid=ontology-description")
                )
                self.window = (
                    ui.number(
                        "Real-time window (days)",
                        format="%d",
                        value=existing.realtime_window_days if existing else None,
                    )
                    .classes("w-56")
                    .props('hint="Empty: kept forever"')
                )
                self.indexes = (
                    ui.input("Indexes", value=", ".join(existing.indexes) if existing else "")
                    .classes("w-56")
                    .props('hint="Fields, comma-separated"')
                )
                self.unique = (
                    ui.input("Unique", value=", ".join(existing.unique) if existing else "")
                    .classes("w-56")
                    .props('hint="Fields, comma-separated"')
                )
                self.history = ui.switch(
                    "Move expired data to history", value=existing.history if existing else False
                )
            with ui.row().classes("w-full gap-4 no-wrap"):
                with ui.column().classes("w-1/2"):
                    ui.label("JSON Schema").classes("font-semibold")
                    self.schema = (
                        ui.codemirror(
                            json.dumps(schema, indent=2),
                            language="JSON",
                            indent="  ",
                            theme=CODE_THEME,
                            on_change=self.check,
                        )
                        .classes("w-full h-96 border")
                        .props("data-testid=schema-editor")
                    )
                with ui.column().classes("w-1/2"):
                    ui.label("Sample instance").classes("font-semibold")
                    sample = sample_for(existing) if existing else NEW_SAMPLE
                    self.sample = (
                        ui.codemirror(
                            json.dumps(sample, indent=2),
                            language="JSON",
                            indent="  ",
                            theme=CODE_THEME,
                            on_change=self.check,
                        )
                        .classes("w-full h-64 border")
                        .props("data-testid=sample-editor")
                    )
                    self.verdict = ui.label("").classes("font-semibold").props("data-testid=sample-verdict")
                    self.problems = (
                        ui.column().classes("gap-0 text-sm text-red-700").props("data-testid=sample-problems")
                    )
            with ui.row().classes("items-center gap-3"):
                save = ui.button(
                    "Create" if existing is None else "Save", icon="save", on_click=self.save
                ).props("data-testid=ontology-save")
                if not self.allowed():
                    save.disable()
                    ui.label(
                        "Read-only: only its owner or an administrator may change this ontology."
                        if existing
                        else "Your role only reads: it cannot create ontologies."
                    ).classes("text-gray-500")
                if existing is not None:
                    ui.button(
                        "Browse data",
                        icon="table_view",
                        on_click=lambda: ui.navigate.to(f"/ontologies/{existing.name}/data"),
                    ).props("flat")
                self.outcome = ui.label("").props("data-testid=ontology-outcome")
        self.check()

    def check(self, *_: Any) -> None:
        valid, problems = check_sample(self.schema.value, self.sample.value)
        self.verdict.set_text("The sample is valid" if valid else f"The sample is invalid ({len(problems)})")
        self.verdict.classes(replace="font-semibold " + ("text-green-700" if valid else "text-red-700"))
        self.problems.clear()
        with self.problems:
            for text in problems[:20]:
                ui.label(text)

    def settings(self) -> dict[str, Any]:
        window = self.window.value
        return {
            "description": self.description.value or "",
            "history": bool(self.history.value),
            "realtime_window_days": int(window) if window not in (None, "") else None,
            "indexes": split_paths(self.indexes.value),
            "unique": split_paths(self.unique.value),
        }

    def allowed(self) -> bool:
        return may_write() if self.existing is None else may_change_ontology(self.existing.owner)

    def save(self) -> None:
        target = self.existing.name if self.existing else self.name.value.strip()
        action = "ontology.create" if self.existing is None else "ontology.update"
        if not self.allowed():
            audit(action, target, "denied", {"message": "not the owner, an administrator or a developer"})
            self.fail("Not allowed: only its owner or an administrator may change this ontology.")
            return
        reg = registry()
        try:
            schema = json.loads(self.schema.value)
        except ValueError as exc:
            self.fail(f"schema: not JSON: {exc}")
            return
        try:
            if self.existing is None:
                created = reg.create(target, schema, owner=current_user(), **self.settings())
                audit(action, created.name)
                ui.navigate.to(f"/ontologies/{created.name}")
                return
            self.existing = reg.update(self.existing.name, schema=schema, **self.settings())
            audit(action, target)
        except OntologyIncompatibleError as exc:
            shown = "; ".join(f"#{f.get('index')}: {f.get('errors')}" for f in exc.failures[:3])
            self.fail(f"{exc} {shown}")
            return
        except (OntologyError, ValueError) as exc:
            self.fail(str(exc))
            return
        self.outcome.set_text(f"Saved {self.existing.name}")
        self.outcome.classes(replace="text-green-700")

    def fail(self, text: str) -> None:
        self.outcome.set_text(text)
        self.outcome.classes(replace="text-red-700")


def visible(name: str) -> bool:
    """Whether this user sees ontology `name` at all (owner, administrator, or shared with them)."""
    engine = get_context().runtime.engine
    permissions = engine.services.get("permissions") if engine is not None else None
    return permissions is None or permissions.access(current_user(), name) is not None


def ontology_list(container: ui.element) -> None:
    columns = [
        {"name": "name", "label": "Name", "field": "name", "align": "left", "sortable": True},
        {
            "name": "description",
            "label": "Description",
            "field": "description",
            "align": "left",
            "style": "white-space: normal; min-width: 16rem; max-width: 40rem",
        },
        {"name": "draft", "label": "JSON Schema", "field": "draft", "align": "left"},
        {"name": "window", "label": "Window (days)", "field": "window"},
        {"name": "updated", "label": "Updated", "field": "updated", "align": "left"},
        {"name": "actions", "label": "", "field": "name", "style": "white-space: nowrap"},
    ]
    rows = [
        {
            "name": o.name,
            "description": o.description,
            "draft": schema_version(o.draft),
            "window": o.realtime_window_days or "forever",
            "updated": when(o.as_dict()["updated"]),
        }
        for o in registry().list()
        if visible(o.name)
    ]
    with container:
        with ui.row().classes("items-center gap-3"):
            ui.label("Ontologies").classes("text-lg font-semibold")
            ui.button("New ontology", icon="add", on_click=lambda: ui.navigate.to("/ontologies/new")).props(
                "data-testid=ontology-new"
            ).set_visibility(may_write())
        table = (
            ui.table(columns=columns, rows=rows, row_key="name", pagination=25)
            .classes("w-full")
            .props("dense flat bordered data-testid=ontology-table")
        )
        table.add_slot(
            "body-cell-actions",
            """
            <q-td :props="props">
              <q-btn flat dense label="Edit" @click="$parent.$emit('edit', props.row.name)" />
              <q-btn flat dense label="Data" @click="$parent.$emit('data', props.row.name)" />
            </q-td>""",
        )
        table.on("edit", lambda e: ui.navigate.to(f"/ontologies/{e.args}"))
        table.on("data", lambda e: ui.navigate.to(f"/ontologies/{e.args}/data"))


@editor_page("/ontologies", title="sofiaflow: ontologies")
def ontologies_page() -> None:
    page_header("Ontologies")
    with ui.column().classes("w-full p-4 gap-3") as body:
        ontology_list(body)


@editor_page("/ontologies/new", title="sofiaflow: new ontology")
def new_ontology_page() -> None:
    page_header("Ontologies")
    with ui.column().classes("w-full p-4 gap-3") as body:
        ui.label("New ontology").classes("text-lg font-semibold")
        OntologyEditor(body, None)


@editor_page("/ontologies/{name}", title="sofiaflow: ontology")
def edit_ontology_page(name: str) -> None:
    page_header("Ontologies")
    with ui.column().classes("w-full p-4 gap-3") as body:
        try:
            if not visible(name):  # as the API: an ontology one holds no right on does not exist for them
                raise OntologyNotFoundError(f"no ontology named {name!r}")
            ontology = registry().get(name)
        except OntologyNotFoundError as exc:
            ui.label(str(exc)).classes("text-red-700").props("data-testid=ontology-missing")
            return
        ui.label(f"Ontology {name}").classes("text-lg font-semibold")
        OntologyEditor(body, ontology)
