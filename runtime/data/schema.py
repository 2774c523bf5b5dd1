"""JSON Schema handling for ontologies: the registry's errors, draft selection, compiling schemas
(local `$ref`s only, onesait's `{"$date"}` date-times), and error reports as JSON pointers."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

from sofiaflow.runtime.errors import Conflict, NotFound, SofiaflowError, ValidationError

_STORE_KEYS = ("contextData", "_id")
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")

# ----- errors -------------------------------------------------------------------------------------


class OntologyError(SofiaflowError):
    """Base of the ontology registry's errors."""


class OntologyValidationError(OntologyError, ValidationError):
    """An ontology property is invalid; `field` names it (`name`, `schema`, `indexes[1]`...). For a schema that
    fails its meta-schema, `schema_path` locates the offending keyword (JSON pointer)."""

    def __init__(self, field_name: str, message: str, schema_path: str | None = None) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.schema_path = schema_path


class OntologyNotFoundError(OntologyError, NotFound):
    """No ontology of that name."""


class OntologyExistsError(OntologyError, Conflict):
    """An ontology of that name exists already."""


class OntologyIncompatibleError(OntologyError, Conflict):
    """A new schema would reject data already stored; `failures` lists the first few (index, errors)."""

    def __init__(self, message: str, failures: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failures = failures


class OntologyInUseError(OntologyError, Conflict):
    """A delete without purge while the ontology still has data; `count` says how much."""

    def __init__(self, message: str, count: int) -> None:
        super().__init__(message)
        self.count = count


def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True  # format applies to strings only
    if not _RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return False
    return True


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()  # a copy of every known format check
    checker.checkers["date-time"] = (_is_datetime, ())  # RFC 3339 without an optional dependency
    return checker


FORMAT_CHECKER = _format_checker()


def draft_name(cls: type) -> str:
    return cls.__name__.removesuffix("Validator").lower()


_DRAFTS = (
    jsonschema.Draft3Validator,
    jsonschema.Draft4Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft201909Validator,
    Draft202012Validator,
)


def schema_validator_class(schema: Any) -> type:
    """The validator class for the draft `schema["$schema"]` names (2020-12 when none);
    OntologyValidationError for a `$schema` naming no known draft."""
    if isinstance(schema, dict) and "$schema" in schema:
        uri = schema["$schema"]
        cls = validator_for(schema, default=None) if isinstance(uri, str) else None
        if cls is None:
            known = ", ".join(c.META_SCHEMA["$schema"] for c in _DRAFTS)
            raise OntologyValidationError(
                "schema", f"$schema {uri!r} names no known JSON Schema draft; use one of {known}", "/$schema"
            )
        return cls
    return validator_for(schema, default=Draft202012Validator)


def compile_schema(schema: Any) -> jsonschema.protocols.Validator:
    """A validator for `schema` after checking it against its draft's meta-schema and that every `$ref`
    resolves inside the document; OntologyValidationError (field `schema`) otherwise."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise OntologyValidationError("schema", f"not JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise OntologyValidationError("schema", f"must be a JSON Schema object, got {type(schema).__name__}")
    cls = schema_validator_class(schema)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        where = _pointer(exc.absolute_path)
        raise OntologyValidationError(
            "schema", f"not a valid {draft_name(cls)} schema at {where or '/'}: {exc.message}", where
        ) from None
    validator = cls(schema, format_checker=FORMAT_CHECKER)
    _check_refs(validator, schema)
    return validator


def _check_refs(validator: Any, schema: dict[str, Any]) -> None:
    refs: list[tuple[str, str]] = []
    nested_ids = False

    def walk(node: Any, where: str, top: bool) -> None:
        nonlocal nested_ids
        if isinstance(node, dict):
            if not top and isinstance(node.get("$id", node.get("id")), str):
                nested_ids = True
            for key, value in node.items():
                if key == "$ref" and isinstance(value, str):
                    refs.append((value, f"{where}/$ref"))
                elif key not in ("enum", "const", "examples", "default"):
                    walk(value, f"{where}/{_escape(key)}", False)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}/{index}", False)

    walk(schema, "", True)
    resolver = getattr(validator, "_resolver", None)
    if nested_ids or resolver is None:
        return  # references relative to nested ids: left to validation time
    for ref, where in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise OntologyValidationError(
                "schema",
                f"$ref {ref!r} at {where} does not resolve inside the document "
                "(remote references are not fetched)",
                where,
            ) from None


def _escape(key: object) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _pointer(path: Iterable[Any]) -> str:
    return "".join(f"/{_escape(p)}" for p in path)


def validation_errors(validator: Any, instance: Any) -> list[dict[str, Any]]:
    """Every error of `instance`: {"path" (JSON pointer, "" for the top), "message", "validator" (the failing
    keyword), "schema_path"}, plus "property" (the missing one) for `required` errors; sorted by path."""
    out: list[dict[str, Any]] = []
    try:
        errors = list(validator.iter_errors(instance))
    except Unresolvable as exc:
        return [
            {
                "path": "",
                "message": f"the schema's $ref cannot be resolved: {exc}",
                "validator": "$ref",
                "schema_path": "",
            }
        ]
    for error in sorted(errors, key=lambda e: (list(map(str, e.absolute_path)), str(e.message))):
        item: dict[str, Any] = {
            "path": _pointer(error.absolute_path),
            "message": error.message,
            "validator": str(error.validator),
            "schema_path": _pointer(error.absolute_schema_path),
        }
        if error.validator == "required":
            missing = _missing_property(error)
            if missing is not None:
                item["property"] = missing
        out.append(item)
    return out


def _missing_property(error: Any) -> str | None:
    match = re.match(r"^'(.*)' is a required property$", error.message)
    if match:
        return match.group(1)
    for name in error.validator_value or ():
        if isinstance(error.instance, dict) and name not in error.instance:
            return name
    return None


def body_of(stored: Any, schema: dict[str, Any]) -> Any:
    """A stored document without the store's own keys (`contextData`, `_id`) unless the schema declares them."""
    if not isinstance(stored, dict):
        return stored
    declared = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    drop = [k for k in _STORE_KEYS if k in stored and k not in declared]
    return {k: v for k, v in stored.items() if k not in drop} if drop else stored
