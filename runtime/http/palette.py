"""`/nodes` and `/credentials/:type/:id`: the installed node types and a node's public credentials."""

from __future__ import annotations

from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sofiaflow.runtime.flows.registry import NodeRegistry
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep
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
    """One Node-RED node set per type (`<module>/<type>`), with what the editor needs to draw it."""
    out = []
    for entry in registry.describe():
        if entry["category"] == "internal":
            continue
        module = entry["module"] or "sofiaflow"
        item: dict[str, Any] = {
            "id": f"{module}/{entry['type']}",
            "name": entry["type"],
            "types": [entry["type"]],
            "enabled": True,
            "local": False,
            "user": False,
            "module": module,
            "version": module_version(module),
        }
        item.update({k: entry[k] for k in _EDITOR_KEYS})
        out.append(item)
    return out


@router.get("/nodes", summary="Installed node sets, with each type's JSON schema and palette info")
async def get_nodes(runtime: RuntimeDep) -> Any:
    return JSONResponse(node_sets(runtime.registry))


@router.get("/nodes/{module:path}", summary="One module (`{name, version, nodes}`) or one set (`module/set`)")
async def get_module(module: str, runtime: RuntimeDep) -> Any:
    sets = node_sets(runtime.registry)
    members = [s for s in sets if s["module"] == module]
    if members:
        return JSONResponse({"name": module, "version": module_version(module), "nodes": members})
    match = next((s for s in sets if s["id"] == module), None)
    if match is not None:
        return JSONResponse(match)
    modules = sorted({s["module"] for s in sets})
    raise ApiError(404, "not_found", f"no node module or set {module!r}; modules: {', '.join(modules)}")


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
