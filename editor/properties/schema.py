"""From a node type's config JSON schema to the form's fields: which control, label, help, section, when shown.

Pure data, no UI: `form_fields(node_type, schema)` gives one `FieldSpec` per shown property, in
the schema's order. What a config model may say about a field (pydantic `Field(title=..., description=...,
json_schema_extra={...})`):

- `x-widget`: "code" (with `x-language`: python, javascript, sql, json, mustache), "rows" (a list of objects
  edited as rows; `x-columns`: [{"key": column, "title": ..., "enum"/"x-choices": ..., "type": ...}]), "keyvalue"
  (an object edited as key/value rows), "strings" (a list of strings), "nodes" (other nodes of the flow,
  `x-node-types`), "scope" (all nodes / the group / chosen nodes), "typed" (a typed input; `x-type-key`,
  `x-types`), "checkbox", "text", "hidden".
- `x-choices`: fixed choices as [[value, label], ...] (in that order) or {value: label}, or a platform service
  name ("ontologies", "api-manager").
- `x-config`: the config node type the field references (a picker with "Add new ...").
- `x-section`: the tab the field sits on (fields without one sit on the first tab).
- `x-show-if`: {"other field": value or [values]}: shown only when the other field holds one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ALWAYS_HIDDEN = frozenset({"id", "type", "z", "g", "wires", "x", "y", "d", "name", "credentials"})
LEGACY_HIDDEN: dict[str, frozenset[str]] = {
    "change": frozenset(
        {"action", "property", "from", "to", "reg"}
    ),  # pre-0.18 Node-RED fields, kept on load
    "switch": frozenset({"outputs"}),  # one per rule, set on save
    "link in": frozenset({"mode"}),  # only link out sends back to a caller
}
"""Per node type, stored properties Node-RED does not show either."""

CODE_FIELDS = {"func": "python", "initialize": "python", "finalize": "python"}
LANGUAGES = {
    "python": "Python",
    "javascript": "JavaScript",
    "sql": "SQL",
    "json": "JSON",
    "mustache": "Jinja2",
}
"""Our language names -> the code editor's (mustache is highlighted as Jinja2: the same {{ }} tags)."""

WORDS = {
    "qos": "QoS",
    "url": "URL",
    "tls": "TLS",
    "id": "ID",
    "ipv": "IP version",
    "nl": "No local",
    "rap": "Retain as published",
    "rh": "Retained handling",
    "hb": "Heartbeat",
    "chr": "Child property key",
    "attr": "Attribute key",
}
"""Labels for short Node-RED names a plain split would not explain; other names are split into words."""


@dataclass(frozen=True)
class FieldSpec:
    """One form field: `widget` is one of WIDGETS; `options` value -> label for selects."""

    key: str
    label: str
    widget: str
    help: str = ""
    options: dict[Any, str] = field(default_factory=dict)
    service: str = ""
    language: str = ""
    section: str = ""
    show_if: dict[str, Any] = field(default_factory=dict)
    config_type: str = ""
    columns: dict[str, dict] = field(default_factory=dict)
    type_key: str = ""
    types: tuple[str, ...] = ()
    type_default: str | None = None
    default: Any = None
    schema_type: str | None = None

    def shown_for(self, values: dict[str, Any]) -> bool:
        """Whether the field applies given the form's current `values` (its `x-show-if`)."""
        for other, wanted in self.show_if.items():
            allowed = wanted if isinstance(wanted, list) else [wanted]
            current = values.get(other)
            if not any(_same(current, a) for a in allowed):
                return False
        return True


WIDGETS = (
    "text",
    "number",
    "integer",
    "checkbox",
    "select",
    "service",
    "typed",
    "code",
    "config",
    "rows",
    "keyvalue",
    "strings",
    "nodes",
    "scope",
    "json",
    "change-rules",
    "switch-rules",
    "inject-props",
)


def _same(a: Any, b: Any) -> bool:
    """Equal as Node-RED compares stored values: 1 == "1", True == "true"."""
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).lower() == str(b).lower()
    return a == b or str(a) == str(b)


