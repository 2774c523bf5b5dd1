"""The flow set model: parse Node-RED flow JSON, classify its objects, validate, build the graph.

The raw objects are never rewritten: `FlowSet.raw` is the list exactly as imported, so export
gives it back with every property the runtime does not understand.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sofiaflow.runtime.core.config import _to_bool
from sofiaflow.runtime.errors import FlowFormatError, Problem
from sofiaflow.runtime.flows.claims import claim_problems
from sofiaflow.runtime.flows.env_props import Lookup, PropertyEnv, static_lookups
from sofiaflow.runtime.flows.registry import NodeRegistry
from sofiaflow.runtime.types import FlowJSON, NodeDict

if TYPE_CHECKING:
    import networkx as nx  # imported by build_graph only: 14 MB a server need not hold

CONTAINER_TYPES = frozenset(("tab", "subflow", "group"))
NOT_RUNNABLE = "not-runnable"
WARNING = "warning"


@dataclass
class FlowSet:
    """A parsed flow set; `raw` is the imported list, untouched."""

    raw: FlowJSON
    by_id: dict[str, NodeDict] = field(default_factory=dict)
    tabs: dict[str, NodeDict] = field(default_factory=dict)
    subflows: dict[str, NodeDict] = field(default_factory=dict)
    groups: dict[str, NodeDict] = field(default_factory=dict)
    configs: dict[str, NodeDict] = field(default_factory=dict)
    flow_nodes: dict[str, NodeDict] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)

    def nodes_of(self, z: str) -> list[NodeDict]:
        """The flow nodes whose `z` is `z` (a tab or subflow id), in order."""
        return [n for n in self.flow_nodes.values() if n.get("z") == z]

    def container_label(self, z: str | None) -> str:
        if z is None:
            return "global"
        obj = self.tabs.get(z) or self.subflows.get(z)
        if obj is None:
            return z
        return obj.get("label") or obj.get("name") or z


def parse_json(text: str | bytes, source: str = "flow JSON") -> FlowJSON:
    """Decode flow JSON text: a list, or `{"flows": [...]}` as the v2 admin API sends it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FlowFormatError(
            f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    return as_flow_list(data, source)


def as_flow_list(data: Any, source: str = "flow JSON") -> FlowJSON:
    if isinstance(data, dict) and isinstance(data.get("flows"), list):
        data = data["flows"]
    if not isinstance(data, list):
        raise FlowFormatError(f"{source}: expected a JSON array of node objects, got {type(data).__name__}")
    return data


def is_config_object(obj: NodeDict, registry: NodeRegistry | None) -> bool:
    """Config nodes: declared so by their type, or (unknown types) objects without x/y, as Node-RED."""
    cls = registry.find(obj.get("type", "")) if registry else None
    if cls is not None:
        return cls.is_config_node
    return "x" not in obj and "y" not in obj and "wires" not in obj


def load(raw: FlowJSON, registry: NodeRegistry | None = None) -> FlowSet:
    """Classify the objects of `raw` (which must already be a list)."""
    fs = FlowSet(raw=raw)
    for obj in raw:
        if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
            continue
        node_id = obj["id"]
        if node_id in fs.by_id:
            fs.duplicates.append(node_id)
            continue
        fs.by_id[node_id] = obj
        kind = obj.get("type")
        if kind == "tab":
            fs.tabs[node_id] = obj
        elif kind == "subflow":
            fs.subflows[node_id] = obj
        elif kind == "group":
            fs.groups[node_id] = obj
        elif isinstance(kind, str) and is_config_object(obj, registry):
            fs.configs[node_id] = obj
        else:
            fs.flow_nodes[node_id] = obj
    return fs


def output_count(obj: NodeDict, registry: NodeRegistry, fs: FlowSet) -> int | None:
    """How many outputs the node has, or None when unknown."""
    kind = obj.get("type", "")
    if kind.startswith("subflow:"):
        sf = fs.subflows.get(kind[len("subflow:") :])
        return len(sf.get("out") or []) if sf else None
    cls = registry.find(kind)
    if cls is None:
        return None
    try:
        return cls.output_count(cls.Config.model_validate(obj))
    except (ValidationError, ValueError, TypeError):
        return None


def validate(
    fs: FlowSet, registry: NodeRegistry, finite: bool = False, env_refs: bool = True
) -> list[Problem]:
    """Every problem of the flow set at once: errors, not-runnable nodes, and warnings. `finite`: the caller
    knows every number in the flows is finite (e.g. it encoded them with `allow_nan=False`). `env_refs`: False
    when the caller knows no property names an env variable (`${VAR}`, `$(VAR)`).

    A config is checked with its `${VAR}` properties filled from the flow set's env and the process
    environment, as Node-RED fills them before a node sees them (env_props.py); one that is still not valid
    there is left to the deploy's build, which fills it from the node's real scope and names the variable."""
    problems: list[Problem] = []
    add = problems.append
    for index, obj in enumerate(fs.raw):
        if not isinstance(obj, dict):
            add(Problem(f"item {index} is a {type(obj).__name__}, not a node object"))
            continue
        if not isinstance(obj.get("id"), str) or not obj["id"]:
            add(Problem(f"item {index} has no string 'id'", node_type=obj.get("type")))
        if not isinstance(obj.get("type"), str) or not obj["type"]:
            add(Problem(f"item {index} has no string 'type'", node_id=obj.get("id")))
    for index, obj in enumerate([] if finite else fs.raw):
        if isinstance(obj, dict):
            for path, value in non_finite_numbers(obj):
                add(
                    Problem(
                        f"property {path!r} is {_js_number(value)}: flow JSON has only finite numbers",
                        obj.get("id") if isinstance(obj.get("id"), str) else f"item {index}",
                        obj.get("type") if isinstance(obj.get("type"), str) else None,
                        path,
                    )
                )
    for dup in dict.fromkeys(fs.duplicates):
        add(Problem("duplicate id: more than one object has this id", node_id=dup))
    if any(isinstance(o, dict) and not isinstance(o.get("type"), str) for o in fs.raw):
        return problems  # an object whose type is not a string cannot be checked further

    containers = set(fs.tabs) | set(fs.subflows)
    flow_node_count = len(fs.flow_nodes)
    every = list(fs.flow_nodes.values()) + list(fs.configs.values()) + list(fs.groups.values())
    for position, obj in enumerate(every):
        node_id, kind = obj["id"], obj.get("type", "")
        z = obj.get("z")
        if position < flow_node_count and z is None:  # a flow node (not a config node or group) needs its z
            add(Problem("node has no 'z' (the tab or subflow it sits on)", node_id, kind))
        elif z is not None and z not in containers:
            add(Problem(f"node is on a missing tab or subflow {z!r}", node_id, kind, "z"))
        if obj.get("g") is not None and obj["g"] not in fs.groups:
            add(Problem(f"node is in a missing group {obj['g']!r}", node_id, kind, "g", severity=WARNING))

    for obj in list(fs.flow_nodes.values()) + list(fs.configs.values()):
        disabled = None if _to_bool(obj.get("d", False)) else registry and registry.disabled_set(obj["type"])
        if disabled:
            add(
                Problem(
                    f"node set {disabled!r} is disabled: enable it to deploy {obj['type']!r}",
                    obj["id"],
                    obj["type"],
                )
            )
    lookups = static_lookups(fs) if env_refs else None
    claims: dict[str, list[str]] = {}
    for obj in fs.flow_nodes.values():
        _validate_node(obj, fs, registry, add, claims if _is_enabled(obj, fs) else None, lookups)
    problems.extend(claim_problems(claims, lambda holder: fs.by_id[holder].get("type")))
    for obj in fs.configs.values():
        _validate_type_and_config(obj, fs, registry, add, lookups)
    for sf in fs.subflows.values():
        _validate_subflow_ports(sf, fs, add)
    return problems


def non_finite_numbers(obj: NodeDict, limit: int = 20) -> list[tuple[str, float]]:
    """(property path, value) of the NaN and infinite numbers in a node object (at most `limit` of them)."""
    try:
        if not _has_non_finite(obj):  # the usual case, without building a path for every value
            return []
    except RecursionError:  # nested deeper than the quick check goes: the walk below has no such limit
        pass
    found: list[tuple[str, float]] = []
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in reversed(obj.items())]
    while stack and len(found) < limit:
        path, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            found.append((path, value))
        elif isinstance(value, dict):
            stack.extend((f"{path}.{k}", v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(value))))
    return found


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, str):
        return False
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_has_non_finite, value.values()))
    if isinstance(value, list):
        return any(map(_has_non_finite, value))
    return False


