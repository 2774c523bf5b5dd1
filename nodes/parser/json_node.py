"""json: converts between a JSON string and an object, as Node-RED's 70-JSON.js.

Also home of the small JavaScript-compatibility helpers that debug and template reuse:
`js_number` (JS `String(n)`), `js_json_parse` (JSON.parse with V8's error messages) and
`js_json_stringify` (JSON.stringify: `1.0` -> `1`, NaN -> null, bytes as Node Buffers).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError

from runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, props

# ----- JavaScript compatibility helpers ---------------------------------------------------------------


def js_number(value: int | float) -> str:
    """A number as JavaScript's `String(n)` writes it (`7.0` -> `"7"`, `1e-7` -> `"1e-7"`)."""
    if value.__class__ is int:
        return str(value)
    if value is True or value is False:
        return "true" if value else "false"
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    text = repr(float(value))
    if "e" not in text:
        return text[:-2] if text.endswith(".0") else text
    sign = "-" if text[0] == "-" else ""
    mantissa, exp = text.lstrip("-").split("e")
    digits = mantissa.replace(".", "").rstrip("0") or "0"
    k, n = len(digits), int(exp) + 1
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    return sign + digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def js_float(value: float, specials: list[str]) -> Any:
    """A float ready for json.dumps so the text matches JS: integral -> int, odd exponents -> placeholder."""
    if value.is_integer() and -1e21 < value < 1e21:
        return int(value)
    text = js_number(value)
    if text == repr(value):
        return value
    specials.append(text)
    return f"\x00{len(specials) - 1}\x00"


_SPECIAL = re.compile(r'"\\u0000(\d+)\\u0000"')


def dumps_js(value: Any, specials: list[str], indent: int | None = None) -> str:
    """json.dumps of plain data (see `js_float`), spaced as JSON.stringify(value, null, indent)."""
    if indent:
        text = json.dumps(value, ensure_ascii=False, indent=indent, allow_nan=False)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    if specials:
        text = _SPECIAL.sub(lambda m: specials[int(m.group(1))] if int(m.group(1)) < len(specials) else m.group(0),
                            text)
    return text


def iso_date(value: date) -> str:
    """A date as JS `Date.toJSON()` writes it: UTC, milliseconds, `Z` (naive datetimes count as UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.isoformat() + "T00:00:00.000Z"


def _jsonable(value: Any, specials: list[str], stack: set[int]) -> Any:
    """Plain JSON data as JSON.stringify would see `value` (Buffers, Dates, odd floats)."""
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is float:
        if value != value or value in (math.inf, -math.inf):
            return None
        return js_float(value, specials)
    if cls is dict or cls is list or cls is tuple:
        if id(value) in stack:
            raise NodeError("Converting circular structure to JSON")
        stack.add(id(value))
        try:
            if cls is dict:
                return {(k if k.__class__ is str else _key(k)): _jsonable(v, specials, stack) for k, v in value.items()}
            return [_jsonable(v, specials, stack) for v in value]
        finally:
            stack.discard(id(value))
    if cls is bytes or cls is bytearray or cls is memoryview:
        return {"type": "Buffer", "data": list(bytes(value))}
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _jsonable(float(value), specials, stack)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, date):
        return iso_date(value)
    if isinstance(value, dict):
        return _jsonable(dict(value), specials, stack)
    if isinstance(value, (list, tuple)):
        return _jsonable(list(value), specials, stack)
    if isinstance(value, (set, frozenset)):
        return {}  # JSON.stringify(new Set([1])) === "{}"
    return str(value)


def _key(key: Any) -> str:
    if key is True or key is False:
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return js_number(key)
    return "null" if key is None else str(key)


def js_json_stringify(value: Any, indent: int | None = None) -> str:
    """JSON.stringify(value, null, indent) with JS number formatting."""
    specials: list[str] = []
    return dumps_js(_jsonable(value, specials, set()), specials, indent)


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def js_json_parse(text: str) -> Any:
    """JSON.parse: the value, or NodeError with the message V8 (Node.js 18-20) gives."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise NodeError(_v8_message(text, exc.msg, exc.pos)) from None
    except ValueError as exc:  # NaN / Infinity / -Infinity, which JSON.parse refuses
        name = str(exc)
        pos = text.find(name)
        if name.startswith("-"):
            raise NodeError(f"No number after minus sign in JSON at position {pos + 1}") from None
        raise NodeError(_unexpected_token(text, max(pos, 0))) from None


