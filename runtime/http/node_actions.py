"""Node-provided admin routes: `POST /inject/:id` and `POST /debug/:id/{enable|disable}`.

A node is acted on only by those who may see its tab (or subflow, config node); for others it does not
exist (404), as for `/flow/:id`.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from sofiaflow.runtime.core.node import Node
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.ownership import unit_of_running

router = APIRouter(tags=["nodes"])


def _visible(request: Request, runtime: Runtime, node_id: str) -> bool:
    user, role = getattr(request.state, "user", None), getattr(request.state, "role", None)
    return role == "administrator" or runtime.ownership.may_see(user, role, unit_of_running(runtime, node_id))


def _running(request: Request, runtime: Runtime, node_id: str, method: str, what: str) -> Node:
    node = runtime.deployer.running.get(node_id)
    if node is None or not callable(getattr(node, method, None)) or not _visible(request, runtime, node_id):
        raise ApiError(404, "not_found", f"no running {what} node with id {node_id!r}")
    return node


async def _call(fn: Any, *args: Any) -> None:
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


@router.post(
    "/inject/{node_id}",
    response_class=PlainTextResponse,
    summary="Fire an inject node now (optional body: {__user_inject_props__: [...]})",
)
async def inject(node_id: str, request: Request, runtime: RuntimeDep) -> str:
    node = _running(request, runtime, node_id, "trigger", "inject")
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_request", f"the body is not valid JSON: {exc}") from None
    overrides = body if isinstance(body, dict) and "__user_inject_props__" in body else None
    try:
        await _call(node.trigger, overrides)
    except Exception as exc:  # noqa: BLE001 - the node's failure, reported to the caller
        raise ApiError(
            500, "inject_failed", f"inject {node_id!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    return "OK"


async def _set_debug(request: Request, runtime: Runtime, node_id: str, state: str) -> None:
    if state not in ("enable", "disable"):
        raise ApiError(404, "not_found", f"unknown debug action {state!r}; use enable or disable")
    node = _running(request, runtime, node_id, "set_active", "debug")
    await _call(node.set_active, state == "enable")


@router.post(
    "/debug/{node_id}/{state}",
    response_class=PlainTextResponse,
    summary="Turn a debug node's output on or off (200 enabled, 201 disabled, as Node-RED)",
)
async def debug_toggle(node_id: str, state: str, request: Request, runtime: RuntimeDep) -> PlainTextResponse:
    await _set_debug(request, runtime, node_id, state)
    return PlainTextResponse(
        "OK" if state == "enable" else "Created", status_code=200 if state == "enable" else 201
    )


@router.post(
    "/debug/{state}",
    response_class=PlainTextResponse,
    summary="Bulk: {nodes: [ids]} enable or disable several debug nodes",
)
async def debug_bulk(state: str, request: Request, runtime: RuntimeDep) -> PlainTextResponse:
    try:
        body = json.loads(await request.body() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_request", f"the body is not valid JSON: {exc}") from None
    ids = body.get("nodes") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiError(400, "invalid_request", 'the body must be {"nodes": [node ids]}')
    if state not in ("enable", "disable"):
        raise ApiError(404, "not_found", f"unknown debug action {state!r}; use enable or disable")
    missing = [
        i
        for i in ids
        if not callable(getattr(runtime.deployer.running.get(i), "set_active", None))
        or not _visible(request, runtime, i)
    ]
    if missing:
        raise ApiError(404, "not_found", f"no running debug node with id(s) {', '.join(map(repr, missing))}")
    for node_id in ids:
        await _set_debug(request, runtime, node_id, state)
    return PlainTextResponse(
        "OK" if state == "enable" else "Created", status_code=200 if state == "enable" else 201
    )
