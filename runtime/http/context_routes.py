"""`/context/{global|flow/:id|node/:id}[/key]`: read and delete context as Node-RED's sidebar does.

Values are encoded as Node-RED's `util.encodeObject`: `{"msg": "<text>", "format": "number"}`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from .. import props
from ..context import ContextError
from ..props import PropertyPathError
from ..runtime import Runtime
from .deps import ApiError, RuntimeDep
from .info_routes import store_names

router = APIRouter(tags=["context"])


# ----- encoding ------------------------------------------------------------------------------------
def _number_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", repr(value))


def _json_safe(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return value[:limit] + "..." if len(value) > limit else value
    if isinstance(value, float) and not math.isfinite(value):
        return {"__enc__": True, "type": "number", "data": _number_text(value)}
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"type": "Buffer", "data": list(value[:limit]), "__enc__": True, "length": len(value)}
    if isinstance(value, dict):
        return {str(k): _json_safe(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if len(items) > limit:
            return {"__enc__": True, "type": "array", "data": [_json_safe(v, limit) for v in items[:limit]],
                    "length": len(items)}
        return [_json_safe(v, limit) for v in items]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return {"__enc__": True, "type": "internal", "data": repr(value)[:limit]}


def encode_value(value: Any, limit: int = 1000) -> dict[str, str]:
    """Node-RED's encoding of one value for the editor: `{"msg": text, "format": kind}`."""
    if value is None:
        return {"msg": "(undefined)", "format": "null"}
    if isinstance(value, bool):
        return {"msg": "true" if value else "false", "format": "boolean"}
    if isinstance(value, (int, float)):
        return {"msg": _number_text(value), "format": "number"}
    if isinstance(value, str):
        return {"msg": value[:limit] + "..." if len(value) > limit else value, "format": f"string[{len(value)}]"}
    if isinstance(value, (bytes, bytearray)):
        return {"msg": bytes(value).hex()[:limit], "format": f"buffer[{len(value)}]"}
    if isinstance(value, (list, tuple, set, frozenset)):
        fmt = f"array[{len(value)}]"
    elif isinstance(value, dict):
        fmt = "Object"
    elif hasattr(value, "isoformat"):
        return {"msg": value.isoformat(), "format": "Date"}
    else:
        return {"msg": str(value)[:limit], "format": type(value).__name__}
    text = json.dumps(_json_safe(value, limit), ensure_ascii=False, separators=(",", ":"), default=repr)
    return {"msg": text, "format": fmt}


# ----- scopes ----------------------------------------------------------------------------------------
def flow_scope_name(runtime: Runtime, flow_id: str) -> str:
    deployer = runtime.deployer
    known = flow_id in deployer.scopes or flow_id in deployer.plan.scopes or any(
        n.get("id") == flow_id and n.get("type") in ("tab", "subflow") for n in runtime.flows)
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
    return {name: {k: encode_value(v, limit) for k, v in (runtime.contexts.stores[name].get_scope(scope) or {}).items()}
            for name in names}


def delete_context(runtime: Runtime, scope: str, key: str, store: str | None) -> Response:
    name = _stores(runtime, store)[0] if store else runtime.contexts.default
    try:
        runtime.contexts.scope(scope).delete(key, name)
    except (PropertyPathError, ContextError) as exc:
        raise ApiError(400, "invalid_key", f"cannot delete context key {key!r}: {exc}") from None
    return Response(status_code=204)


Store = Annotated[str | None, Query(description="context store name (default: every store for a scope, the default one for a key)")]


@router.get("/context/global", summary="Global context")
async def get_global(runtime: RuntimeDep, store: Store = None) -> dict[str, Any]:
    return read_context(runtime, "global", None, store)


@router.get("/context/global/{key:path}", summary="One global context key")
async def get_global_key(runtime: RuntimeDep, key: str, store: Store = None) -> dict:
    return read_context(runtime, "global", key, store)


@router.delete("/context/global/{key:path}", status_code=204, summary="Delete a global context key")
async def delete_global_key(runtime: RuntimeDep, key: str, store: Store = None) -> Response:
    return delete_context(runtime, "global", key, store)


@router.get("/context/{kind}/{scope_id}", summary="Flow or node context")
async def get_scope(runtime: RuntimeDep, kind: str, scope_id: str, store: Store = None) -> dict[str, Any]:
    return read_context(runtime, _scope(runtime, kind, scope_id), None, store)


@router.get("/context/{kind}/{scope_id}/{key:path}", summary="One flow or node context key")
async def get_scope_key(runtime: RuntimeDep, kind: str, scope_id: str, key: str, store: Store = None) -> dict[str, Any]:
    return read_context(runtime, _scope(runtime, kind, scope_id), key, store)


@router.delete("/context/{kind}/{scope_id}/{key:path}", status_code=204, summary="Delete a flow or node context key")
async def delete_scope_key(runtime: RuntimeDep, kind: str, scope_id: str, key: str,
                           store: Store = None) -> Response:
    return delete_context(runtime, _scope(runtime, kind, scope_id), key, store)


def _scope(runtime: Runtime, kind: str, scope_id: str) -> str:
    if kind == "flow":
        return flow_scope_name(runtime, scope_id)
    if kind == "node":
        return node_scope_name(runtime, scope_id)
    raise ApiError(404, "not_found", f"unknown context scope {kind!r}; use global, flow/<id> or node/<id>")
