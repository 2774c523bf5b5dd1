"""From a validated flow set to a plan: the concrete nodes to run and the scopes they run in.

Subflow instances are expanded here, as Node-RED does: every node of the definition is copied
with id `<instanceId>-<nodeId>` and `z = <instanceId>`, keeping the template id as `_alias`.
Disabled nodes and the contents of disabled tabs are left out. Tabs holding a node that cannot
run here are left out whole and listed in `stopped_tabs`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from sofiaflow.runtime.core.config import _to_bool
from sofiaflow.runtime.flows.model import FlowSet
from sofiaflow.runtime.flows.registry import NodeRegistry
from sofiaflow.runtime.types import NodeDict

_IGNORED_FOR_CHANGE = ("x", "y", "wires", "w", "h")


@dataclass
class ScopeSpec:
    """A tab or a subflow instance."""

    id: str
    label: str
    env: list[list[dict]]  # env lists, innermost first
    parent: str | None
    instance: str | None = None  # the subflow instance node id, for subflow scopes
    tab: str | None = None  # the top-level tab this scope lives on
    groups: dict[str, NodeDict] = field(default_factory=dict)

    def fingerprint(self) -> str:
        return json.dumps([self.env, self.parent, self.instance, self.groups], sort_keys=True, default=str)


@dataclass
class NodeSpec:
    """One node to run: its final properties and where it lives."""

    id: str
    type: str
    raw: NodeDict
    scope: str | None  # FlowScope id; None for global config nodes
    tab: str | None
    wires: list[list[str]]
    is_config: bool = False

    def fingerprint(self) -> str:
        body = {k: v for k, v in self.raw.items() if k not in _IGNORED_FOR_CHANGE}
        return json.dumps(body, sort_keys=True, default=str)


@dataclass
class Plan:
    scopes: dict[str, ScopeSpec] = field(default_factory=dict)
    nodes: dict[str, NodeSpec] = field(default_factory=dict)
    stopped_tabs: dict[str, list[str]] = field(default_factory=dict)  # tab -> reasons
    global_env: list[dict] = field(default_factory=list)


def make_plan(fs: FlowSet, registry: NodeRegistry) -> Plan:
    """Expand and filter `fs` into the nodes to run."""
    plan = Plan()
    for obj in fs.configs.values():
        if obj.get("type") == "global-config":
            plan.global_env = list(obj.get("env") or [])
    for tab_id, tab in fs.tabs.items():
        if _to_bool(tab.get("disabled", False)):
            continue
        plan.scopes[tab_id] = ScopeSpec(
            id=tab_id,
            label=tab.get("label") or tab_id,
            env=[list(tab.get("env") or [])],
            parent=None,
            tab=tab_id,
            groups={g["id"]: g for g in fs.groups.values() if g.get("z") == tab_id},
        )
        reasons: list[str] = []
        _add_nodes(plan, fs, registry, fs.nodes_of(tab_id), tab_id, tab_id, {}, reasons, depth=0)
        if reasons:
            plan.stopped_tabs[tab_id] = reasons
    for tab_id in plan.stopped_tabs:
        for node_id in [n for n, spec in plan.nodes.items() if spec.tab == tab_id]:
            del plan.nodes[node_id]
        for scope_id in [s for s, spec in plan.scopes.items() if spec.tab == tab_id]:
            del plan.scopes[scope_id]
    for obj in fs.configs.values():
        z = obj.get("z")
        if obj.get("type") == "global-config" or _to_bool(obj.get("d", False)):
            continue
        if z is not None and z not in plan.scopes:
            continue  # scoped to a disabled tab, or to a subflow definition (copied per instance)
        if registry.find(obj["type"]) is None:
            continue  # users of an unknown config type are not runnable and already stopped
        plan.nodes[obj["id"]] = NodeSpec(obj["id"], obj["type"], obj, z, z, [], is_config=True)
    return plan


def _add_nodes(
    plan: Plan,
    fs: FlowSet,
    registry: NodeRegistry,
    nodes: list[NodeDict],
    scope: str,
    tab: str,
    id_map: dict[str, str],
    reasons: list[str],
    depth: int,
) -> None:
    if depth > 16:
        reasons.append(f"subflows nested more than 16 deep on scope {scope!r}")
        return
    for obj in nodes:
        if _to_bool(obj.get("d", False)):
            continue
        kind = obj.get("type", "")
        if kind.startswith("subflow:"):
            _expand_instance(plan, fs, registry, obj, scope, tab, reasons, depth)
            continue
        if registry.find(kind) is None:
            reasons.append(f"node {obj['id']!r} ({kind}) cannot run here")
            continue
        plan.nodes[obj["id"]] = NodeSpec(
            obj["id"],
            kind,
            obj,
            scope,
            tab,
            [list(p) for p in obj.get("wires") or []],
            is_config=bool(registry.find(kind).is_config_node),
        )


def _expand_instance(
    plan: Plan,
    fs: FlowSet,
    registry: NodeRegistry,
    inst: NodeDict,
    scope: str,
    tab: str,
    reasons: list[str],
    depth: int,
) -> None:
    sf = fs.subflows[inst["type"][len("subflow:") :]]
    inst_id = inst["id"]
    inner = [
        n for n in fs.by_id.values() if n.get("z") == sf["id"] and n.get("type") not in ("tab", "subflow")
    ]
    id_map = {n["id"]: f"{inst_id}-{n['id']}" for n in inner}
    plan.scopes[inst_id] = ScopeSpec(
        id=inst_id,
        label=inst.get("name") or sf.get("name") or inst_id,
        env=[list(inst.get("env") or []), list(sf.get("env") or [])],
        parent=scope,
        instance=inst_id,
        tab=tab,
        groups={id_map[g["id"]]: _remap(g, id_map, inst_id) for g in inner if g.get("type") == "group"},
    )
    copies = [_remap(n, id_map, inst_id) for n in inner if n.get("type") != "group"]
    # outputs of the subflow: internal (node, port) -> the instance's wires on the parent flow
    outer_wires = [list(p) for p in inst.get("wires") or []]
    entry_targets: list[str] = []
    for port in (sf.get("in") or [])[:1]:
        entry_targets = [id_map[w["id"]] for w in port.get("wires") or [] if w.get("id") in id_map]
    by_new_id = {c["id"]: c for c in copies}
    instance_wires: list[str] = list(entry_targets)
    for out_index, port in enumerate(sf.get("out") or []):
        targets = outer_wires[out_index] if out_index < len(outer_wires) else []
        for w in port.get("wires") or []:
            if w.get("id") == sf["id"]:
                instance_wires.extend(targets)  # the subflow passes its input straight out
                continue
            copy_ = by_new_id.get(id_map.get(w.get("id"), ""))
            if copy_ is None:
                continue
            p = int(w.get("port", 0))
            wires = copy_.setdefault("wires", [])
            while len(wires) <= p:
                wires.append([])
            wires[p] = list(wires[p]) + list(targets)
    plan.nodes[inst_id] = NodeSpec(
        inst_id, "subflow", {**inst, "_subflow": sf["id"]}, scope, tab, [instance_wires]
    )
    configs = [
        c
        for c in copies
        if c["id"] not in {n["id"] for n in copies if "wires" in n or "x" in n}
        and registry.find(c.get("type", "")) is not None
        and registry.find(c["type"]).is_config_node
    ]
    for c in configs:
        plan.nodes[c["id"]] = NodeSpec(c["id"], c["type"], c, inst_id, tab, [], is_config=True)
    flow_copies = [c for c in copies if c not in configs]
    _add_nodes(plan, fs, registry, flow_copies, inst_id, tab, id_map, reasons, depth + 1)


def _remap(obj: NodeDict, id_map: dict[str, str], inst_id: str) -> NodeDict:
    out = copy.deepcopy(obj)
    out["id"] = id_map[obj["id"]]
    out["_alias"] = obj["id"]
    out["z"] = inst_id
    if "g" in out and out["g"] in id_map:
        out["g"] = id_map[out["g"]]
    if isinstance(out.get("wires"), list):
        out["wires"] = [[id_map.get(t, t) for t in port] for port in out["wires"]]
    for key, value in list(out.items()):
        if key in ("id", "z", "wires", "_alias", "type"):
            continue
        out[key] = _remap_refs(value, id_map)
    return out


def _remap_refs(value: Any, id_map: dict[str, str]) -> Any:
    if isinstance(value, str):
        return id_map.get(value, value)
    if isinstance(value, list):
        return [_remap_refs(v, id_map) for v in value]
    return value