def plain(schema: dict) -> dict:
    """The non-null alternative of an `anyOf [X, null]` schema, merged with its own keys."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        merged = {**schema, **options[0]}
        merged.pop("anyOf", None)
        return merged
    return schema


def humanize(key: str) -> str:
    """A label for a property without a title: `birthRetain` -> "Birth retain", `qos` -> "QoS"."""
    if key in WORDS:
        return WORDS[key]
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).replace("_", " ").split()
    words = [WORDS.get(w.lower(), w.lower()) for w in words]
    text = " ".join(words) or key
    return text[0].upper() + text[1:]


def _schema_type(spec: dict) -> str | None:
    kind = spec.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        return kinds[0] if len(kinds) == 1 else None
    if kind is None and spec.get("anyOf"):
        kinds = {s.get("type") for s in spec["anyOf"] if s.get("type") != "null"}
        if kinds <= {"integer", "number"} and kinds:
            return "number" if "number" in kinds else "integer"
        if kinds == {"string", "integer"} or kinds == {"string", "number"}:
            return "number"  # a port as Node-RED stores it: "1883" or 1883
    return kind


def _options(spec: dict) -> dict[Any, str]:
    choices = spec.get("x-choices")
    if isinstance(choices, (dict, list)):
        return choice_map(choices, spec)
    if spec.get("enum"):
        return {v: str(v) for v in spec["enum"]}
    if "const" in spec:
        return {spec["const"]: str(spec["const"])}
    return {}


def columns_map(columns: dict | list | None) -> dict[str, dict]:
    """column -> its spec from `x-columns`: a list of {"key": ..., "title": ...} (kept in order) or an object."""
    if isinstance(columns, list):
        return {c["key"]: {k: v for k, v in c.items() if k != "key"} for c in columns}
    return dict(columns or {})


def choice_map(choices: dict | list, spec: dict | None = None) -> dict[Any, str]:
    """value -> label from `x-choices`: a list of [value, label] pairs (kept in order: JSON schema generation
    sorts object keys) or an object."""
    pairs = choices.items() if isinstance(choices, dict) else [(c[0], c[1]) for c in choices]
    return {_key(k, spec or {}) if isinstance(k, str) else k: str(v) for k, v in pairs}


def _key(value: str, spec: dict) -> Any:
    """A choice key as the property stores it: JSON object keys are strings, integer fields want ints."""
    if spec.get("type") == "integer" or (spec.get("enum") and all(isinstance(e, int) for e in spec["enum"])):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def form_fields(node_type: str, schema: dict) -> list[FieldSpec]:
    """The fields the form shows for `node_type`, in the schema's order (typed pairs `x` + `xType` as one)."""
    props: dict[str, dict] = schema.get("properties", {})
    typed = {k[: -len("Type")] for k in props if k.endswith("Type") and k[: -len("Type")] in props}
    hidden = ALWAYS_HIDDEN | LEGACY_HIDDEN.get(node_type, frozenset())
    explicit_typed = {
        plain(s).get("x-type-key")
        for s in props.values()
        if plain(s).get("x-widget") == "typed" and plain(s).get("x-type-key")
    }
    out = []
    for key, raw in props.items():
        spec = plain(raw)
        if key in hidden or spec.get("x-widget") == "hidden" or key in explicit_typed:
            continue
        if key.endswith("Type") and key[: -len("Type")] in typed:
            continue
        out.append(_field_spec(node_type, key, spec, props, key in typed))
    return out


def _field_spec(node_type: str, key: str, spec: dict, props: dict, typed: bool) -> FieldSpec:
    common: dict[str, Any] = {
        "key": key,
        "label": spec.get("title")
        if spec.get("title") and spec["title"] != _auto_title(key)
        else humanize(key),
        "help": spec.get("description") or "",
        "section": spec.get("x-section") or "",
        "show_if": dict(spec.get("x-show-if") or {}),
        "default": spec.get("default"),
        "schema_type": _schema_type(spec),
    }
    widget = spec.get("x-widget")
    if node_type == "inject" and key == "props":
        return FieldSpec(widget="inject-props", **common)
    if key == "rules" and node_type in ("change", "switch"):
        return FieldSpec(widget=f"{node_type}-rules", **common)
    if widget == "typed" or (typed and widget is None):  # a field's own widget wins over its name's pair
        type_key = spec.get("x-type-key") or f"{key}Type"
        types = tuple(spec.get("x-types") or ())
        type_default = plain(props.get(type_key, {})).get("default")
        return FieldSpec(widget="typed", type_key=type_key, types=types, type_default=type_default, **common)
    if widget == "code" or (widget is None and key in CODE_FIELDS):
        language = spec.get("x-language") or CODE_FIELDS.get(key, "")
        return FieldSpec(widget="code", language=language, **common)
    if widget in ("rows", "keyvalue", "strings"):
        return FieldSpec(widget=widget, columns=columns_map(spec.get("x-columns")), **common)
    if widget in ("nodes", "scope"):
        types = tuple(spec.get("x-node-types") or ())
        return FieldSpec(widget=widget, types=types, **common)
    config_type = spec.get("x-config") or spec.get("x-config-type")
    if config_type:
        return FieldSpec(widget="config", config_type=config_type, **common)
    choices = spec.get("x-choices")
    if isinstance(choices, str):
        return FieldSpec(widget="service", service=choices, **common)
    options = _options(spec)
    if options:
        return FieldSpec(widget="select", options=options, **common)
    kind = common["schema_type"]
    if widget == "checkbox" or kind == "boolean":
        return FieldSpec(widget="checkbox", **common)
    if kind in ("number", "integer"):
        return FieldSpec(widget=kind, **common)
    if widget == "text" or kind == "string":
        return FieldSpec(widget="text", **common)
    default = spec.get("default")
    if isinstance(default, bool) or default in ("true", "false"):
        return FieldSpec(widget="checkbox", **common)
    if isinstance(default, (int, float)):
        return FieldSpec(widget="number", **common)
    if isinstance(default, str):
        return FieldSpec(widget="text", **common)
    return FieldSpec(widget="json", **common)


def _auto_title(key: str) -> str:
    """The title pydantic would make up itself (`birthRetain` -> "Birthretain"): not written by a person."""
    return key.replace("_", " ").title()
