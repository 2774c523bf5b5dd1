"""The edit panel of a node (or config node): fields from its config schema (see schema.py), Done validates.

The panel: the node's name, its fields grouped in sections (`x-section`, a bar at the top jumps to each),
credentials, a Help button; fields with `x-show-if` follow the fields they depend on. Done checks each field
(typed values, numbers, JSON, required rows) and then the node type's config model, the same check a deploy
makes, and puts each problem on its field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from sofiaflow.editor.properties.builders import build_field
from sofiaflow.editor.properties.credentials import credentials_field
from sofiaflow.editor.properties.help_button import help_button
from sofiaflow.editor.properties.schema import FieldSpec, form_fields
from sofiaflow.editor.properties.widgets import ENV_VARIABLE, FormField
from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

PANEL_CSS = """
.sf-properties .q-scrollarea__content { max-width: 100%; }
.sf-properties .q-scrollarea__container { overflow-x: hidden !important; }
.sf-properties .sf-code .cm-editor { height: 100%; max-width: 100%; }
.sf-properties .sf-code .cm-scroller { overflow: auto; }
"""
DEFAULT_SECTION = "Properties"
SECURITY = "Security"


class PropertyForm:
    """The dialog for one node (or config node); `on_done(node_id)` after a valid save."""

    def __init__(self, ws: Workspace, node_id: str, on_done: Callable[[str], None] | None = None) -> None:
        self.ws = ws
        self.node = dict(ws.doc.get(node_id) or {})
        self.entry = ws.types.get(self.node.get("type", ""), {})
        self.on_done = on_done
        self.fields: list[FormField] = []
        ui.add_css(PANEL_CSS, shared=True)
        with (
            ui.dialog().props("position=right full-height") as self.dialog,
            ui.card()
            .classes("w-[560px] max-w-full h-full no-wrap sf-properties")
            .style("overflow-x: hidden")
            .props(testid("properties")),
        ):
            with ui.row().classes("w-full items-center no-wrap"):
                ui.label(f"Edit {self.node.get('type')} node").classes("text-lg font-semibold truncate")
                ui.space()
                help_button(ws, self.node.get("type", ""), self.entry.get("help") or "")
                ui.button("Cancel", on_click=self.dialog.close).props("flat no-caps")
                ui.button("Done", on_click=self.save).props("color=red-7 no-caps").props(
                    testid("properties-done")
                )
            self.nav = ui.row().classes("w-full gap-1")
            with ui.scroll_area().classes("w-full grow min-w-0"):
                self._build()
            with ui.row().classes("w-full items-center"):
                if "x" in self.node:
                    self.enabled = ui.switch("Enabled", value=not self.node.get("d"))
                else:
                    self.enabled = None
                ui.space()
                ui.button("Delete", icon="delete", on_click=self.delete).props("flat color=negative no-caps")
        self._refresh_visibility()
        self.dialog.open()

    # ----- building --------------------------------------------------------------------------------
    def _build(self) -> None:
        node_type = self.node.get("type", "")
        specs = form_fields(node_type, self.entry.get("schema", {}))
        name = (
            ui.input("Name", value=self.node.get("name") or "")
            .props("dense outlined")
            .classes("w-full")
            .props(testid("prop-name"))
        )
        self.fields.append(FormField("name", name, lambda: {"name": name.value}))
        credentials = self.entry.get("credentials") or {}
        sections: dict[str, list[FieldSpec]] = {}
        for spec in specs:
            sections.setdefault(spec.section or DEFAULT_SECTION, []).append(spec)
        named = [s for s in sections if s != DEFAULT_SECTION]
        credentials_in = SECURITY if named else DEFAULT_SECTION
        if credentials and credentials_in not in sections:  # as Node-RED: Security second
            ordered = list(sections.items())
            ordered.insert(1 if named else len(ordered), (credentials_in, []))
            sections = dict(ordered)
        for section, members in sections.items():
            if named:
                self._section_heading(section)
            for spec in members:
                self._add(spec)
            if credentials and section == credentials_in:
                self.fields.append(credentials_field(self.ws, self.node, credentials))
        for field in self.fields:
            widget = field.widget
            if hasattr(widget, "on_value_change"):
                widget.on_value_change(lambda _e: self._refresh_visibility())

    def _section_heading(self, section: str) -> None:
        heading = ui.label(section).classes("text-base font-semibold mt-3 border-b w-full")
        script = f"document.getElementById('{heading.html_id}').scrollIntoView({{behavior: 'smooth'}})"
        with self.nav:
            ui.button(section, on_click=lambda: ui.run_javascript(script)).props(
                "flat dense no-caps size=sm"
            ).props(testid(f"section-{section.lower()}"))

    def _add(self, spec: FieldSpec) -> None:
        value = self.node.get(spec.key, spec.default)
        field = build_field(self.ws, self.node, spec, value, self._open_config)
        field.spec = spec
        self.fields.append(field)

    def _open_config(self, config_id: str, on_done: Callable[[str], None]) -> PropertyForm:
        return PropertyForm(self.ws, config_id, on_done=on_done)

    def _refresh_visibility(self) -> None:
        values = {**self.node, **{f.key: f.current() for f in self.fields if f.spec is not None}}
        for field in self.fields:
            if field.spec is not None and field.spec.show_if:
                field.set_visible(field.spec.shown_for(values))

    def _shown(self, field: FormField) -> bool:
        if field.spec is None or not field.spec.show_if:
            return True
        values = {**self.node, **{f.key: f.current() for f in self.fields if f.spec is not None}}
        return field.spec.shown_for(values)

    # ----- saving ----------------------------------------------------------------------------------
    def collect(self) -> dict:
        props: dict[str, Any] = {}
        for field in self.fields:
            props.update(field.read())
        if self.enabled is not None:
            props["d"] = not self.enabled.value
        return props

    def validate(self, props: dict) -> dict[str, str]:
        """field key -> problem: each shown field's own check first, then the node type's config model."""
        problems = {}
        for field in self.fields:
            problem = field.check() if self._shown(field) else None
            if problem:
                problems[field.key] = problem
        cls = self.ws.runtime.registry.find(self.node.get("type", ""))
        if cls is not None and not problems:
            problems.update(model_problems(cls, {**self.node, **props}, self._owner_of))
        return problems

    def _owner_of(self, key: str) -> str:
        """The form field showing stored property `key` (a typed input also owns its type property)."""
        for field in self.fields:
            if field.key == key or (field.spec is not None and field.spec.type_key == key):
                return field.key
        return key

    def save(self) -> None:
        props = self.collect()
        problems = self.validate(props)
        keys = {f.key for f in self.fields}
        for field in self.fields:
            field.show_error(problems.get(field.key))
        for key, problem in problems.items():
            if key not in keys:
                ui.notify(f"{key}: {problem}", type="negative", position="bottom")
        if problems:
            return
        outputs = None
        if self.node.get("type") == "switch":
            outputs = max(1, len(props.get("rules", [])))
            props["outputs"] = outputs
        elif isinstance(props.get("outputs"), int):
            outputs = max(0, props["outputs"])
        self.ws.doc.update(self.node["id"], props, outputs=outputs)
        self.dialog.close()
        self.ws.redraw()
        if self.on_done is not None:
            self.on_done(self.node["id"])

    def delete(self) -> None:
        self.ws.doc.delete([self.node["id"]])
        self.dialog.close()
        self.ws.redraw()


def _names_env_variable(node: dict, loc: tuple) -> bool:
    """Whether the property at a pydantic error location is a whole `${VAR}` (or `$(VAR)`)."""
    value: Any = node
    for key in loc:
        try:
            value = value[key]
        except (KeyError, IndexError, TypeError):
            return False
        if isinstance(value, str):
            return ENV_VARIABLE.match(value) is not None
    return False


def model_problems(cls: Any, node: dict, owner: Callable[[str], str] = str) -> dict[str, str]:
    """What the node type's config model refuses in `node`, by form field: the check a deploy makes. A property
    that is a whole `${VAR}` is not refused here: the deploy fills it from the env first, then checks it."""
    from pydantic import ValidationError

    try:
        cls.Config.model_validate(node)
    except ValidationError as exc:
        problems: dict[str, str] = {}
        for err in exc.errors():
            loc = err.get("loc") or ("?",)
            if _names_env_variable(node, loc):
                continue
            message = str(err.get("msg", "invalid"))
            problems.setdefault(owner(str(loc[0])), message.removeprefix("Value error, "))
        return problems
    return {}
