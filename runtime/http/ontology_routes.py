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

from sofiaflow.runtime.data.ontologies import (
    FIELDS,
    OntologyExistsError,
    OntologyIncompatibleError,
    OntologyInUseError,
    OntologyNotFoundError,
    OntologyRegistry,
    OntologyValidationError,
)
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, denied, get_auth, record
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.permissions import ACCESS, covers

router = APIRouter(tags=["ontologies"])

_EXAMPLE = {
    "name": "BasicSensor",
    "description": "A sensor's measure",
    "schema": {
        "type": "object",
        "required": ["assetId", "measure"],
        "properties": {
            "assetId": {"type": "string"},
            "measure": {"type": "number"},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    },
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
        raise ApiError(
            400,
            "invalid_request",
            f"the body must be a JSON object, got {'nothing' if body is None else type(body).__name__}",
        )
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            400,
            "invalid_ontology",
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}",
            field=unknown[0],
        )
    return body


def _caller(request: Request) -> str | None:
    return getattr(request.state, "user", None)


def require_right(request: Request, runtime: Runtime, name: str, needed: str) -> None:
    """403 (audited) unless the caller holds `needed` (QUERY, INSERT or ALL) on ontology `name`; an ontology the
    caller holds nothing on answers 404, as if it did not exist."""
    permissions = runtime.engine.services.get("permissions") if runtime.engine is not None else None
    if permissions is None:
        return
    held = permissions.access(_caller(request), name)
    if held is None and _registry(runtime).exists(name):
        raise ApiError(404, "not_found", f"no ontology named {name!r}")
    if held is not None and not covers(held, needed):
        raise denied(request, f"user {_caller(request)!r} has no {needed} right on ontology {name!r}")


def _require_owner(request: Request, runtime: Runtime, name: str) -> None:
    """Changing an ontology's definition or sharing is for its owner and administrators."""
    with _answers():
        owner = _registry(runtime).get(name).owner
    if getattr(request.state, "role", None) != "administrator" and owner != _caller(request):
        require_right(request, runtime, name, "QUERY")  # 404 for those who cannot see it
        raise denied(
            request, f"only the owner of ontology {name!r} ({owner!r}) or an administrator may change it"
        )


@router.post("/ontologies", status_code=201, summary="Create an ontology (JSON Schema + settings)")
async def create_ontology(
    request: Request, runtime: RuntimeDep, body: Annotated[Any, Body(examples=[_EXAMPLE])] = None
) -> dict:
    data = dict(_object(body, FIELDS))
    for key in ("name", "schema"):
        if key not in data:
            raise ApiError(400, "invalid_ontology", f"{key}: required", field=key)
    name, schema = data.pop("name"), data.pop("schema")
    data.setdefault("owner", _caller(request))
    with _answers():
        return _registry(runtime).create(name, schema, **data).as_dict()


@router.get("/ontologies", summary="Every ontology")
async def list_ontologies(request: Request, runtime: RuntimeDep) -> list[dict]:
    permissions = runtime.engine.services.get("permissions")
    return [
        o.as_dict()
        for o in _registry(runtime).list()
        if permissions is None or permissions.access(_caller(request), o.name) is not None
    ]


@router.get("/ontologies/{name}", summary="One ontology")
async def get_ontology(name: str, request: Request, runtime: RuntimeDep) -> dict:
    require_right(request, runtime, name, "QUERY")
    with _answers():
        return _registry(runtime).get(name).as_dict()


@router.put(
    "/ontologies/{name}",
    summary="Change an ontology (fields left out keep their value); a new schema must accept stored data",
)
async def put_ontology(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[Any, Body(examples=[{"description": "changed", "indexes": ["assetId"]}])] = None,
) -> dict:
    data = _object(body, FIELDS)
    _require_owner(request, runtime, name)
    with _answers():
        changed = _registry(runtime).update(name, **data).as_dict()
    if "owner" in data:
        record(request, "ontology.owner", name, detail={"owner": data["owner"]})
    return changed


@router.delete(
    "/ontologies/{name}",
    status_code=204,
    summary="Delete an ontology; refused while it holds data unless ?purge=true, which deletes the data",
)
async def delete_ontology(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    purge: Annotated[bool, Query(description="delete the ontology's data too")] = False,
) -> Response:
    _require_owner(request, runtime, name)
    with _answers():
        _registry(runtime).delete(name, purge=purge)
    record(request, "ontology.delete", name, detail={"purge": purge})
    return Response(status_code=204)


@router.post("/ontologies/{name}/validate", summary="Validate an instance against an ontology's schema")
async def validate_instance(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[Any, Body(examples=[{"assetId": "s-1", "measure": 21.5}])] = None,
) -> dict:
    require_right(request, runtime, name, "QUERY")
    with _answers():
        errors = _registry(runtime).validate(name, body)
    return {"valid": not errors, "errors": errors}


@router.get("/ontologies/{name}/grants", summary="Who the ontology is shared with, and with which right")
async def list_grants(name: str, request: Request, runtime: RuntimeDep) -> list[dict]:
    _require_owner(request, runtime, name)
    return runtime.engine.services["permissions"].grants(name)


@router.put(
    "/ontologies/{name}/grants/{user}", summary="Share the ontology with a user: QUERY, INSERT or ALL"
)
async def put_grant(
    name: str,
    user: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[Any, Body(examples=[{"access": "QUERY"}])] = None,
) -> dict:
    _require_owner(request, runtime, name)
    access = body.get("access") if isinstance(body, dict) else None
    if access not in ACCESS:
        raise ApiError(
            400, "invalid_grant", f"access: one of {', '.join(ACCESS)}, got {access!r}", field="access"
        )
    if not get_auth(request).user_exists(user):
        raise ApiError(404, "not_found", f"no user {user!r}")
    runtime.engine.services["permissions"].grant(name, user, access, by=_caller(request))
    record(request, "ontology.grant", name, detail={"user": user, "access": access})
    return {"grantee": user, "access": access}


@router.delete(
    "/ontologies/{name}/grants/{user}", status_code=204, summary="Stop sharing the ontology with a user"
)
async def delete_grant(name: str, user: str, request: Request, runtime: RuntimeDep) -> Response:
    _require_owner(request, runtime, name)
    if not runtime.engine.services["permissions"].revoke(name, user):
        raise ApiError(404, "not_found", f"ontology {name!r} is not shared with {user!r}")
    record(request, "ontology.revoke", name, detail={"user": user})
    return Response(status_code=204)