def _js_number(value: float) -> str:
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def _is_enabled(obj: NodeDict, fs: FlowSet) -> bool:
    tab = fs.tabs.get(obj.get("z", ""))
    return not _to_bool(obj.get("d", False)) and not (
        tab is not None and _to_bool(tab.get("disabled", False))
    )


def _validate_node(
    obj: NodeDict,
    fs: FlowSet,
    registry: NodeRegistry,
    add: Any,
    claims: dict[str, list[str]] | None = None,
    lookups: Callable[[NodeDict], Lookup] | None = None,
) -> None:
    node_id, kind = obj["id"], obj.get("type", "")
    wires = obj.get("wires", [])
    if not isinstance(wires, list) or not all(
        isinstance(port, list) and all(isinstance(t, str) for t in port) for port in wires
    ):
        add(Problem("'wires' must be a list of lists of node ids", node_id, kind, "wires"))
        wires = []
    config = _validate_type_and_config(obj, fs, registry, add, lookups)
    outputs = None
    if config is not None:
        cls = registry.find(kind)
        outputs = (
            cls.output_count(config)
            if cls is not None and config is not True
            else output_count(obj, registry, fs)
        )
        if claims is not None and cls is not None and config is not True:
            for resource in cls.claims(config):
                claims.setdefault(resource, []).append(node_id)
    for port, targets in enumerate(wires):
        if targets and outputs is not None and port >= outputs:
            add(
                Problem(
                    f"wired from output {port + 1}, but the node has {outputs} output(s)",
                    node_id,
                    kind,
                    "wires",
                )
            )
        for target in targets:
            other = fs.flow_nodes.get(target)
            if other is None:
                add(Problem(f"output {port + 1} is wired to missing node {target!r}", node_id, kind, "wires"))
            elif other.get("z") != obj.get("z"):
                add(
                    Problem(
                        f"output {port + 1} is wired to node {target!r} on another tab",
                        node_id,
                        kind,
                        "wires",
                    )
                )
    if kind in ("link out", "link in", "link call"):
        for target in obj.get("links") or []:
            if target not in fs.flow_nodes:
                add(Problem(f"links to missing node {target!r}", node_id, kind, "links", severity=WARNING))


