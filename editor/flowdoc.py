"""The editor's working copy of the flow set: edits, undo/redo, and what changed since the last deploy.

Pure Python (no NiceGUI): the canvas and forms call these methods and redraw from `nodes_on(tab)`.
The flow JSON is the source of truth: positions are each node's `x`, `y`, wires its `wires`.
"""

from __future__ import annotations

import copy
import json
import secrets
from collections.abc import Iterable
from typing import Any

from sofiaflow.editor.import_remap import config_references, config_users, only_used_by, remap_import

UNDO_LIMIT = 100
_NOT_EDITABLE = ("id", "type", "z", "wires", "x", "y", "g")


def new_id() -> str:
    """A Node-RED style id: 16 hex digits."""
    return secrets.token_hex(8)


def _canonical(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


class FlowDoc:
    """Tabs, config nodes and nodes as a Node-RED flow list, plus the last deployed version of it.

    `types` (the palette: type -> entry with its config schema) tells which properties reference config nodes.
    """

    def __init__(self, flows: list[dict] | None = None, rev: str = "", types: dict | None = None) -> None:
        self.flows: list[dict] = copy.deepcopy(flows or [])
        self.deployed: dict[str, str] = {}
        self.deployed_rev = rev
        self._undo: list[list[dict]] = []
        self._redo: list[list[dict]] = []
        self.types = types
        if not self.tabs():  # an empty runtime: a first tab, not counted as a change
            self.flows.insert(
                0, {"id": new_id(), "type": "tab", "label": "Flow 1", "disabled": False, "info": ""}
            )
        self.mark_deployed(rev)

    # ----- reading ---------------------------------------------------------------------------------
    def by_id(self) -> dict[str, dict]:
        return {n["id"]: n for n in self.flows if isinstance(n, dict) and "id" in n}

    def get(self, node_id: str) -> dict | None:
        return next((n for n in self.flows if n.get("id") == node_id), None)

    def tabs(self) -> list[dict]:
        return [n for n in self.flows if n.get("type") == "tab"]

    def subflows(self) -> list[dict]:
        return [n for n in self.flows if n.get("type") == "subflow"]

    def nodes_on(self, tab_id: str) -> list[dict]:
        """The nodes drawn on tab `tab_id` (not config nodes, not the tab itself)."""
        return [n for n in self.flows if n.get("z") == tab_id and n.get("type") not in ("tab", "subflow")]

    def config_nodes(self, node_type: str | None = None) -> list[dict]:
        """Config nodes (no `x`, not on a tab's canvas), optionally of one type."""
        tab_ids = {t["id"] for t in self.tabs()}
        return [
            n
            for n in self.flows
            if n.get("type") not in ("tab", "subflow")
            and "x" not in n
            and (node_type is None or n.get("type") == node_type)
            and (n.get("z") in (None, "") or n.get("z") in tab_ids)
        ]

    # ----- change tracking -------------------------------------------------------------------------
    def mark_deployed(self, rev: str) -> None:
        """Remember the current flows as the deployed ones; credentials typed in forms went with the deploy
        (the runtime keeps them encrypted) and are dropped here."""
        for node in self.flows:
            node.pop("credentials", None)
        self.deployed = {n["id"]: _canonical(n) for n in self.flows if "id" in n}
        self.deployed_rev = rev

    def changed_ids(self) -> set[str]:
        """Ids of objects added or modified since the last deploy."""
        return {n["id"] for n in self.flows if "id" in n and self.deployed.get(n["id"]) != _canonical(n)}

    def removed_ids(self) -> set[str]:
        return set(self.deployed) - {n["id"] for n in self.flows if "id" in n}

    def modified_tabs(self) -> set[str]:
        """Tabs with an added, changed or removed node, or changed themselves."""
        changed = self.changed_ids()
        out = {n.get("z") or "" for n in self.flows if n.get("id") in changed}
        out |= {i for i in changed if (self.get(i) or {}).get("type") == "tab"}
        for removed in self.removed_ids():
            try:
                old = json.loads(self.deployed[removed])
            except ValueError:
                continue
            out.add(old.get("z") or "")
        out.discard("")
        return out

    def is_dirty(self) -> bool:
        return bool(self.changed_ids() or self.removed_ids())

    # ----- undo ------------------------------------------------------------------------------------
    def checkpoint(self) -> None:
        """Save the current flows for `undo()`; call before each user edit."""
        self._undo.append(copy.deepcopy(self.flows))
        del self._undo[:-UNDO_LIMIT]
        self._redo.clear()

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self.flows)
        self.flows = self._undo.pop()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self.flows)
        self.flows = self._redo.pop()
        return True

    # ----- edits (each one undoable) ---------------------------------------------------------------
    def add_node(
        self, node_type: str, tab_id: str, x: float, y: float, defaults: dict | None = None, outputs: int = 1
    ) -> dict:
        """A new node of `node_type` at (x, y) on `tab_id`, with the type's default config."""
        self.checkpoint()
        node = {"id": new_id(), "type": node_type, "z": tab_id, "name": ""}
        for key, value in (defaults or {}).items():
            if key not in _NOT_EDITABLE and key != "name":
                node[key] = copy.deepcopy(value)
        node.update({"x": round(x), "y": round(y), "wires": [[] for _ in range(max(0, outputs))]})
        self.flows.append(node)
        return node

    def add_config_node(self, node_type: str, defaults: dict | None = None) -> dict:
        node = {"id": new_id(), "type": node_type, "name": ""}
        node.update({k: copy.deepcopy(v) for k, v in (defaults or {}).items() if k not in _NOT_EDITABLE})
        self.checkpoint()
        self.flows.append(node)
        return node

    def move(self, positions: dict[str, tuple[float, float]]) -> None:
        known = self.by_id()
        if not any(i in known for i in positions):
            return
        self.checkpoint()
        for node_id, (x, y) in positions.items():
            if node_id in known:
                known[node_id]["x"], known[node_id]["y"] = round(x), round(y)

    def add_wire(self, source: str, port: int, target: str) -> bool:
        """Wire output `port` of `source` to `target`; False when impossible or already there."""
        known = self.by_id()
        src, dst = known.get(source), known.get(target)
        if src is None or dst is None or source == target or src.get("z") != dst.get("z") or port < 0:
            return False
        wires = src.setdefault("wires", [])
        if port < len(wires) and target in wires[port]:
            return False
        self.checkpoint()
        wires = self.get(source).setdefault("wires", [])
        while len(wires) <= port:
            wires.append([])
        wires[port].append(target)
        return True

    def remove_wires(self, wires: Iterable[tuple[str, int, str]]) -> None:
        wires = list(wires)
        if not wires:
            return
        self.checkpoint()
        known = self.by_id()
        for source, port, target in wires:
            outs = known.get(source, {}).get("wires", [])
            if port < len(outs) and target in outs[port]:
                outs[port].remove(target)

    def delete(self, ids: Iterable[str]) -> None:
        """Remove nodes (and the wires to them); a tab id removes the tab and all its nodes."""
        ids = set(ids)
        if not ids & set(self.by_id()):
            return
        self.checkpoint()
        tabs = {i for i in ids if (self.get(i) or {}).get("type") == "tab"}
        gone = ids | {n["id"] for n in self.flows if n.get("z") in tabs}
        self.flows = [n for n in self.flows if n.get("id") not in gone]
        for node in self.flows:
            if "wires" in node:
                node["wires"] = [[t for t in port if t not in gone] for port in node["wires"]]
        if not self.tabs():
            self.flows.insert(
                0, {"id": new_id(), "type": "tab", "label": "Flow 1", "disabled": False, "info": ""}
            )

    def update(self, node_id: str, props: dict[str, Any], outputs: int | None = None) -> None:
        """Set `props` on a node (from the property form); `outputs` resizes its wires list."""
        node = self.get(node_id)
        if node is None:
            raise KeyError(node_id)
        self.checkpoint()
        node = self.get(node_id)
        for key, value in props.items():
            if key not in ("id", "type", "z", "wires", "x", "y"):
                node[key] = value
        if outputs is not None and "wires" in node:
            wires = node["wires"][:outputs]
            node["wires"] = wires + [[] for _ in range(outputs - len(wires))]

    def add_tab(self, label: str | None = None) -> dict:
        self.checkpoint()
        tab = {
            "id": new_id(),
            "type": "tab",
            "label": label or self._next_tab_label(),
            "disabled": False,
            "info": "",
        }
        self.flows.append(tab)
        return tab

    def _next_tab_label(self) -> str:
        labels = {t.get("label") for t in self.tabs()}
        n = len(labels) + 1
        while f"Flow {n}" in labels:
            n += 1
        return f"Flow {n}"

    def set_tab(self, tab_id: str, **props: Any) -> None:
        """Rename (`label=`) or enable/disable (`disabled=`) a tab."""
        if self.get(tab_id) is None:
            raise KeyError(tab_id)
        self.checkpoint()
        self.get(tab_id).update(props)

    # ----- copy, import, export --------------------------------------------------------------------
    def export(self, ids: Iterable[str] | None = None, tab_id: str | None = None) -> list[dict]:
        """The selection (`ids`), one tab with its nodes (`tab_id`), or everything; with used config nodes."""
        if ids is None and tab_id is None:
            return _without_credentials(self.flows)
        chosen = set(ids or ())
        if tab_id is not None:
            chosen |= {tab_id} | {n["id"] for n in self.nodes_on(tab_id)}
        out = [n for n in self.flows if n.get("id") in chosen]
        used = _referenced_configs(out, self.flows, self.types) & {c["id"] for c in self.config_nodes()}
        out += [n for n in self.flows if n.get("id") in used - chosen]
        return _without_credentials(out)

    def import_flows(
        self,
        items: list[dict],
        tab_id: str | None,
        new_tab: bool = False,
        offset: tuple[float, float] = (0, 0),
    ) -> list[str]:
        """Add `items` (a Node-RED export) to `tab_id` or a new tab; the ids of the added nodes.

        Tabs in `items` are added as tabs; nodes whose tab is not in `items` go to the target tab.
        Config nodes identical to one here are reused; other ids already used here get new ones, and
        only real references follow them (see `import_remap`), as Node-RED does.
        """
        items = [copy.deepcopy(n) for n in items if isinstance(n, dict) and n.get("id") and n.get("type")]
        if not items:
            return []
        self.checkpoint()
        existing = self.by_id()
        imported_tabs = {n["id"] for n in items if n.get("type") in ("tab", "subflow")}
        target = None
        if new_tab or tab_id is None or self.get(tab_id) is None:
            target = {
                "id": new_id(),
                "type": "tab",
                "label": self._next_tab_label(),
                "disabled": False,
                "info": "",
            }
            tab_id = target["id"]
        added, _remap = remap_import(items, existing, tab_id, new_id, self.types, offset)
        if target is not None and (not imported_tabs or any(n.get("z") == target["id"] for n in added)):
            self.flows.append(target)
        self.flows.extend(added)
        return [n["id"] for n in added]

    def config_users(self) -> dict[str, list[dict]]:
        """config node id -> the nodes that name it."""
        return config_users(self.flows, self.types)

    def configs_only_used_by(self, ids: Iterable[str]) -> list[dict]:
        """The config nodes that only nodes among `ids` (a tab id counts as all its nodes) use."""
        ids = set(ids)
        tabs = {i for i in ids if (self.get(i) or {}).get("type") in ("tab", "subflow")}
        gone = ids | {n["id"] for n in self.flows if n.get("z") in tabs}
        return only_used_by(self.flows, gone, self.types)

    def replace_all(self, flows: list[dict], rev: str) -> None:
        """Load the runtime's flows (discarding local edits) and mark them deployed."""
        self.checkpoint()
        self.flows = copy.deepcopy(flows)
        self.mark_deployed(rev)
        if not self.tabs():
            self.flows.insert(
                0, {"id": new_id(), "type": "tab", "label": "Flow 1", "disabled": False, "info": ""}
            )


def _referenced_configs(nodes: list[dict], flows: list[dict], types: dict | None) -> set[str]:
    """Ids of the config nodes `nodes` name, and those these name in turn."""
    by_id = {n["id"]: n for n in flows if "id" in n}
    out: set[str] = set()
    todo = list(nodes)
    while todo:
        for target in config_references(todo.pop(), by_id, types).values():
            if target not in out:
                out.add(target)
                todo.append(by_id[target])
    return out


def parse_flow_json(text: str) -> list[dict]:
    """The flow objects in `text` (a list, one object, or `{"flows": [...]}`); ValueError saying what is wrong."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if isinstance(data, dict) and isinstance(data.get("flows"), list):
        data = data["flows"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("expected a JSON array of flow objects")
    bad = [i for i, n in enumerate(data) if not isinstance(n, dict) or not n.get("id") or not n.get("type")]
    if bad:
        raise ValueError(f"item {bad[0]} has no id or type: every flow object needs both")
    return data


def _without_credentials(nodes: list[dict]) -> list[dict]:
    """Copies for export: credentials typed but not yet deployed never leave in an export, as in Node-RED."""
    return [{k: v for k, v in copy.deepcopy(n).items() if k != "credentials"} for n in nodes]
