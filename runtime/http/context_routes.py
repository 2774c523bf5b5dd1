"""`/context/{global|flow/:id|node/:id}[/key]`: read and delete context as Node-RED's sidebar does.

Values are encoded as Node-RED's `util.encodeObject`, as the debug sidebar's are (runtime/core/encoding.py):
`{"msg": "<text>", "format": "number"}`.

Tenancy: flow and node context are read and deleted by those who may see the node's tab (or subflow, or
config node); others get a 404, as for `/flow/:id`. Global context is shared by every tenant's flows, so
it is for administrators (others: 403, audited).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from sofiaflow.runtime.core import props
from sofiaflow.runtime.core.context import ContextError
from sofiaflow.runtime.core.encoding import encode_debug
from sofiaflow.runtime.core.props import PropertyPathError
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, denied
from sofiaflow.runtime.http.info_routes import store_names
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.ownership import containers, unit_of_running

router = APIRouter(tags=["context"])


# ----- encoding ------------------------------------------------------------------------------------
def encode_value(value: Any, limit: int) -> dict[str, str]:
    """One context value as the sidebar shows it: `{"msg": text, "format": kind}` (the debug encoding)."""
    text, fmt = encode_debug(value, limit)
    return {"msg": text, "format": fmt}


# ----- scopes ----------------------------------------------------------------------------------------
def flow_scope_name(runtime: Runtime, flow_id: str) -> str:
    deployer = runtime.deployer
    known = (
        flow_id in deployer.scopes
        or flow_id in deployer.plan.scopes
        or any(n.get("id") == flow_id and n.get("type") in ("tab", "subflow") for n in runtime.flows)
    )
    if not known:
        raise ApiError(404, "not_found", f"no flow (tab or subflow instance) with id {flow_id!r}")
    return f"flow:{flow_id}"


def node_scope_name(runtime: Runtime, node_id: str) -> str:
    """`node:<z>:<alias>` of a running node, else of a node in the deployed flows."""
    deployer = runtime.deployer
    node = deployer.running.get(node_id)
    if node is not None:
        return f"node:{node.z}:{node.alias}"
    spec = deployer.plan.nodes.get(node_id)
    raw = spec.raw if spec is not None else next((n for n in runtime.flows if n.get("id") == node_id), None)
    if raw is None:
        raise ApiError(404, "not_found", f"no node with id {node_id!r} in the deployed flows")
    return f"node:{raw.get('z')}:{raw.get('_alias') or node_id}"


def _stores(runtime: Runtime, store: str | None) -> list[str]:
    names = store_names(runtime)
    if store is None:
        return names
    if store == "default":
        return [runtime.contexts.default]
    if store not in runtime.contexts.stores:
        raise ApiError(404, "not_found", f"unknown context store {store!r}; stores: {', '.join(names)}")
    return [store]


def read_context(runtime: Runtime, scope: str, key: str | None, store: str | None) -> dict[str, Any]:
    limit = runtime.settings.debug_max_length
    names = _stores(runtime, store)
    if key:
        name = names[0] if store else runtime.contexts.default
        data = runtime.contexts.stores[name].get_scope(scope) or {}
        try:
            value = props.get_path(data, key)
        except PropertyPathError as exc:
            raise ApiError(400, "invalid_key", f"cannot read context key {key!r}: {exc}") from None
        encoded: dict[str, Any] = encode_value(value, limit)
        if name != runtime.contexts.default:
            encoded["store"] = name
        return encoded
    return {
        name: {
            k: encode_value(v, limit)
            for k, v in (runtime.contexts.stores[name].get_scope(scope) or {}).items()
        }
        for name in names
    }


def delete_context(runtime: Runtime, scope: str, key: str, store: str | None) -> Response:
    name = _stores(runtime, store)[0] if store else runtime.contexts.default
    try:
        runtime.contexts.scope(scope).delete(key, name)
    except (PropertyPathError, ContextError) as exc:
        raise ApiError(400, "invalid_key", f"cannot delete context key {key!r}: {exc}") from None
    return Response(status_code=204)


Store = Annotated[
    str | None,
    Query(description="context store name (default: every store for a scope, the default one for a key)"),
]


@router.get("/context/global", summary="Global context")
async def get_global(request: Request, runtime: RuntimeDep, store: Store = None) -> dict[str, Any]:
    _check_global(request)
    return read_context(runtime, "global", None, store)


@router.get("/context/global/{key:path}", summary="One global context key")
async def get_global_key(request: Request, runtime: RuntimeDep, key: str, store: Store = None) -> dict:
    _check_global(request)
    return read_context(runtime, "global", key, store)


@router.delete("/context/global/{key:path}", status_code=204, summary="Delete a global context key")
async def delete_global_key(request: Request, runtime: RuntimeDep, key: str, store: Store = None) -> Response:
    _check_global(request)
    return delete_context(runtime, "global", key, store)


@router.get("/context/{kind}/{scope_id}", summary="Flow or node context")
async def get_scope(
    request: Request, runtime: RuntimeDep, kind: str, scope_id: str, store: Store = None
) -> dict[str, Any]:
    return read_context(runtime, _scope(request, runtime, kind, scope_id), None, store)


@router.get("/context/{kind}/{scope_id}/{key:path}", summary="One flow or node context key")
async def get_scope_key(
    request: Request, runtime: RuntimeDep, kind: str, scope_id: str, key: str, store: Store = None
) -> dict[str, Any]:
    return read_context(runtime, _scope(request, runtime, kind, scope_id), key, store)


@router.delete(
    "/context/{kind}/{scope_id}/{key:path}", status_code=204, summary="Delete a flow or node context key"
)
async def delete_scope_key(
    request: Request, runtime: RuntimeDep, kind: str, scope_id: str, key: str, store: Store = None
) -> Response:
    return delete_context(runtime, _scope(request, runtime, kind, scope_id), key, store)


def _check_global(request: Request) -> None:
    role = getattr(request.state, "role", None)
    if role != "administrator":
        raise denied(
            request,
            f"{getattr(request.state, 'user', None)!r} is a {role}; global context is shared by "
            "every tenant's flows and is for administrators",
        )


def _check_visible(request: Request, runtime: Runtime, kind: str, scope_id: str) -> None:
    """404 unless the caller may see the tab, subflow or config node that `scope_id` belongs to."""
    user, role = getattr(request.state, "user", None), getattr(request.state, "role", None)
    if role == "administrator":
        return
    unit = (
        scope_id
        if kind == "flow" and scope_id in containers(runtime.flows)
        else unit_of_running(runtime, scope_id)
    )
    if unit is None or not runtime.ownership.may_see(user, role, unit):
        what = "flow (tab or subflow instance)" if kind == "flow" else "node"
        raise ApiError(404, "not_found", f"no {what} with id {scope_id!r}")


def _scope(request: Request, runtime: Runtime, kind: str, scope_id: str) -> str:
    if kind in ("flow", "node"):
        _check_visible(request, runtime, kind, scope_id)
    if kind == "flow":
        return flow_scope_name(runtime, scope_id)
    if kind == "node":
        return node_scope_name(runtime, scope_id)
    raise ApiError(404, "not_found", f"unknown context scope {kind!r}; use global, flow/<id> or node/<id>")
