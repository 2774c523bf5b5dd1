"""`FlowCanvas`: the custom NiceGUI element that draws one tab's nodes and wires (see canvas.js).

Python keeps the flow JSON; the element gets view dicts (`view_node`) and reports what the user
did as events: `move`, `wire`, `select`, `delete`, `edit`, `drop`, `button`, `copy`, `cut`, `paste`,
`undo`, `redo` (each event's `args` is a dict, see canvas.js).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nicegui import ui

from sofiaflow.editor.node_icons import node_icon

_CSS = (Path(__file__).with_name("canvas.css")).read_text(encoding="utf-8")
MIN_WIDTH, NODE_HEIGHT, CHAR_WIDTH, ICON_WIDTH = 100, 30, 8, 18


def node_size(label: str, outputs: int) -> tuple[int, int]:
    """(width, height) of a drawn node: wide enough for its label, tall enough for its outputs."""
    width = max(MIN_WIDTH, 10 * round((36 + ICON_WIDTH + CHAR_WIDTH * len(label)) / 10))
    return width, max(NODE_HEIGHT, 15 * outputs)


_PREFIX = {"msg": "msg.", "flow": "flow.", "global": "global."}


def default_label(node: dict, info: dict | None) -> str:
    """The label Node-RED would show: the name, else something from the config, else the type."""
    if node.get("name"):
        return str(node["name"])
    node_type = node.get("type", "?")
    if node_type == "inject":
        ptype = node.get("payloadType")
        if ptype == "date":
            return "timestamp"
        if ptype in _PREFIX:
            return _PREFIX[ptype] + str(node.get("payload", ""))
        text = str(node.get("payload", ""))
        return text[:24] if text and len(text) < 24 else "inject"
    if node_type == "debug":
        target = node.get("complete", "false")
        return (
            "msg"
            if target in ("true", True)
            else "msg.payload"
            if target in ("false", False, "")
            else f"msg.{target}"
        )
    if node_type == "change" and len(node.get("rules") or []) == 1:
        rule = node["rules"][0] or {}
        action = rule.get("t", "set")
        return f"{action} {_PREFIX.get(rule.get('pt') or 'msg', '')}{rule.get('p', '')}"
    return str(node.get("label") or (info or {}).get("label") or node_type)


def view_node(
    node: dict,
    info: dict | None,
    *,
    changed: bool = False,
    status: dict | None = None,
    invalid: bool = False,
    problem: str = "",
) -> dict[str, Any]:
    """What the canvas draws for one flow node; `info` is the palette entry of its type (or None);
    `problem`: what its config model refuses (a warning mark), "" when valid."""
    info = info or {}
    label = default_label(node, info)
    outputs = len(node.get("wires") or []) if "wires" in node else int(info.get("outputs") or 0)
    width, height = node_size(label, outputs)
    corner = node.get("type") == "group"  # groups: x, y is the top-left corner, w, h their size
    if corner:
        width, height, outputs = int(node.get("w") or 200), int(node.get("h") or 100), 0
    return {
        "id": node["id"],
        "type": node.get("type", ""),
        "label": label,
        "x": node.get("x", 0),
        "y": node.get("y", 0),
        "w": width,
        "h": height,
        "inputs": 0 if corner else int(info.get("inputs", 1) if info else 1),
        "outputs": outputs,
        "color": info.get("color") or "#ddd",
        "wires": node.get("wires") or [],
        "changed": changed,
        "disabled": bool(node.get("d")),
        "invalid": invalid,
        "problem": problem,
        "icon": ""
        if corner
        else info.get("icon") or node_icon(node.get("type", ""), info.get("category", "")),
        "button": node.get("type") == "inject",
        "status": status,
        "corner": corner,
    }


class FlowCanvas(ui.element, component="canvas.js"):
    """One tab's nodes and wires; dragging happens in the browser, results come back as events."""

    def __init__(self) -> None:
        super().__init__()
        ui.add_css(_CSS)
        self._props["nodes"] = []
        self._props["active"] = []
        self._props["highlight"] = ""
        self._props["tab"] = ""
        self.classes("sf-canvas-host")

    def show(self, tab_id: str, nodes: list[dict]) -> None:
        """Draw `nodes` (view dicts) for `tab_id` (a new tab resets selection, pan and zoom)."""
        self._props["tab"] = tab_id
        self._props["nodes"] = nodes
        self.update()

    def patch(self, patches: list[dict]) -> None:
        """Change some fields of drawn nodes (`{"id", ...}` each) without sending the whole tab again."""
        by_id = {n["id"]: n for n in self._props["nodes"]}
        for item in patches:
            if item["id"] in by_id:
                by_id[item["id"]].update(item)
        self.run_method("patchNodes", patches)

    def set_active(self, source_ids: list[str]) -> None:
        """Animate the wires leaving these nodes (messages went through them)."""
        if source_ids != self._props["active"]:
            self._props["active"] = source_ids
            self.update()

    def set_highlight(self, node_id: str) -> None:
        self._props["highlight"] = node_id
        self.update()
        if node_id:
            self.run_method("focusNode", node_id)

    def select(self, node_ids: list[str]) -> None:
        """Select these nodes (those drawn on the shown tab) and centre the view on the first."""
        self.run_method("selectNodes", node_ids)

    def select_all(self) -> None:
        self.run_method("selectAll")

    def say(self, text: str) -> None:
        """Put `text` in the canvas's polite live region (read out by screen readers)."""
        self.run_method("say", text)

    async def visible_area(self) -> tuple[float, float, float, float] | None:
        """The part of the tab in view, (left, top, right, bottom) in flow coordinates; None when the browser
        does not answer within a second."""
        try:
            area = await self.run_method("visibleArea", timeout=1)
        except TimeoutError:
            return None
        if isinstance(area, list) and len(area) == 4 and all(isinstance(v, (int, float)) for v in area):
            return (area[0], area[1], area[2], area[3])
        return None
