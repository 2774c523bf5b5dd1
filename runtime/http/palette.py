"""`/nodes` and `/credentials/:type/:id`: the installed node types and a node's public credentials."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from sofiaflow.runtime.flows.registry import NODE_RED_MODULE, NODE_RED_SETS, NodeRegistry
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, require_administrator
from sofiaflow.runtime.security.ownership import unit_of_running

router = APIRouter(tags=["nodes"])

_EDITOR_KEYS = ("category", "label", "help", "color", "inputs", "outputs", "config", "credentials", "schema")


@lru_cache(maxsize=64)
def module_version(module: str) -> str:
    for name in (module, "sofiaflow"):
        try:
            return version(name)
        except (PackageNotFoundError, ValueError):
            continue
    return "0.0.0"


def node_sets(registry: NodeRegistry) -> list[dict[str, Any]]:
    """Node-RED's node sets (`node-red/<set>`, `sofiaflow/<family>`, `<package>/<type>`): each with its types,
    whether it is enabled, and what the editor needs to draw its first type (`palette`: every type's)."""
    sets: dict[str, dict[str, Any]] = {}
    for entry in registry.describe():
        if entry["category"] == "internal":
            continue
        set_id = registry.set_id(entry["type"])
        module, _, name = set_id.partition("/")
        item = sets.get(set_id)
        if item is None:
            item = sets[set_id] = {
                "id": set_id,
                "name": name,
                "types": [],
                "enabled": set_id not in registry.disabled_sets,
                "local": False,
                "user": False,
                "module": module,
                "version": module_version("sofiaflow" if module == NODE_RED_MODULE else module),
                "palette": {},
            }
            item.update({k: entry[k] for k in _EDITOR_KEYS})
        item["types"].append(entry["type"])
        item["palette"][entry["type"]] = {k: entry[k] for k in _EDITOR_KEYS}
    order = {name: i for i, name in enumerate(NODE_RED_SETS)}
    for item in sets.values():
        if item["module"] == NODE_RED_MODULE:
            item["types"].sort(key=NODE_RED_SETS[item["name"]].index)
    return sorted(
        sets.values(), key=lambda s: (s["module"] != NODE_RED_MODULE, order.get(s["name"], 0), s["id"])
    )


def _find(registry: NodeRegistry, path: str) -> tuple[str, list[dict[str, Any]]]:
    """("module" or "set", the sets) named by `path`; 404 naming the modules when nothing matches."""
    sets = node_sets(registry)
    members = [s for s in sets if s["module"] == path]
    if members:
        return "module", members
    match = [s for s in sets if s["id"] == path]
    if match:
        return "set", match
    modules = sorted({s["module"] for s in sets})
    raise ApiError(404, "not_found", f"no node module or set {path!r}; modules: {', '.join(modules)}")


@router.get("/nodes", summary="Installed node sets, with each type's JSON schema and palette info")
async def get_nodes(runtime: RuntimeDep) -> Any:
    return JSONResponse(node_sets(runtime.registry))


@router.get("/nodes/{module:path}", summary="One module (`{name, version, nodes}`) or one set (`module/set`)")
async def get_module(module: str, runtime: RuntimeDep) -> Any:
    kind, sets = _find(runtime.registry, module)
    if kind == "module":
        return JSONResponse({"name": module, "version": sets[0]["version"], "nodes": sets})
    return JSONResponse(sets[0])


@router.put(
    "/nodes/{module:path}",
    summary='Enable or disable a module or one set (`{"enabled": true|false}`); persisted; administrators',
)
async def put_module(
    module: str, request: Request, runtime: RuntimeDep, user: Annotated[str, Depends(require_administrator)]
) -> Any:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("enabled"), bool):
        raise ApiError(
            400, "invalid_request", 'PUT /nodes/...: the body must be {"enabled": true} or {"enabled": false}'
        )
    _, sets = _find(runtime.registry, module)
    if not body["enabled"]:
        types = {t for s in sets for t in s["types"]}
        in_use = sorted({n["type"] for n in runtime.deployer.flows if isinstance(n, dict)} & types)
        if in_use:  # as Node-RED: a set whose types the deployed flows use stays enabled
            raise ApiError(400, "type_in_use", f"Type in use: {', '.join(in_use)}")
    for s in sets:
        runtime.registry.set_enabled(s["id"], body["enabled"])
    runtime.registry.save_disabled(runtime.db)
    runtime.audit.record(user, "nodes.enable" if body["enabled"] else "nodes.disable", module, "ok")
    return await get_module(module, runtime)


@router.get(
    "/credentials/{node_type}/{node_id}",
    tags=["credentials"],
    summary="A node's credentials as the editor may see them (passwords as has_<name>)",
)
async def get_credentials(
    node_type: str, node_id: str, request: Request, runtime: RuntimeDep
) -> dict[str, Any]:
    cls = runtime.registry.find(node_type)
    if cls is None:
        raise ApiError(404, "not_found", f"unknown node type {node_type!r}")
    unit = unit_of_running(runtime, node_id)  # another tenant's node: as if it did not exist
    if unit is not None and not runtime.ownership.may_see(request.state.user, request.state.role, unit):
        raise ApiError(404, "not_found", f"no node with id {node_id!r}")
    return runtime.deployer.credentials.public_view(node_id, dict(cls.credentials_spec))
