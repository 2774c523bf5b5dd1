"""Which properties of a node are references to other nodes, and an import that remaps only those.

As Node-RED's `importNodes`: a config node identical to one already here (same type, same properties once
its own references are followed) is reused instead of copied; every other imported object whose id is
taken gets a new id, and only real references follow it: `wires`, `z`, `g`, link ids, the `scope` of
catch/status/complete nodes, a group's `nodes`, subflow port wires, `subflow:<id>` types, and the
config-node properties a node type declares. A text property whose value happens to equal an id is
never touched.

A node type declares a config-node property in its config model's JSON schema (`"x-config"` on the
field, or `"x-config-type"`); the core types that predate that marker are listed in `REFERENCE_PROPERTIES`, as Node-RED's
own node definitions declare them (`defaults: {broker: {type: "mqtt-broker"}}`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

REFERENCE_PROPERTIES: dict[str, dict[str, tuple[str, ...]]] = {
    "mqtt in": {"broker": ("mqtt-broker",)},
    "mqtt out": {"broker": ("mqtt-broker",)},
    "mqtt-broker": {"tls": ("tls-config",)},
    "http request": {"tls": ("tls-config",), "proxy": ("http proxy",)},
    "websocket in": {"server": ("websocket-listener",), "client": ("websocket-client",)},
    "websocket out": {"server": ("websocket-listener",), "client": ("websocket-client",)},
    "websocket-client": {"tls": ("tls-config",)},
    "tcp in": {"tls": ("tls-config",)},
    "tcp out": {"tls": ("tls-config",)},
    "tcp request": {"tls": ("tls-config",)},
    "api-endpoint": {"api": ("api",)},
    "ssap process": {"broker": ("ssap-broker",)},
    "ssap-mqtt in": {"broker": ("ssap-broker",)},
}
"""node type -> property -> the config node types it may name (Node-RED's `defaults` with a `type`)."""

ID_LIST_PROPERTIES: dict[str, tuple[str, ...]] = {
    "link in": ("links",),
    "link out": ("links",),
    "link call": ("links",),
    "catch": ("scope",),
    "status": ("scope",),
    "complete": ("scope",),
    "group": ("nodes",),
}
"""node type -> properties holding a list of node ids."""

CONTAINERS = ("tab", "subflow")
_OWN_KEYS = ("id", "z", "credentials", "_users")

Types = dict[str, dict]


def reference_properties(node_type: str, types: Types | None = None) -> dict[str, tuple[str, ...]]:
    """property -> config node types, for the config-node references of `node_type`.

    From the type's schema (`x-config`, `x-config-type`) and `REFERENCE_PROPERTIES`; with `types` (the palette),
    only properties the type's config model has.
    """
    entry = (types or {}).get(node_type)
    props: dict[str, Any] = ((entry or {}).get("schema") or {}).get("properties") or {}
    out = {}
    for key, spec in props.items():
        target = (spec.get("x-config") or spec.get("x-config-type")) if isinstance(spec, dict) else None
        if target:
            out[key] = (target,) if isinstance(target, str) else tuple(target)
    for key, targets in REFERENCE_PROPERTIES.get(node_type, {}).items():
        if entry is None or key in props:
            out.setdefault(key, targets)
    return out


def is_config(node: dict, types: Types | None = None) -> bool:
    """A config node: declared so by its type, or (unknown types) an object without x and wires, as Node-RED."""
    kind = node.get("type", "")
    if kind in CONTAINERS or kind == "group":
        return False
    entry = (types or {}).get(kind)
    if entry is not None:
        return bool(entry.get("config"))
    return "x" not in node and "wires" not in node


def config_references(node: dict, nodes: dict[str, dict], types: Types | None = None) -> dict[str, str]:
    """property -> id of the config node it names, for each reference property naming one in `nodes`."""
    out = {}
    for key, targets in reference_properties(node.get("type", ""), types).items():
        value = node.get(key)
        if isinstance(value, str) and value in nodes and nodes[value].get("type") in targets:
            out[key] = value
    return out


def config_users(flows: list[dict], types: Types | None = None) -> dict[str, list[dict]]:
    """config node id -> the nodes (flow nodes and config nodes) that name it, in flow order."""
    by_id = {n["id"]: n for n in flows if isinstance(n, dict) and "id" in n}
    users: dict[str, list[dict]] = {n["id"]: [] for n in flows if "id" in n and is_config(n, types)}
    for node in flows:
        for target in config_references(node, by_id, types).values():
            users.setdefault(target, []).append(node)
    return users


def only_used_by(flows: list[dict], removed: set[str], types: Types | None = None) -> list[dict]:
    """Config nodes every user of which is in `removed` (and that had one): they go with it, transitively."""
    users = config_users(flows, types)
    gone = set(removed)
    found: list[dict] = []
    by_id = {n["id"]: n for n in flows if "id" in n}
    changed = True
    while changed:
        changed = False
        for config_id, who in users.items():
            if config_id in gone or not who:
                continue
            if all(u["id"] in gone for u in who):
                gone.add(config_id)
                found.append(by_id[config_id])
                changed = True
    return found


def _signature(node: dict, remap: dict[str, str], types: Types | None) -> str:
    """A config node's type and properties, its references read through `remap`: equal means identical."""
    props = {k: v for k, v in node.items() if k not in _OWN_KEYS}
    for key in reference_properties(node.get("type", ""), types):
        value = props.get(key)
        if isinstance(value, str):
            props[key] = remap.get(value, value)
    return json.dumps(props, sort_keys=True, default=str)


def reuse_configs(items: list[dict], existing: dict[str, dict], types: Types | None = None) -> dict[str, str]:
    """imported config node id -> id of the identical config node already here, for each that has one.

    The same id first, else any of the same type and properties; a config node naming another is compared
    once that one is decided (a tls-config reused makes the mqtt-broker naming it identical).
    """
    imported = {n["id"]: n for n in items}
    pending = [n for n in items if is_config(n, types)]
    here = [n for n in existing.values() if is_config(n, types)]
    reused: dict[str, str] = {}
    fresh: dict[str, str] = {}
    decided: set[str] = set()
    while pending:
        ready = [
            n
            for n in pending
            if all(
                ref in decided or ref not in imported
                for ref in config_references(n, {**existing, **imported}, types).values()
            )
        ] or pending[:1]
        for node in ready:
            pending.remove(node)
            decided.add(node["id"])
            sig = _signature(node, {**fresh, **reused}, types)
            same = existing.get(node["id"])
            candidates = ([same] if same is not None else []) + here
            match = next(
                (
                    c
                    for c in candidates
                    if c.get("type") == node.get("type") and _signature(c, {}, types) == sig
                ),
                None,
            )
            if match is not None:
                reused[node["id"]] = match["id"]
            else:  # copied under a new id: whatever names it differs from what names the one here
                fresh[node["id"]] = "\0new " + node["id"]
    return reused


def remap_import(
    items: list[dict],
    existing: dict[str, dict],
    target_tab: str,
    new_id: Callable[[], str],
    types: Types | None = None,
    offset: tuple[float, float] = (0, 0),
) -> tuple[list[dict], dict[str, str]]:
    """(the objects to add, old id -> id here) for importing `items` next to `existing` onto `target_tab`.

    Reused config nodes are not added; objects whose id is taken get `new_id()`; placed nodes whose tab is
    not imported go to `target_tab` (moved by `offset`); config nodes of a tab that is not here become global.
    """
    items = [copy.deepcopy(n) for n in items if isinstance(n, dict) and n.get("id") and n.get("type")]
    remap = reuse_configs(items, existing, types)
    reused = set(remap)
    taken = set(existing)
    for node in items:
        if node["id"] not in remap:
            remap[node["id"]] = new_id() if node["id"] in taken else node["id"]
            taken.add(remap[node["id"]])
    imported_containers = {n["id"] for n in items if n.get("type") in CONTAINERS}

    def ref(value: Any) -> Any:
        return remap.get(value, value) if isinstance(value, str) else value

    def known(value: Any) -> bool:
        return isinstance(value, str) and (value in remap or value in existing)

    out = []
    for node in items:
        if node["id"] in reused:
            continue
        old_z = node.get("z")
        node["id"] = remap[node["id"]]
        kind = node.get("type", "")
        if kind not in CONTAINERS:
            if old_z in imported_containers:
                node["z"] = remap[old_z]
            elif "x" in node and not is_config(node, types):
                node["z"] = target_tab
                node["x"] = round((node.get("x") or 0) + offset[0])
                node["y"] = round((node.get("y") or 0) + offset[1])
            elif old_z and old_z not in existing:
                node.pop("z", None)  # a config node of a tab that is not here: global
        if "g" in node:
            if node["g"] in remap:
                node["g"] = remap[node["g"]]
            elif node["g"] not in existing:
                node.pop("g")
        if isinstance(node.get("wires"), list):
            node["wires"] = [
                [ref(t) for t in port if known(t)] if isinstance(port, list) else port
                for port in node["wires"]
            ]
        for key in reference_properties(kind, types):
            if isinstance(node.get(key), str) and node[key] in remap:
                node[key] = remap[node[key]]
        for key in ID_LIST_PROPERTIES.get(kind, ()):
            if isinstance(node.get(key), list):
                node[key] = [ref(v) for v in node[key] if known(v)]
        if kind.startswith("subflow:") and kind.removeprefix("subflow:") in remap:
            node["type"] = "subflow:" + remap[kind.removeprefix("subflow:")]
        if kind == "subflow":
            _remap_subflow_ports(node, ref, known)
        out.append(node)
    return out, remap


def _remap_subflow_ports(subflow: dict, ref: Callable[[Any], Any], known: Callable[[Any], bool]) -> None:
    ports = [*(subflow.get("in") or []), *(subflow.get("out") or [])]
    if isinstance(subflow.get("status"), dict):
        ports.append(subflow["status"])
    for port in ports:
        if isinstance(port, dict) and isinstance(port.get("wires"), list):
            port["wires"] = [
                dict(w, id=ref(w.get("id")))
                for w in port["wires"]
                if isinstance(w, dict) and known(w.get("id"))
            ]
