"""One form field from its `FieldSpec`: the control for its widget kind, filled with the node's value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sofiaflow.editor.properties.config_ref import config_ref_field
from sofiaflow.editor.properties.node_pick import nodes_field, scope_field
from sofiaflow.editor.properties.rows import keyvalue_field, rows_field, strings_field
from sofiaflow.editor.properties.rules import ChangeRules, InjectProps, SwitchRules
from sofiaflow.editor.properties.schema import FieldSpec
from sofiaflow.editor.properties.typed_input import VALUE_TYPES, TypedInput
from sofiaflow.editor.properties.widgets import (
    FormField,
    checkbox_field,
    code_field,
    json_field,
    number_field,
    select_field,
    text_field,
)
from sofiaflow.editor.workspace import Workspace


def build_field(
    ws: Workspace, node: dict, spec: FieldSpec, value: Any, open_config: Callable[[str, Callable], Any]
) -> FormField:
    mark = f"prop-{spec.key}"
    kind = spec.widget
    if kind == "inject-props":
        editor = InjectProps(node, mark)
        return FormField(spec.key, editor, editor.node_props, editor.check, container=editor.box)
    if kind in ("change-rules", "switch-rules"):
        editor = (ChangeRules if kind == "change-rules" else SwitchRules)(list(value or []), mark)
        return FormField(
            spec.key, editor, lambda: {spec.key: editor.value}, editor.check, container=editor.box
        )
    if kind == "typed":
        return typed_field(node, spec, value, mark)
    if kind == "code":
        return code_field(spec, value, mark)
    if kind == "config":
        if spec.config_type in ws.types:
            return config_ref_field(ws, spec, value, mark, open_config)
        return text_field(spec, value, mark)
    if kind == "service":
        return select_field(spec, value, service_choices(ws, spec.service), mark)
    if kind == "select":
        return select_field(spec, value, dict(spec.options), mark)
    if kind == "checkbox":
        return checkbox_field(spec, value, mark)
    if kind in ("number", "integer"):
        return number_field(spec, value, mark)
    if kind == "rows":
        return rows_field(spec, value, mark)
    if kind == "keyvalue":
        return keyvalue_field(spec, value, mark)
    if kind == "strings":
        return strings_field(spec, value, mark)
    if kind == "nodes":
        return nodes_field(ws, node, spec, value, mark)
    if kind == "scope":
        return scope_field(ws, node, spec, value, mark)
    if kind == "text":
        return text_field(spec, value, mark)
    return json_field(spec, value, mark)


def typed_field(node: dict, spec: FieldSpec, value: Any, mark: str) -> FormField:
    """A value and its type; with the type "full" (debug's output), Node-RED's `complete` "true"/"false"."""
    vtype = node.get(spec.type_key) or spec.type_default
    full = "full" in spec.types
    if full:
        if value in (True, "true") or vtype == "full":
            value, vtype = "", "full"
        elif value in (False, "false", "", None):
            value, vtype = "payload", "msg"
    if vtype == "val" and "val" not in spec.types:
        vtype = legacy_val_type(value)
    ti = TypedInput(spec.label, value, vtype, list(spec.types) or VALUE_TYPES, mark=mark, help=spec.help)
    if node.get("type") == "inject" and spec.key in ("payload", "topic"):
        ti.row.set_visibility(False)  # edited as the first message properties
        return FormField(spec.key, ti, lambda: {}, None, ti)

    def read() -> dict:
        if full and ti.vtype == "full":
            return {spec.key: "true", spec.type_key: "full"}
        return {spec.key: ti.value, spec.type_key: ti.vtype}

    return FormField(spec.key, ti, read, ti.check, ti, current=lambda: ti.vtype)


def legacy_val_type(value: Any) -> str:
    """The kind Node-RED's editor shows for a value stored with the old kind "val" (a new trigger's): true or
    false as a boolean, anything else as a string (null stays "val": sent as null, which no kind here says)."""
    if value in ("true", "false", True, False):
        return "bool"
    return "val" if value == "null" else "str"


def service_choices(ws: Workspace, service: str) -> dict:
    """value -> label from a platform service's `list()` (ontologies, APIs); empty when it is not running."""
    engine = getattr(ws.runtime, "engine", None)
    registry = engine.services.get(service) if engine is not None else None
    try:
        items = registry.list() if registry is not None else []
        return {o.name: o.name for o in items}
    except Exception:  # noqa: BLE001 - an unavailable service leaves the list empty
        return {}
