"""The property form of a node, generated from its type's config JSON schema; validated on Done.

Fields: text, number, checkbox, select (enums and `x-choices`), typed inputs (`foo` + `fooType`),
rule lists (change, switch), inject properties, a Python code editor (`func`, `initialize`,
`finalize`), references to config nodes (create or edit in place), JSON for anything else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from sofiaflow.editor.properties.rules import ChangeRules, InjectProps, SwitchRules
from sofiaflow.editor.properties.typed_input import TypedInput, show_error
from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

HIDDEN = {"id", "type", "z", "g", "wires", "x", "y", "d", "name", "credentials"}
CODE_FIELDS = {"func", "initialize", "finalize"}
CONFIG_REFS = {
    "broker": "mqtt-broker",
    "tls": "tls-config",
    "proxy": "http proxy",
    "server": "websocket-listener",
    "client": "websocket-client",
}
NEW_CONFIG = "__new__"
TYPE_HIDDEN = {
    "change": {"action", "property", "from", "to", "reg"},  # pre-0.18 Node-RED fields, kept on load
    "switch": {"outputs"},
}  # one per rule, set on save
FIELD_CHOICES = {
    ("switch", "checkall"): {"true": "checking all rules", "false": "stopping after the first match"}
}


def _plain(schema: dict) -> dict:
    """The non-null alternative of an `anyOf [X, null]` schema."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return {**schema, **options[0]} if len(options) == 1 else schema


def _title(key: str) -> str:
    return key


class _Field:
    """One form field: reads its part of the node, checks it, shows an error on itself."""

    def __init__(
        self,
        key: str,
        widget: Any,
        read: Callable[[], dict],
        check: Callable[[], str | None] | None = None,
        error_target: Any = None,
    ) -> None:
        self.key, self.widget, self._read, self._check = key, widget, read, check
        self.error_target = error_target if error_target is not None else widget

    def read(self) -> dict:
        return self._read()

    def check(self) -> str | None:
        return self._check() if self._check else None

    def show_error(self, message: str | None) -> None:
        if isinstance(self.error_target, TypedInput):
            self.error_target.set_error(message)
        elif hasattr(self.error_target, "props"):
            show_error(self.error_target, message)
        if message:
            ui.notify(f"{self.key}: {message}", type="negative", position="bottom")


def _json_field(key: str, value: Any, mark: str) -> _Field:
    text = value if isinstance(value, str) else json.dumps(value)
    widget = ui.input(_title(key), value=text).props("dense outlined").classes("w-full").props(testid(mark))
    was_str = isinstance(value, str) or value is None

    def read() -> dict:
        if was_str:
            return {key: widget.value}
        try:
            return {key: json.loads(widget.value)}
        except ValueError:
            return {key: widget.value}

    def check() -> str | None:
        if was_str:
            return None
        try:
            json.loads(widget.value or "null")
        except ValueError as exc:
            return f"invalid JSON: {exc}"
        return None

    return _Field(key, widget, read, check)


