"""One browser's editing session: the flow document, the current tab, the selection, and the canvas.

Canvas events become `FlowDoc` edits; after each edit the canvas, the tab bar and the deploy button
are redrawn from the document.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from typing import Any

from nicegui import ui

from sofiaflow.editor.canvas import FlowCanvas
from sofiaflow.editor.canvas.canvas import view_node
from sofiaflow.editor.flowdoc import FlowDoc
from sofiaflow.editor.node_icons import node_icon
from sofiaflow.editor.placement import Box, clear_spot

DEFAULT_AREA: Box = (0, 0, 800, 500)
"""Where nodes added without a position go when the browser does not say what is in view."""


def _state(node: dict | None) -> str:
    return json.dumps(node, sort_keys=True, default=str)


class Workspace:
    """Glue between the runtime, the `FlowDoc` and the widgets of the editor page."""

    def __init__(self, runtime: Any, types: dict[str, dict], user: str, role: str = "administrator") -> None:
        self.runtime = runtime
        self.types = types
        self.user = user
        self.role = role
        self.doc = FlowDoc(self.visible_flows(), runtime.rev, types)
        self.tab = self.doc.tabs()[0]["id"]
        self.selection: list[str] = []
        self.clipboard: list[dict] = []
        self.statuses: dict[str, dict | None] = self.current_statuses()
        self._invalid: dict[str, str] = {}
        self._problems: dict[str, tuple[str, str]] = {}
        self.highlight = ""
        self.canvas: FlowCanvas | None = None
        self.on_redraw: list[Callable[[], None]] = []
        self.on_edit_node: Callable[[str], None] | None = None
        self.on_select: list[Callable[[], None]] = []
        self.on_open_sidebar: Callable[[str], None] | None = None
        self.sidebars: dict[str, Any] = {}
        self._out_counts: dict[str, tuple[Any, int]] = {}
        self.deployed_here = False

    # ----- the runtime's flows as this user may see and change them ------------------------------
    @property
    def read_only(self) -> bool:
        return self.role == "user"

    def visible_flows(self) -> list[dict]:
        """The deployed flows this user sees (administrators: all; others: their own and shared tabs)."""
        ownership = getattr(self.runtime, "ownership", None)
        flows = self.runtime.flows
        return ownership.view(flows, self.user, self.role) if ownership is not None else flows

    def flows_to_deploy(self) -> list[dict]:
        """The whole flow set after this user's deploy (tabs they cannot see kept); PermissionDenied if refused."""
        import copy

        ownership = getattr(self.runtime, "ownership", None)
        flows = copy.deepcopy(self.doc.flows)
        return (
            ownership.merge(self.runtime.flows, flows, self.user, self.role)
            if ownership is not None
            else flows
        )

    # ----- problems marked on nodes -----------------------------------------------------------------
    @property
    def invalid(self) -> set[str]:
        """Nodes a refused deploy found wrong, as long as they are unchanged since (an undo clears the mark)."""
        return {i for i, seen in self._invalid.items() if _state(self.doc.get(i)) == seen}

    @invalid.setter
    def invalid(self, ids: set[str]) -> None:
        self._invalid = {i: _state(self.doc.get(i)) for i in ids if self.doc.get(i) is not None}

    def config_problem(self, node: dict) -> str:
        """What the node type's config model refuses in `node` ("" when valid): the check the form's Done and a
        deploy make, so the canvas marks the node before a deploy. Cached per node by its properties."""
        state = _state(node)
        cached = self._problems.get(node["id"])
        if cached is not None and cached[0] == state:
            return cached[1]
        registry = getattr(self.runtime, "registry", None)
        cls = registry.find(node.get("type", "")) if registry is not None else None
        problem = ""
        if cls is not None and getattr(cls, "Config", None) is not None:
            from sofiaflow.editor.properties.form import model_problems

            try:
                problems = model_problems(cls, node)
            except Exception as exc:  # noqa: BLE001 - a config class's own failure is this node's problem too
                problems = {"config": f"{type(exc).__name__}: {exc}"}
            problem = "; ".join(f"{key}: {text}" for key, text in problems.items())
        self._problems[node["id"]] = (state, problem)
        return problem

    # ----- drawing ---------------------------------------------------------------------------------
    def attach(self, canvas: FlowCanvas) -> None:
        self.canvas = canvas
        handlers = {
            "move": self._on_move,
            "wire": self._on_wire,
            "selection": self._on_selection,
            "delete": self._on_delete,
            "edit": self._on_edit,
            "node-drop": self._on_drop,
            "button": self._on_button,
            "copy-nodes": self._on_copy,
            "cut-nodes": self._on_cut,
            "paste-nodes": self._on_paste,
            "undo": self._on_undo,
            "redo": self._on_redo,
        }
        for name, handler in handlers.items():
            canvas.on(name, handler)

    def redraw(self) -> None:
        if self.doc.get(self.tab) is None:
            self.tab = self.doc.tabs()[0]["id"]
        changed = self.doc.changed_ids()
        invalid = self.invalid
        nodes = self.doc.nodes_on(self.tab)
        self._problems = {i: p for i, p in self._problems.items() if self.doc.get(i) is not None}
        views = [
            view_node(
                n,
                self.info_for(n),
                changed=n["id"] in changed,
                status=self.statuses.get(n["id"]),
                invalid=n["id"] in invalid,
                problem=self.config_problem(n),
            )
            for n in nodes
        ]
        if self.canvas is not None:
            self.canvas.show(self.tab, views)
        for callback in self.on_redraw:
            callback()

    def info_for(self, node: dict) -> dict | None:
        """The palette entry of a node's type; for a subflow instance, one made from the subflow."""
        node_type = node.get("type", "")
        if node_type.startswith("subflow:"):
            subflow = self.doc.get(node_type.removeprefix("subflow:")) or {}
            return {
                "label": subflow.get("name") or "subflow",
                "inputs": len(subflow.get("in") or []),
                "outputs": len(subflow.get("out") or []),
                "color": subflow.get("color") or "#ddd",
                "icon": node_icon(node_type),
            }
        return self.types.get(node_type)

    def show_tab(self, tab_id: str) -> None:
        self.tab = tab_id
        self.selection = []
        self.redraw()

    def focus(self, node_id: str) -> None:
        """Open the node's tab and highlight it (deploy problems link here)."""
        node = self.doc.get(node_id)
        if node is None:
            return
        if node.get("z") and node.get("z") != self.tab and self.doc.get(node["z"]) is not None:
            self.show_tab(node["z"])
        self.highlight = node_id
        if self.canvas is not None:
            self.canvas.set_highlight(node_id)

    def reveal(self, node_ids: list[str]) -> None:
        """Open the tab of the first of `node_ids` and select those on it (a notification's link)."""
        known = [i for i in node_ids if self.doc.get(i) is not None]
        if not known:
            return
        self.focus(known[0])
        tab = self.doc.get(known[0]).get("z")
        self.selection = [i for i in known if self.doc.get(i).get("z") == tab]
        if self.canvas is not None:
            self.canvas.select(self.selection)
        for callback in self.on_select:
            callback()

    def clear_highlight(self) -> None:
        self.highlight = ""
        if self.canvas is not None:
            self.canvas.set_highlight("")

    # ----- canvas events ---------------------------------------------------------------------------
    def _on_move(self, e: Any) -> None:
        """The browser already shows the new positions: send back only the changed marks."""
        moves = e.args.get("moves", [])
        self.doc.move({m["id"]: (m["x"], m["y"]) for m in moves})
        changed = self.doc.changed_ids()
        if self.canvas is not None:
            self.canvas.patch(
                [{"id": m["id"], "x": m["x"], "y": m["y"], "changed": m["id"] in changed} for m in moves]
            )
        for callback in self.on_redraw:
            callback()

    def _on_wire(self, e: Any) -> None:
        if self.doc.add_wire(e.args["source"], int(e.args["port"]), e.args["target"]):
            self.redraw()

    def _on_selection(self, e: Any) -> None:
        self.selection = list(e.args.get("ids", []))
        for callback in self.on_select:
            callback()

    def open_sidebar(self, name: str) -> None:
        """Show sidebar `name` ("debug", "info", "help", "config") in the page's sidebar tabs."""
        if self.on_open_sidebar is not None:
            self.on_open_sidebar(name)

    def _on_delete(self, e: Any) -> None:
        wires = []
        for key in e.args.get("wires", []):
            source, port, target = key.split(":")
            wires.append((source, int(port), target))
        self.doc.remove_wires(wires)
        self.doc.delete(e.args.get("ids", []))
        self.selection = []
        self.redraw()

    def _on_edit(self, e: Any) -> None:
        if self.on_edit_node is not None:
            self.on_edit_node(e.args["id"])

    def _on_drop(self, e: Any) -> None:
        self.add_node(e.args["type"], e.args["x"], e.args["y"])

    def add_node(
        self, node_type: str, x: float | None = None, y: float | None = None, area: Box = DEFAULT_AREA
    ) -> dict | None:
        """A new node at (x, y); without a position, the first spot in `area` (the part of the tab in view) clear
        of the nodes drawn there."""
        entry = self.types.get(node_type)
        if entry is None:
            ui.notify(f"unknown node type {node_type!r}", type="negative")
            return None
        node = self.doc.add_node(
            node_type, self.tab, x or 0, y or 0, entry.get("defaults"), outputs=int(entry["outputs"])
        )
        if x is None or y is None:
            node["x"], node["y"] = self._clear_spot(node, entry, area)
        self.redraw()
        return node

    async def add_node_in_view(self, node_type: str) -> dict | None:
        """A new node in the part of the tab in view, clear of the others (the palette's keyboard path)."""
        area = await self.canvas.visible_area() if self.canvas is not None else None
        node = self.add_node(node_type, area=area or DEFAULT_AREA)
        if node is not None and self.canvas is not None:
            self.canvas.say(f"{node_type} node added to the flow")
        return node

    def _clear_spot(self, node: dict, entry: dict, area: Box) -> tuple[int, int]:
        drawn = []
        for other in self.doc.nodes_on(self.tab):
            if other is node:
                continue
            view = view_node(other, self.info_for(other))
            left = view["x"] if view["corner"] else view["x"] - view["w"] / 2
            top = view["y"] if view["corner"] else view["y"] - view["h"] / 2
            drawn.append((left, top, left + view["w"], top + view["h"]))
        mine = view_node(node, entry)
        return clear_spot(drawn, mine["w"], mine["h"], area)

    async def _on_button(self, e: Any) -> None:
        await self.inject(e.args["id"])

    async def inject(self, node_id: str) -> None:
        """Fire a deployed inject node now, as `POST /inject/:id` does."""
        if self.read_only:
            ui.notify(f"{self.user!r} has the role 'user', which only reads", type="warning")
            return
        if node_id in self.doc.changed_ids():
            ui.notify("This node has undeployed changes: deploy first", type="warning")
            return
        deployer = getattr(self.runtime, "deployer", None)
        node = deployer.running.get(node_id) if deployer is not None else None
        if node is None or not callable(getattr(node, "trigger", None)):
            ui.notify("This inject node is not running: deploy first", type="warning")
            return
        try:
            result = node.trigger(None)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - the node's failure, shown to the user
            ui.notify(f"inject failed: {type(exc).__name__}: {exc}", type="negative")
            return
        ui.notify(f"Successfully injected: {node.name or node_id}", position="bottom", timeout=1500)

    def _on_copy(self, e: Any) -> None:
        ids = e.args.get("ids") or self.selection
        if ids:
            self.clipboard = self.doc.export(ids)
            ui.notify(f"copied {len(ids)} node(s)", position="bottom", timeout=1000)

    def _on_cut(self, e: Any) -> None:
        self._on_copy(e)
        self.doc.delete(e.args.get("ids") or self.selection)
        self.redraw()

    def _on_paste(self, e: Any) -> None:
        placed = [n for n in self.clipboard if "x" in n]
        if not self.clipboard:
            return
        offset = (0.0, 0.0)
        if placed:
            cx = sum(n["x"] for n in placed) / len(placed)
            cy = sum(n["y"] for n in placed) / len(placed)
            offset = (e.args.get("x", cx) - cx, e.args.get("y", cy) - cy)
        self.doc.import_flows(
            [dict(n, z=self.tab) if "x" in n else n for n in self.clipboard], self.tab, offset=offset
        )
        self.redraw()

    def _on_undo(self, _e: Any = None) -> None:
        if self.doc.undo():
            self.redraw()

    def _on_redo(self, _e: Any = None) -> None:
        if self.doc.redo():
            self.redraw()

    # ----- runtime feedback ------------------------------------------------------------------------
    def current_statuses(self) -> dict[str, dict | None]:
        """The status each running node shows now (a page opened or reloaded starts from these)."""
        deployer = getattr(self.runtime, "deployer", None)
        running = deployer.running if deployer is not None else {}
        return {
            node_id: dict(node.last_status)
            for node_id, node in list(running.items())
            if isinstance(getattr(node, "last_status", None), dict) and node.last_status
        }

    def on_status(self, topic: str, data: Any) -> None:
        node_id = topic.split("/", 1)[1] if "/" in topic else ""
        self.statuses[node_id] = data if isinstance(data, dict) and data else None

    def active_sources(self) -> list[str]:
        """Nodes of the current tab that sent messages since the last call (their wires animate).

        A node instance seen for the first time counts from 0 when it was started by a deploy from
        this page (`deployed_here`), else from its count then (it may have run long before the page).
        """
        deployer = getattr(self.runtime, "deployer", None)
        running = deployer.running if deployer is not None else {}
        active = []
        for node in self.doc.nodes_on(self.tab):
            instance = running.get(node["id"])
            if instance is None:
                continue
            count = getattr(instance, "count_out", 0)
            seen = self._out_counts.get(node["id"])
            if seen is None or seen[0] is not instance:
                before = 0 if (self.deployed_here or seen is not None) else count
            else:
                before = seen[1]
            if count != before:
                active.append(node["id"])
            self._out_counts[node["id"]] = (instance, count)
        return active
