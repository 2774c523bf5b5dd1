"""`/ontologies`: create, list, change, delete ontologies and validate instances (the OntologyRegistry over HTTP).

Errors: 400 `invalid_ontology` (with `field`, and `schema_path` for a schema that fails its meta-schema),
404 `not_found`, 409 `ontology_exists`, `incompatible_schema` (with `failures`: stored instances the new
schema rejects) or `ontology_in_use` (with `count`: delete again with `?purge=true`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response

from ..ontologies import (
    FIELDS,
    OntologyExistsError,
    OntologyIncompatibleError,
    OntologyInUseError,
    OntologyNotFoundError,
    OntologyRegistry,
    OntologyValidationError,
)
from ..runtime import Runtime
from .deps import ApiError, RuntimeDep

router = APIRouter(tags=["ontologies"])

_EXAMPLE = {
    "name": "BasicSensor",
    "description": "A sensor's measure",
    "schema": {"type": "object", "required": ["assetId", "measure"],
               "properties": {"assetId": {"type": "string"}, "measure": {"type": "number"},
                              "timestamp": {"type": "string", "format": "date-time"}}},
    "realtime_window_days": 30,
    "history": False,
    "indexes": ["assetId"],
    "unique": [],
}


def _registry(runtime: Runtime) -> OntologyRegistry:
    registry = runtime.engine.services.get("ontologies") if runtime.engine is not None else None
    if registry is None:
        raise ApiError(503, "ontologies_unavailable", "the ontology registry is not running")
    return registry


@contextmanager
def _answers() -> Iterator[None]:
    """The registry's errors as API answers."""
    try:
        yield
    except OntologyValidationError as exc:
        extra = {"schema_path": exc.schema_path} if exc.schema_path is not None else {}
        raise ApiError(400, "invalid_ontology", str(exc), field=exc.field, **extra) from None
    except OntologyExistsError as exc:
        raise ApiError(409, "ontology_exists", str(exc)) from None
    except OntologyIncompatibleError as exc:
        raise ApiError(409, "incompatible_schema", str(exc), failures=exc.failures) from None
    except OntologyInUseError as exc:
        raise ApiError(409, "ontology_in_use", str(exc), count=exc.count) from None
    except OntologyNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from None


def _object(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", f"the body must be a JSON object, got "
                       f"{'nothing' if body is None else type(body).__name__}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, "invalid_ontology", f"unknown field(s) {', '.join(unknown)}; "
                       f"allowed: {', '.join(allowed)}", field=unknown[0])
    return body


def _caller(request: Request) -> str | None:
    return getattr(request.state, "user", None)


@router.post("/ontologies", status_code=201, summary="Create an ontology (JSON Schema + settings)")
async def create_ontology(request: Request, runtime: RuntimeDep,
                          body: Annotated[Any, Body(examples=[_EXAMPLE])] = None) -> dict:
    data = dict(_object(body, FIELDS))
    for key in ("name", "schema"):
        if key not in data:
            raise ApiError(400, "invalid_ontology", f"{key}: required", field=key)
    name, schema = data.pop("name"), data.pop("schema")
    data.setdefault("owner", _caller(request))
    with _answers():
        return _registry(runtime).create(name, schema, **data).as_dict()


@router.get("/ontologies", summary="Every ontology")
async def list_ontologies(runtime: RuntimeDep) -> list[dict]:
    return [o.as_dict() for o in _registry(runtime).list()]


@router.get("/ontologies/{name}", summary="One ontology")
async def get_ontology(name: str, runtime: RuntimeDep) -> dict:
    with _answers():
        return _registry(runtime).get(name).as_dict()


@router.put("/ontologies/{name}",
            summary="Change an ontology (fields left out keep their value); a new schema must accept stored data")
async def put_ontology(name: str, runtime: RuntimeDep,
                       body: Annotated[Any, Body(examples=[{"description": "changed", "indexes": ["assetId"]}])]
                       = None) -> dict:
    data = _object(body, FIELDS)
    with _answers():
        return _registry(runtime).update(name, **data).as_dict()


@router.delete("/ontologies/{name}", status_code=204,
               summary="Delete an ontology; refused while it holds data unless ?purge=true, which deletes the data")
async def delete_ontology(name: str, runtime: RuntimeDep,
                          purge: Annotated[bool, Query(description="delete the ontology's data too")] = False
                          ) -> Response:
    with _answers():
        _registry(runtime).delete(name, purge=purge)
    return Response(status_code=204)


@router.post("/ontologies/{name}/validate", summary="Validate an instance against an ontology's schema")
async def validate_instance(name: str, runtime: RuntimeDep,
                            body: Annotated[Any, Body(examples=[{"assetId": "s-1", "measure": 21.5}])] = None
                            ) -> dict:
    with _answers():
        errors = _registry(runtime).validate(name, body)
    return {"valid": not errors, "errors": errors}