def _validate_type_and_config(
    obj: NodeDict,
    fs: FlowSet,
    registry: NodeRegistry,
    add: Any,
    lookups: Callable[[NodeDict], Lookup] | None = None,
) -> Any:
    """The validated config (True for subflow instances), or None after reporting why not. With `lookups`, the
    config of the node's `${VAR}` properties filled in; an error on one of those is the build's to report."""
    node_id, kind = obj["id"], obj.get("type", "")
    if kind.startswith("subflow:"):
        if kind[len("subflow:") :] not in fs.subflows:
            add(Problem(f"instance of missing subflow {kind[len('subflow:') :]!r}", node_id, kind, "type"))
            return None
        return True
    cls = registry.find(kind)
    if cls is None:
        reason = NOT_RUNNABLE_REASONS.get(kind, f"node type {kind!r} is not installed")
        add(Problem(reason, node_id, kind, "type", severity=NOT_RUNNABLE))
        return None
    env = PropertyEnv.of(obj, lookups) if lookups is not None else None
    try:
        config = cls.Config.model_validate(env.substituted() if env is not None else obj)
    except ValidationError as exc:
        for err in exc.errors():
            if env is not None and env.ref_at(err["loc"]) is not None:
                continue  # filled from the node's own scope when it is built, and reported there
            loc = ".".join(str(p) for p in err["loc"])
            add(Problem(f"invalid value {err.get('input')!r}: {err['msg']}", node_id, kind, loc))
        return None
    check = getattr(cls, "check_config", None)
    if check is not None:
        for message in check(config):
            add(Problem(message, node_id, kind))
    return config


def _validate_subflow_ports(sf: NodeDict, fs: FlowSet, add: Any) -> None:
    for direction in ("in", "out"):
        for port in sf.get(direction) or []:
            for w in (port or {}).get("wires") or []:
                target = w.get("id") if isinstance(w, dict) else None
                if target != sf["id"] and (
                    target not in fs.flow_nodes or fs.flow_nodes[target].get("z") != sf["id"]
                ):
                    add(
                        Problem(
                            f"subflow {direction!r} port wired to missing node {target!r}",
                            sf["id"],
                            "subflow",
                            direction,
                        )
                    )


NOT_RUNNABLE_REASONS = {
    "unknown": "placeholder for a node type that was missing where this flow was exported",
}


def build_graph(fs: FlowSet) -> nx.MultiDiGraph:
    """The wiring graph: flow nodes as vertices, one edge per wire (attr `port`) and per link."""
    import networkx as nx

    graph = nx.MultiDiGraph()
    for node_id, obj in fs.flow_nodes.items():
        graph.add_node(node_id, type=obj.get("type"), z=obj.get("z"))
    for node_id, obj in fs.flow_nodes.items():
        for port, targets in enumerate(obj.get("wires") or []):
            for target in targets if isinstance(targets, list) else []:
                if target in fs.flow_nodes:
                    graph.add_edge(node_id, target, port=port)
        if obj.get("type") in ("link out", "link call"):
            for target in obj.get("links") or []:
                if target in fs.flow_nodes:
                    graph.add_edge(node_id, target, port=0, link=True)
        if obj.get("type") == "link in":
            for source in obj.get("links") or []:
                if source in fs.flow_nodes and fs.flow_nodes[source].get("type") == "link out":
                    if not graph.has_edge(source, node_id):
                        graph.add_edge(source, node_id, port=0, link=True)
    return graph


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