def _v8_message(text: str, msg: str, pos: int) -> str:
    if msg.startswith("Expecting value"):
        if pos >= len(text) or not text[pos:].strip():
            return "Unexpected end of JSON input"
        if text[pos] == "-":
            return f"No number after minus sign in JSON at position {pos + 1}"
        literal = _LITERALS.get(text[pos])
        if literal:  # V8 reports the first character that breaks true/false/null
            i = 0
            while i < len(literal) and pos + i < len(text) and text[pos + i] == literal[i]:
                i += 1
            if pos + i >= len(text):
                return "Unexpected end of JSON input"
            pos += i
        return _unexpected_token(text, pos)
    if msg.startswith("Expecting property name"):
        if pos < len(text) and text[pos] == "}":
            return f"Expected double-quoted property name in JSON at position {pos}"
        return f"Expected property name or '}}' in JSON at position {pos}"
    if msg.startswith("Expecting ':'"):
        return f"Expected ':' after property name in JSON at position {pos}"
    if msg.startswith("Expecting ','"):
        if _innermost(text, pos) == "[":
            return f"Expected ',' or ']' after array element in JSON at position {pos}"
        return f"Expected ',' or '}}' after property value in JSON at position {pos}"
    if msg.startswith("Unterminated string"):
        return f"Unterminated string in JSON at position {len(text)}"
    if msg.startswith("Invalid control character"):
        return f"Bad control character in string literal in JSON at position {pos}"
    if msg.startswith("Invalid \\u"):
        return f"Bad Unicode escape in JSON at position {pos}"
    if msg.startswith("Invalid \\escape"):
        return f"Bad escaped character in JSON at position {pos}"
    if msg.startswith("Extra data"):
        return f"Unexpected non-whitespace character after JSON at position {pos}"
    return f"{msg} in JSON at position {pos}"


_LITERALS = {"t": "true", "f": "false", "n": "null"}


def _unexpected_token(text: str, pos: int) -> str:
    token = text[pos] if pos < len(text) else ""
    if text in ("NaN", "Infinity", "undefined", "[object Object]"):
        return f'"{text}" is not valid JSON'
    if len(text) < 21:
        return f"Unexpected token '{token}', \"{text}\" is not valid JSON"
    if pos < 10:
        return f"Unexpected token '{token}', \"{text[:pos + 10]}\"... is not valid JSON"
    if pos < len(text) - 10:
        return f"Unexpected token '{token}', ...\"{text[pos - 10:pos + 10]}\"... is not valid JSON"
    return f"Unexpected token '{token}', ...\"{text[pos - 10:]}\" is not valid JSON"


def _innermost(text: str, pos: int) -> str:
    """The bracket ('[' or '{') open at `pos`, skipping strings."""
    stack: list[str] = []
    in_str = esc = False
    for ch in text[:pos]:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""


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
    return js_number(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def ajv_errors(error: jsonschema.ValidationError) -> list[dict[str, Any]]:
    """One jsonschema error as ajv 8 reports it: {instancePath, schemaPath, keyword, params, message}."""
    keyword = str(error.validator)
    base = {"instancePath": _pointer(error.absolute_path), "schemaPath": "#" + _pointer(error.absolute_schema_path),
            "keyword": keyword}
    value, instance = error.validator_value, error.instance
    if keyword == "required" and isinstance(instance, dict):
        missing = [p for p in value if p not in instance and repr(p) in error.message] or \
                  [p for p in value if p not in instance]
        return [dict(base, params={"missingProperty": p}, message=f"must have required property '{p}'")
                for p in missing[:1]]
    if keyword == "additionalProperties" and isinstance(instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        known = schema.get("properties") or {}
        patterns = list((schema.get("patternProperties") or {}).keys())
        extra = [k for k in instance if k not in known and not any(re.search(p, k) for p in patterns)]
        return [dict(base, params={"additionalProperty": k}, message="must NOT have additional properties")
                for k in extra] or [dict(base, params={}, message="must NOT have additional properties")]
    if keyword == "type":
        kind = ",".join(value) if isinstance(value, list) else str(value)
        return [dict(base, params={"type": kind}, message=f"must be {kind}")]
    if keyword in _LIMITS:
        comparison, message = _LIMITS[keyword]
        return [dict(base, params={"comparison": comparison, "limit": value}, message=message.format(_fmt(value)))]
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
    property: str = "payload"
    action: str = ""
    pretty: NRBool = False


_OBJECT_LIKE = (dict, list, tuple, int, float, bool, date)
_SCHEMA_ERROR = "JSON Schema error"


class JsonNode(Node):
    type = "json"
    category = "parser"
    color = "#DEBD5C"
    Config = JsonConfig
    help = ("Converts `msg.payload` (or another property) between a JSON string and an object: toggles by "
            "default, or always to a string / object. Validates against `msg.schema` when present, putting "
            "the problems in `msg.schemaError`.")

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
                raise NodeError(f"Failed to convert payload: the buffer is not UTF-8 ({exc.reason})") from None
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
