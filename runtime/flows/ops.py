"""Per-tab operations of the admin API (`/flow/:id`) as pure functions over a flow set."""

from __future__ import annotations

import os
from typing import Any

from sofiaflow.runtime.errors import FlowValidationError, Problem
from sofiaflow.runtime.types import FlowJSON, NodeDict

_TAB_KEYS = ("id", "label", "disabled", "info", "env")


def new_id() -> str:
    return os.urandom(8).hex()


def get_flow(flows: FlowJSON, flow_id: str) -> dict[str, Any] | None:
    """`GET /flow/:id`: the tab with its nodes and tab-scoped configs, or the `global` configs and subflows."""
    if flow_id == "global":
        subflows = [n for n in flows if n.get("type") == "subflow"]
        sf_ids = {s["id"] for s in subflows}
        return {
            "id": "global",
            "configs": [n for n in flows if "z" not in n and n.get("type") not in ("tab", "subflow")],
            "subflows": subflows + [n for n in flows if n.get("z") in sf_ids],
        }
    tab = next((n for n in flows if n.get("type") == "tab" and n.get("id") == flow_id), None)
    if tab is None:
        return None
    out: dict[str, Any] = {k: tab[k] for k in _TAB_KEYS if k in tab}
    out.setdefault("disabled", False)
    out.setdefault("info", "")
    out.setdefault("env", [])
    members = [n for n in flows if n.get("z") == flow_id]
    out["nodes"] = [
        _strip_link_wires(n) for n in members if "x" in n or "wires" in n or n.get("type") == "group"
    ]
    configs = [n for n in members if n not in out["nodes"] and not ("x" in n or "wires" in n)]
    if configs:
        out["configs"] = configs
    return out


def _strip_link_wires(node: NodeDict) -> NodeDict:
    if node.get("type") == "link out" and node.get("wires") == []:
        return {k: v for k, v in node.items() if k != "wires"}
    return node


def _tab_objects(body: dict[str, Any], flow_id: str) -> list[NodeDict]:
    if not isinstance(body, dict):
        raise FlowValidationError([Problem("the body must be a JSON object with 'nodes'")])
    tab = {
        "id": flow_id,
        "type": "tab",
        "label": body.get("label", ""),
        "disabled": bool(body.get("disabled", False)),
        "info": body.get("info", ""),
        "env": body.get("env", []),
    }
    for key, value in body.items():
        if key not in ("id", "nodes", "configs", "subflows") and key not in tab:
            tab[key] = value
    members: list[NodeDict] = []
    for key in ("nodes", "configs"):
        items = body.get(key) or []
        if not isinstance(items, list):
            raise FlowValidationError([Problem(f"'{key}' must be a list")])
        for node in items:
            if not isinstance(node, dict):
                raise FlowValidationError([Problem(f"'{key}' holds a non-object")])
            if node.get("type") in ("tab", "subflow"):
                raise FlowValidationError(
                    [Problem("a flow cannot contain a tab or a subflow", node.get("id"), node.get("type"))]
                )
            members.append({**node, "z": flow_id})
    return [tab, *members]


def add_flow(flows: FlowJSON, body: dict[str, Any]) -> tuple[FlowJSON, str]:
    """`POST /flow`: a new tab; returns the new flow set and the tab id."""
    flow_id = body.get("id") if isinstance(body, dict) and isinstance(body.get("id"), str) else new_id()
    if any(n.get("id") == flow_id for n in flows):
        raise FlowValidationError([Problem("a flow with this id already exists", flow_id)])
    objects = _tab_objects(body, flow_id)
    existing = {n.get("id") for n in flows}
    dup = [o["id"] for o in objects[1:] if o.get("id") in existing]
    if dup:
        raise FlowValidationError([Problem("duplicate id", d) for d in dup])
    return [*flows, *objects], flow_id


def update_flow(flows: FlowJSON, flow_id: str, body: dict[str, Any]) -> FlowJSON:
    """`PUT /flow/:id`: replace that tab's contents (for `global`: its configs and subflows)."""
    if flow_id == "global":
        sf_ids = {n["id"] for n in flows if n.get("type") == "subflow"}
        kept = [
            n for n in flows if not ("z" not in n and n.get("type") != "tab") and n.get("z") not in sf_ids
        ]
        return [*kept, *(body.get("subflows") or []), *(body.get("configs") or [])]
    if not any(n.get("type") == "tab" and n.get("id") == flow_id for n in flows):
        raise KeyError(flow_id)
    kept = [n for n in flows if n.get("id") != flow_id and n.get("z") != flow_id]
    index = next(i for i, n in enumerate(flows) if n.get("id") == flow_id)
    objects = _tab_objects(body, flow_id)
    return kept[:index] + objects + kept[index:]


def delete_flow(flows: FlowJSON, flow_id: str) -> FlowJSON:
    """`DELETE /flow/:id`: remove the tab and everything on it."""
    if not any(n.get("type") == "tab" and n.get("id") == flow_id for n in flows):
        raise KeyError(flow_id)
    return [n for n in flows if n.get("id") != flow_id and n.get("z") != flow_id]