class PropertyForm:
    """The dialog for one node (or config node); `on_done(node_id)` after a valid save."""

    def __init__(self, ws: Workspace, node_id: str, on_done: Callable[[str], None] | None = None) -> None:
        self.ws = ws
        self.node = dict(ws.doc.get(node_id) or {})
        self.entry = ws.types.get(self.node.get("type", ""), {})
        self.on_done = on_done
        self.fields: list[_Field] = []
        with (
            ui.dialog().props("position=right full-height") as self.dialog,
            ui.card().classes("w-[520px] max-w-full h-full").props(testid("properties")),
        ):
            with ui.row().classes("w-full items-center"):
                ui.label(f"Edit {self.node.get('type')} node").classes("text-lg font-semibold")
                ui.space()
                ui.button("Cancel", on_click=self.dialog.close).props("flat no-caps")
                ui.button("Done", on_click=self.save).props("color=red-7 no-caps").props(
                    testid("properties-done")
                )
            with ui.scroll_area().classes("w-full grow"):
                self._build()
            with ui.row().classes("w-full items-center"):
                if "x" in self.node:
                    self.enabled = ui.switch("enabled", value=not self.node.get("d"))
                else:
                    self.enabled = None
                ui.space()
                ui.button("Delete", icon="delete", on_click=self.delete).props("flat color=negative no-caps")
        self.dialog.open()

    # ----- building --------------------------------------------------------------------------------
    def _build(self) -> None:
        schema = self.entry.get("schema", {})
        props = schema.get("properties", {})
        name = (
            ui.input("Name", value=self.node.get("name") or "")
            .props("dense outlined")
            .classes("w-full")
            .props(testid("prop-name"))
        )
        self.fields.append(_Field("name", name, lambda: {"name": name.value}))
        typed = {k[: -len("Type")] for k in props if k.endswith("Type") and k[: -len("Type")] in props}
        hidden = HIDDEN | TYPE_HIDDEN.get(self.node.get("type", ""), set())
        for key, spec in props.items():
            if key in hidden or (key.endswith("Type") and key[: -len("Type")] in typed):
                continue
            value = self.node.get(key, spec.get("default"))
            type_default = props.get(f"{key}Type", {}).get("default")
            self.fields.append(self._field(key, _plain(spec), value, key in typed, type_default))
        credentials = self.entry.get("credentials") or {}
        if credentials:
            self.fields.append(self._credentials_field(credentials))

    def _credentials_field(self, spec: dict[str, str]) -> _Field:
        """Credential inputs: text ones show the stored value, passwords never do (leave empty to keep).
        What is typed goes with the next deploy as the node's `credentials`, never into the flow JSON."""
        deployer = getattr(self.ws.runtime, "deployer", None)
        stored = deployer.credentials.get(self.node["id"]) if deployer is not None else {}
        pending = self.node.get("credentials") or {}
        inputs: dict[str, tuple[Any, str]] = {}
        ui.label("Credentials").classes("text-sm text-gray-600 mt-2")
        for key, kind in spec.items():
            current = pending.get(key, (stored or {}).get(key, ""))
            if kind == "password":
                hint = "stored; type to replace" if (stored or {}).get(key) else ""
                widget = ui.input(
                    key,
                    password=True,
                    password_toggle_button=True,
                    placeholder=hint,
                    value=pending.get(key, ""),
                )
                inputs[key] = (widget, "")
            else:
                widget = ui.input(key, value="" if current is None else str(current))
                inputs[key] = (widget, "" if current is None else str(current))
            widget.props("dense outlined autocomplete=off").classes("w-full").props(testid(f"cred-{key}"))

        def read() -> dict:
            typed = {k: w.value for k, (w, before) in inputs.items() if (w.value or "") != before}
            return {"credentials": {**pending, **typed}} if typed or pending else {}

        return _Field("credentials", None, read)

    def _field(
        self, key: str, spec: dict, value: Any, typed: bool, type_default: str | None = None
    ) -> _Field:
        node_type = self.node.get("type")
        mark = f"prop-{key}"
        if node_type == "inject" and key == "props":
            editor = InjectProps(self.node, mark)
            return _Field(key, editor, editor.node_props, editor.check)
        if key == "rules" and node_type in ("change", "switch"):
            editor = (ChangeRules if node_type == "change" else SwitchRules)(list(value or []), mark)
            return _Field(key, editor, lambda: {"rules": editor.value}, editor.check)
        if typed:
            ti = TypedInput(_title(key), value, self.node.get(f"{key}Type") or type_default, mark=mark)
            if node_type == "inject" and key in ("payload", "topic"):
                ti.row.set_visibility(False)  # edited as the first message properties
                return _Field(key, ti, lambda: {}, None, ti)
            return _Field(key, ti, lambda: {key: ti.value, f"{key}Type": ti.vtype}, ti.check, ti)
        if key in CODE_FIELDS:
            ui.label(key).classes("text-sm text-gray-600 mt-2")
            code = (
                ui.codemirror(value or "", language="Python")
                .classes("w-full h-64 border")
                .props(testid(mark))
            )
            return _Field(key, code, lambda: {key: code.value})
        fixed = FIELD_CHOICES.get((node_type, key))
        if fixed:
            return self._choice_field(key, value if value in fixed else str(value).lower(), fixed, mark)
        choices = spec.get("x-choices")
        if choices:
            return self._choice_field(key, value, self._service_choices(choices), mark)
        if spec.get("enum"):
            return self._choice_field(key, value, {v: str(v) for v in spec["enum"]}, mark)
        ref_type = spec.get("x-config-type") or (
            CONFIG_REFS.get(key) if not self.entry.get("config") else None
        )
        if ref_type and ref_type in self.ws.types:
            return self._config_ref(key, ref_type, value, mark)
        kind = spec.get("type")
        if kind == "boolean" or isinstance(value, bool) and kind is None:
            box = ui.checkbox(_title(key), value=bool(value)).props(testid(mark))
            return _Field(key, box, lambda: {key: bool(box.value)})
        if kind in ("number", "integer"):
            return self._number_field(key, value, kind, mark)
        if kind == "string":
            text = (
                ui.input(_title(key), value="" if value is None else str(value))
                .props("dense outlined")
                .classes("w-full")
                .props(testid(mark))
            )
            return _Field(key, text, lambda: {key: text.value})
        return _json_field(key, value, mark)

    def _number_field(self, key: str, value: Any, kind: str, mark: str) -> _Field:
        box = (
            ui.input(_title(key), value="" if value is None else str(value))
            .props("dense outlined")
            .classes("w-full")
            .props(testid(mark))
        )

        def parse() -> Any:
            text = (box.value or "").strip()
            if not text:
                return None
            return (
                int(text)
                if kind == "integer"
                else float(text)
                if any(c in text for c in ".eE")
                else int(text)
            )

        def check() -> str | None:
            try:
                parse()
            except ValueError:
                return f"{box.value!r} is not {'an integer' if kind == 'integer' else 'a number'}"
            return None

        def read() -> dict:
            try:
                return {key: parse()}
            except ValueError:
                return {key: box.value}

        return _Field(key, box, read, check)

    def _choice_field(self, key: str, value: Any, options: dict, mark: str) -> _Field:
        if value not in options and value not in (None, ""):
            options = {**options, value: f"{value} (unknown)"}
        select = (
            ui.select(options, value=value if value in options else None, label=_title(key), with_input=True)
            .props("dense outlined options-dense")
            .classes("w-full")
            .props(testid(mark))
        )
        return _Field(key, select, lambda: {key: select.value if select.value is not None else ""})

    def _service_choices(self, service: str) -> dict:
        engine = getattr(self.ws.runtime, "engine", None)
        registry = engine.services.get(service) if engine is not None else None
        try:
            return {o.name: o.name for o in registry.list()} if registry is not None else {}
        except Exception:  # noqa: BLE001 - an unavailable service leaves the list empty
            return {}

    def _config_ref(self, key: str, ref_type: str, value: Any, mark: str) -> _Field:
        def options() -> dict:
            out = {"": "none"}
            out.update(
                {
                    n["id"]: n.get("name") or f"{ref_type} {n['id'][:6]}"
                    for n in self.ws.doc.config_nodes(ref_type)
                }
            )
            out[NEW_CONFIG] = f"add new {ref_type}..."
            return out

        with ui.row().classes("w-full items-center no-wrap"):
            select = (
                ui.select(options(), value=value if value in options() else "", label=f"{key} ({ref_type})")
                .props("dense outlined options-dense")
                .classes("grow")
                .props(testid(mark))
            )
            edit = ui.button(icon="edit").props("flat dense").tooltip(f"edit this {ref_type}")

        def opened(config_id: str) -> None:
            select.set_options(options(), value=config_id)

        def changed(e: Any) -> None:
            if e.value == NEW_CONFIG:
                entry = self.ws.types[ref_type]
                created = self.ws.doc.add_config_node(ref_type, entry.get("defaults"))
                select.set_options(options(), value=created["id"])
                PropertyForm(self.ws, created["id"], on_done=opened)

        select.on_value_change(changed)
        edit.on_click(lambda: PropertyForm(self.ws, select.value, on_done=opened) if select.value else None)
        return _Field(key, select, lambda: {key: "" if select.value in (None, NEW_CONFIG) else select.value})

    # ----- saving ----------------------------------------------------------------------------------
    def collect(self) -> dict:
        props: dict[str, Any] = {}
        for field in self.fields:
            props.update(field.read())
        if self.enabled is not None:
            props["d"] = not self.enabled.value
        return props

    def validate(self, props: dict) -> dict[str, str]:
        """field -> problem: typed values first, then the node type's config model."""
        problems = {}
        for field in self.fields:
            problem = field.check()
            if problem:
                problems[field.key] = problem
        cls = self.ws.runtime.registry.find(self.node.get("type", ""))
        if cls is not None and not problems:
            from pydantic import ValidationError

            try:
                cls.Config.model_validate({**self.node, **props})
            except ValidationError as exc:
                for err in exc.errors():
                    loc = err.get("loc") or ("?",)
                    problems.setdefault(str(loc[0]), err.get("msg", "invalid"))
        return problems

    def save(self) -> None:
        props = self.collect()
        problems = self.validate(props)
        for field in self.fields:
            field.show_error(problems.get(field.key))
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
