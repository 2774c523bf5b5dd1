"""json: converts between a JSON string and an object, as Node-RED's 70-JSON.js.

JSON.parse (with V8's error messages) and JSON.stringify (`1.0` -> `1`, NaN -> null, bytes as Node
Buffers) are in nodes/jsvalues.py; schema problems are reported in ajv 8's shape, as Node-RED does.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError
from pydantic import Field

from sofiaflow.nodes.jsvalues import js_json_parse, js_json_stringify, js_number_string
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, props

# ----- JSON Schema errors in ajv 8's shape ------------------------------------------------------------------

_LIMITS = {
    "minimum": (">=", "must be >= {}"),
    "maximum": ("<=", "must be <= {}"),
    "exclusiveMinimum": (">", "must be > {}"),
    "exclusiveMaximum": ("<", "must be < {}"),
}
_COUNTS = {
    "minLength": "must NOT have fewer than {} characters",
    "maxLength": "must NOT have more than {} characters",
    "minItems": "must NOT have fewer than {} items",
    "maxItems": "must NOT have more than {} items",
    "minProperties": "must NOT have fewer than {} properties",
    "maxProperties": "must NOT have more than {} properties",
}


def _pointer(path: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _fmt(value: Any) -> str:
    return (
        js_number_string(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool)
        else str(value)
    )


def ajv_errors(error: jsonschema.ValidationError) -> list[dict[str, Any]]:
    """One jsonschema error as ajv 8 reports it: {instancePath, schemaPath, keyword, params, message}."""
    keyword = str(error.validator)
    base = {
        "instancePath": _pointer(error.absolute_path),
        "schemaPath": "#" + _pointer(error.absolute_schema_path),
        "keyword": keyword,
    }
    value, instance = error.validator_value, error.instance
    if keyword == "required" and isinstance(instance, dict):
        missing = [p for p in value if p not in instance and repr(p) in error.message] or [
            p for p in value if p not in instance
        ]
        return [
            dict(base, params={"missingProperty": p}, message=f"must have required property '{p}'")
            for p in missing[:1]
        ]
    if keyword == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = schema.get("properties") or {}
        patterns = list((schema.get("patternProperties") or {}).keys())
        extra = [k for k in instance if k not in known and not any(re.search(p, k) for p in patterns)]
        return [
            dict(base, params={"additionalProperty": k}, message="must NOT have additional properties")
            for k in extra
        ] or [dict(base, params={}, message="must NOT have additional properties")]
    if keyword == "type":
        kind = ",".join(value) if isinstance(value, list) else str(value)
        return [dict(base, params={"type": kind}, message=f"must be {kind}")]
    if keyword in _LIMITS:
        comparison, message = _LIMITS[keyword]
        return [
            dict(base, params={"comparison": comparison, "limit": value}, message=message.format(_fmt(value)))
        ]
    if keyword in _COUNTS:
        return [dict(base, params={"limit": value}, message=_COUNTS[keyword].format(_fmt(value)))]
    simple = {
        "enum": ({"allowedValues": value}, "must be equal to one of the allowed values"),
        "const": ({"allowedValue": value}, "must be equal to constant"),
        "pattern": ({"pattern": value}, f'must match pattern "{value}"'),
        "format": ({"format": value}, f'must match format "{value}"'),
        "multipleOf": ({"multipleOf": value}, f"must be multiple of {_fmt(value)}"),
        "uniqueItems": ({}, "must NOT have duplicate items"),
        "anyOf": ({}, "must match a schema in anyOf"),
        "oneOf": ({}, "must match exactly one schema in oneOf"),
        "not": ({}, "must NOT be valid"),
        "false": ({}, "boolean schema is false"),
    }
    params, message = simple.get(keyword, ({}, error.message))
    return [dict(base, params=params, message=message)]


def ajv_errors_text(errors: list[dict[str, Any]]) -> str:
    """ajv.errorsText(errors): `data/foo must be number, data must have required property 'x'`."""
    return ", ".join(f"data{e['instancePath']} {e['message']}" for e in errors)


# ----- the node ---------------------------------------------------------------------------------------------


class JsonConfig(NodeConfig):
    property: str = Field("payload", title="Property", description="The msg property converted.")
    action: str = Field(
        "",
        title="Action",
        json_schema_extra={
            "x-choices": [
                ["", "convert between JSON string and object"],
                ["str", "always convert to JSON string"],
                ["obj", "always convert to JavaScript object"],
            ]
        },
    )
    pretty: NRBool = Field(False, title="Format the JSON string")


_OBJECT_LIKE = (dict, list, tuple, int, float, bool, date)
_SCHEMA_ERROR = "JSON Schema error"


class JsonNode(Node[JsonConfig]):
    type = "json"
    category = "parser"
    color = "#DEBD5C"
    Config = JsonConfig
    help = (
        "Converts `msg.payload` (or another property) between a JSON string and an object: toggles by "
        "default, or always to a string / object. Validates against `msg.schema` when present, putting "
        "the problems in `msg.schemaError`."
    )

    def setup(self) -> None:
        cfg = self.config
        if cfg.action not in ("", "str", "obj"):
            raise NodeError(f"action must be '' (toggle), 'str' or 'obj', not {cfg.action!r}")
        prop = cfg.property or "payload"
        if prop.startswith("msg."):
            prop = prop[4:]
        try:
            self._parts = props.parse_path(prop)
        except props.PropertyPathError as exc:
            raise NodeError(f"property: {exc}") from None
        self._prop = prop
        self._simple = len(self._parts) == 1 and isinstance(self._parts[0], str)
        self._to_obj = cfg.action in ("", "obj")
        self._to_str = cfg.action in ("", "str")
        self._indent = 4 if cfg.pretty else None
        self._schema: Any = None
        self._validator: Any = None

    # -- helpers --
    def _get(self, msg: Msg) -> Any:
        if self._simple:
            return msg.get(self._prop, _MISSING)
        return props.get_parts(msg, self._parts, _MISSING)

    def _set(self, msg: Msg, value: Any) -> None:
        if self._simple:
            msg[self._prop] = value
        else:
            props.set_path(msg, self._prop, value)

    def _compile(self, schema: Any) -> Any:
        if self._validator is not None and schema == self._schema:
            return self._validator
        try:
            if not isinstance(schema, (dict, bool)):
                raise SchemaError("a schema must be an object or a boolean")
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
            cls.check_schema(schema)
            validator = cls(schema)
        except (SchemaError, TypeError, ValueError, LookupError) as exc:
            self._schema = self._validator = None
            raise NodeError(f"{_SCHEMA_ERROR}: failed to compile schema") from exc
        self._schema, self._validator = schema, validator
        return validator

    def _validate(self, validator: Any, value: Any, msg: Msg) -> None:
        errors = [e for err in validator.iter_errors(value) for e in ajv_errors(err)]
        if errors:
            msg["schemaError"] = errors
            raise NodeError(f"{_SCHEMA_ERROR}: {ajv_errors_text(errors)}")
        msg.pop("schema", None)

    # -- input --
    def on_input(self, msg: Msg) -> None:
        schema = msg.get("schema")
        validator = self._compile(schema) if schema else None
        value = self._get(msg)
        if value is _MISSING:
            self.send(msg)
            return
        cls = value.__class__
        if cls is bytes or cls is bytearray:
            if not self._to_obj:
                self.warn("Ignored non-object payload")
                return
            try:
                value = bytes(value).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise NodeError(
                    f"Failed to convert payload: the buffer is not UTF-8 ({exc.reason})"
                ) from None
            cls = str
        if cls is str:
            if self._to_obj:
                parsed = js_json_parse(value)
                self._set(msg, parsed)
                if validator is not None:
                    self._validate(validator, parsed, msg)
            elif validator is not None:
                self._validate(validator, js_json_parse(value), msg)
            self.send(msg)
            return
        if value is None or isinstance(value, _OBJECT_LIKE):
            if self._to_str:
                try:
                    text = js_json_stringify(value, self._indent)
                except NodeError:
                    raise NodeError("Failed to convert payload") from None
                if validator is not None:
                    self._validate(validator, value, msg)
                self._set(msg, text)
            elif validator is not None:
                self._validate(validator, value, msg)
            self.send(msg)
            return
        self.warn("Ignored unsupported payload type")


_MISSING = object()
