"""`/ontologies/{name}/data`: the instances of an ontology over HTTP (query, insert, update, delete) and
`/ontologies/{name}/history/move` to move expired instances to history now.

Writes go through the runtime's "ontology-data" service: validated against the schema, stamped with
`contextData` (source "http", the caller as user) and announced to `ontology-subscribe` nodes.
Errors: 400 `invalid_instance` (with `problems`), 400 `invalid_query` (filter, sort, projection, update),
404 `not_found`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request

from sofiaflow.runtime.data.ontologies import OntologyNotFoundError
from sofiaflow.runtime.data.ontology_data import InstanceValidationError, OntologyData, Writer
from sofiaflow.runtime.data.rtdb import RtdbError
from sofiaflow.runtime.data.rtdb.base import MAX_SKIP_LIMIT
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep
from sofiaflow.runtime.http.ontology_routes import require_right
from sofiaflow.runtime.runtime import Runtime

router = APIRouter(tags=["ontology data"])
MAX_LIMIT = 1000


def _service(runtime: Runtime, name: str) -> Any:
    service = runtime.engine.services.get(name) if runtime.engine is not None else None
    if service is None:
        raise ApiError(503, "unavailable", f"the {name} service is not running")
    return service


@contextmanager
def _answers() -> Iterator[None]:
    try:
        yield
    except InstanceValidationError as exc:
        raise ApiError(400, "invalid_instance", str(exc), problems=exc.problems) from None
    except OntologyNotFoundError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    except RtdbError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None


def _json_param(text: str | None, what: str, expect: type | tuple[type, ...]) -> Any:
    if text is None or text == "":
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, "invalid_query", f"{what}: not JSON: {exc}") from None
    if not isinstance(value, expect):
        raise ApiError(400, "invalid_query", f"{what}: must be a JSON object, got {type(value).__name__}")
    return value


def _sort(value: Any) -> list | None:
    if value is None:
        return None
    return (
        list(value.items())
        if isinstance(value, dict)
        else [tuple(v) if isinstance(v, list) else v for v in value]
    )


@router.get("/ontologies/{name}/data", summary="Instances matching a MongoDB filter, paged")
async def query_data(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    filter: Annotated[str | None, Query(description="MongoDB filter as JSON")] = None,
    sort: Annotated[str | None, Query(description='e.g. {"value": -1}')] = None,
    projection: Annotated[str | None, Query(description='e.g. {"value": 1}')] = None,
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP_LIMIT)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    scope: Annotated[Literal["realtime", "history"], Query()] = "realtime",
) -> dict:
    require_right(request, runtime, name, "QUERY")
    flt = _json_param(filter, "filter", dict) or {}
    order = _sort(_json_param(sort, "sort", (dict, list)))
    proj = _json_param(projection, "projection", dict)
    data: OntologyData = _service(runtime, "ontology-data")
    with _answers():
        data.registry.validator(name)
        if scope == "history":
            history = _service(runtime, "history").store
            total = await asyncio.to_thread(history.count, name, flt)
            items = await asyncio.to_thread(history.find, name, flt, proj, order, skip, limit)
        else:
            total = await asyncio.to_thread(data.count, name, flt)
            items = await asyncio.to_thread(data.find, name, flt, proj, order, skip, limit)
    return {"total": total, "skip": skip, "limit": limit, "items": items}


@router.post(
    "/ontologies/{name}/data",
    status_code=201,
    summary="Insert one instance (object) or a batch (array), all or nothing",
)
async def insert_data(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[Any, Body(examples=[{"assetId": "s-1", "measure": 21.5}])] = None,
) -> dict:
    require_right(request, runtime, name, "INSERT")
    batch = isinstance(body, list)
    bodies = body if batch else [body]
    writer = Writer(user=getattr(request.state, "user", None), source="http")
    data: OntologyData = _service(runtime, "ontology-data")
    with _answers():
        stored = await asyncio.to_thread(data.insert, name, bodies, writer, batch)
    ids = [doc["_id"] for doc in stored]
    return {"ids": ids} if batch else {"id": ids[0]}


@router.patch("/ontologies/{name}/data", summary="Update the instances matching a filter ($set/$unset/$inc)")
async def update_data(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[
        Any, Body(examples=[{"filter": {"assetId": "s-1"}, "update": {"$set": {"measure": 3}}}])
    ] = None,
) -> dict:
    require_right(request, runtime, name, "INSERT")
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("filter"), dict)
        or not isinstance(body.get("update"), dict)
    ):
        raise ApiError(400, "invalid_query", 'the body must be {"filter": {...}, "update": {...}}')
    data: OntologyData = _service(runtime, "ontology-data")
    with _answers():
        count, _ = await asyncio.to_thread(
            data.update, name, body["filter"], body["update"], bool(body.get("multi", True))
        )
    return {"matched": count}


@router.delete("/ontologies/{name}/data", summary="Delete the instances matching a filter ({} deletes all)")
async def delete_data(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    filter: Annotated[str, Query(description="MongoDB filter as JSON; required")],
) -> dict:
    require_right(request, runtime, name, "INSERT")
    flt = _json_param(filter, "filter", dict)
    if flt is None:
        raise ApiError(400, "invalid_query", "filter: required (use {} to delete every instance)")
    data: OntologyData = _service(runtime, "ontology-data")
    with _answers():
        count, _ = await asyncio.to_thread(data.delete, name, flt)
    return {"deleted": count}


@router.post(
    "/ontologies/{name}/history/move", summary="Move this ontology's expired instances to history now"
)
async def move_to_history(name: str, request: Request, runtime: RuntimeDep) -> dict:
    require_right(request, runtime, name, "INSERT")
    data: OntologyData = _service(runtime, "ontology-data")
    with _answers():
        data.registry.validator(name)
    report = await _service(runtime, "history").run_now([name])
    if report.busy:
        raise ApiError(409, "busy", "a move is already running; try again when it ends")
    return report.as_dict()
