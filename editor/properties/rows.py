"""Lists edited as rows instead of raw JSON: objects with named columns, key/value objects, lists of strings.

`rows_field`: a list of objects, one row each, one control per column (`x-columns`: {column: {"title",
"enum" or "x-choices", "type"}}); columns not named are kept as they were. `keyvalue_field`: an object, one
key/value row per entry. `strings_field`: a list of strings, one row each.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.properties.schema import FieldSpec, choice_map, humanize
from sofiaflow.editor.properties.typed_input import show_error
from sofiaflow.editor.properties.widgets import FormField, text_field, truthy
from sofiaflow.editor.testid import testid


class RowList:
    """Rows of controls with a remove button each and an "add" button; `columns` name -> column spec."""

    def __init__(self, spec: FieldSpec, items: list[dict], columns: dict[str, dict], mark: str) -> None:
        self.spec, self.columns, self.mark = spec, columns, mark
        self.rows: list[tuple[ui.element, dict[str, Any], dict]] = []
        with ui.column().classes("w-full gap-1 min-w-0") as self.container:
            ui.label(spec.label).classes("text-sm text-gray-700 mt-2")
            if spec.help:
                ui.label(spec.help).classes("text-xs text-gray-500")
            self.box = ui.column().classes("w-full gap-1").props(testid(mark))
            for item in items:
                self.add(item)
            ui.button(f"add {spec.label.lower()}", icon="add", on_click=lambda: self.add({})).props(
                "flat dense no-caps"
            ).props(testid(f"{mark}-add"))

    def add(self, item: dict) -> None:
        index = len(self.rows)
        with self.box, ui.row().classes("w-full items-start no-wrap gap-1") as row:
            widgets = {
                name: self._control(name, col, item.get(name), index) for name, col in self.columns.items()
            }
            ui.button(icon="close", on_click=lambda r=row: self.remove(r)).props(
                "flat dense round size=sm aria-label=remove"
            )
        self.rows.append((row, widgets, dict(item)))

    def _control(self, name: str, col: dict, value: Any, index: int) -> Any:
        label = col.get("title") or humanize(name)
        mark = f"{self.mark}-{index}-{name}"
        choices = col.get("x-choices")
        options = (
            choice_map(choices, col)
            if choices
            else ({v: str(v) for v in col["enum"]} if col.get("enum") else None)
        )
        default = col.get("default")
        if options:
            current = value if value in options else default if default in options else next(iter(options))
            return (
                ui.select(options, value=current, label=label)
                .props("dense outlined options-dense")
                .classes("grow min-w-[6rem]")
                .props(testid(mark))
            )
        if col.get("type") == "boolean":
            return ui.checkbox(label, value=truthy(value if value is not None else default)).props(
                testid(mark)
            )
        shown = "" if value is None else str(value)
        return (
            ui.input(label, value=shown)
            .props("dense outlined")
            .classes("grow min-w-[6rem]")
            .props(testid(mark))
        )

    def remove(self, row: ui.element) -> None:
        self.rows = [r for r in self.rows if r[0] is not row]
        self.box.remove(row)

    def values(self) -> list[dict]:
        out = []
        for _row, widgets, before in self.rows:
            item = dict(before)
            for name, widget in widgets.items():
                item[name] = bool(widget.value) if isinstance(widget, ui.checkbox) else widget.value
            out.append(item)
        return out

    def check(self) -> str | None:
        """Rows whose first column is empty are refused (a parameter without a name, a header without one)."""
        first = next(iter(self.columns), None)
        problem = None
        for _row, widgets, _before in self.rows:
            widget = widgets.get(first)
            if isinstance(widget, ui.input):
                missing = not (widget.value or "").strip()
                show_error(widget, "required" if missing else None)
                if missing and problem is None:
                    problem = f"every row needs a {humanize(first).lower()}"
        return problem


def rows_field(spec: FieldSpec, value: Any, mark: str) -> FormField:
    if (
        isinstance(value, str) and value.strip()
    ):  # the other form Node-RED allows (a JSONata text): kept as text
        return text_field(spec, value, mark)
    items = [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
    editor = RowList(spec, items, spec.columns or {"name": {}}, mark)
    return FormField(
        spec.key, editor, lambda: {spec.key: editor.values()}, editor.check, None, editor.container
    )


def keyvalue_field(spec: FieldSpec, value: Any, mark: str) -> FormField:
    items = [{"key": k, "value": v if isinstance(v, str) else str(v)} for k, v in (value or {}).items()]
    columns = spec.columns or {"key": {"title": "Name"}, "value": {"title": "Value"}}
    editor = RowList(spec, items if isinstance(value, dict) else [], columns, mark)
    keys = list(columns)

    def read() -> dict:
        return {spec.key: {r[keys[0]]: r[keys[1]] for r in editor.values() if (r[keys[0]] or "").strip()}}

    return FormField(spec.key, editor, read, editor.check, None, editor.container)


def strings_field(spec: FieldSpec, value: Any, mark: str) -> FormField:
    items = [{"value": v} for v in value] if isinstance(value, list) else []
    column = spec.columns or {"value": {"title": spec.label}}
    editor = RowList(spec, items, column, mark)
    name = next(iter(column))

    def read() -> dict:
        return {spec.key: [r[name] for r in editor.values() if str(r[name] or "").strip()]}

    return FormField(spec.key, editor, read, None, None, editor.container)
