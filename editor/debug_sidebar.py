"""The debug sidebar: messages from debug nodes, filtered by node, cleared. As in Node-RED, each message names its
source (the node's name, else its type and short id; a click reveals the node) and objects and arrays open
collapsed, as a tree expanded one level at a time."""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from nicegui import ui

from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

MAX_MESSAGES = 200
PREVIEW = 60
"""Characters of a value shown in a collapsed tree row."""
MAX_TREE_NODES = 2000
"""Rows of a message's tree at most (a huge message shows its first rows and says how many are left out)."""


def short_id(node_id: str) -> str:
    """The first 6 characters of a node id (Node-RED's ids are 16 hex characters)."""
    return node_id[:6]


def source_label(node: dict[str, Any], node_id: str, event_name: str | None = None) -> str:
    """What a message's source reads: the node's name, else its type and short id (`debug 3fa2c1`)."""
    name = str(node.get("name") or "").strip()
    if name:
        return name
    kind = node.get("type") or "node"
    if node_id:
        return f"{kind} {short_id(node_id)}"
    return event_name or kind


def preview(value: Any) -> str:
    """A one-line preview of a JSON value, as Node-RED's collapsed rows: `object`, `array[3]`, `"text"`, `42`."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return f"array[{len(value)}]"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def json_tree(value: Any, limit: int = MAX_TREE_NODES) -> list[dict[str, Any]]:
    """The value as QTree nodes (`id`, `label`, `children`): one row per key or index, `key: preview`."""
    count = 0

    def build(key: str, item: Any, path: str) -> dict[str, Any]:
        nonlocal count
        count += 1
        node: dict[str, Any] = {"id": path, "label": f"{key}: {preview(item)}"}
        if isinstance(item, (dict, list)) and item:
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            children = []
            for k, v in pairs:
                if count >= limit:
                    children.append({"id": f"{path}/…", "label": "… (more left out)"})
                    break
                children.append(build(str(k), v, f"{path}/{k}"))
            node["children"] = children
        return node

    return [build("msg" if not isinstance(value, list) else "array", value, "$")]


def pretty(text: str) -> str:
    """The debug value as indented JSON when it is JSON, else as sent."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return str(text)


class DebugSidebar:
    """Subscribes to the runtime's `debug` events for one browser; drained into the page by a timer."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.pending: deque[dict] = deque(maxlen=MAX_MESSAGES)
        self.shown = 0
        self.filter = "all"
        with ui.row().classes("w-full items-center gap-1 no-wrap"):
            ui.label("debug").classes("text-base font-semibold")
            ui.space()
            ui.select(
                {"all": "all nodes", "flow": "current flow", "selected": "selected nodes"},
                value="all",
                on_change=lambda e: self._set_filter(e.value),
            ).props('dense options-dense outlined aria-label="Show messages from"').classes("w-36").props(
                testid("debug-filter")
            )
            ui.button(icon="delete_sweep", on_click=self.clear).props(
                'flat dense aria-label="Clear debug messages"'
            ).tooltip("Clear debug messages").props(testid("debug-clear"))
        self.list = ui.column().classes("w-full gap-1 sf-debug-list").props(testid("debug-list"))
        self._unsubscribe = ws.runtime.events.subscribe("debug", self._on_event)
        ui.context.client.on_delete(self._unsubscribe)
        ui.timer(0.2, self.drain)

    def _on_event(self, _topic: str, data: Any) -> None:
        if isinstance(data, dict):
            self.pending.append(dict(data, _received=time.time()))

    def _set_filter(self, value: str) -> None:
        self.filter = value
        for card in list(self.list):
            card.set_visibility(self._passes(getattr(card, "debug_event", {})))

    def _passes(self, event: dict) -> bool:
        if self.filter == "flow":
            return event.get("z") == self.ws.tab
        if self.filter == "selected":
            return event.get("id") in self.ws.selection
        return True

    def clear(self) -> None:
        self.list.clear()
        self.shown = 0

    def drain(self) -> None:
        while self.pending:
            self._add(self.pending.popleft())
        extra = len(self.list.default_slot.children) - MAX_MESSAGES
        for child in list(self.list.default_slot.children)[: max(0, extra)]:
            self.list.remove(child)

    def _add(self, event: dict) -> None:
        node_id = event.get("id") or ""
        node = self.ws.doc.get(node_id) or {}
        source = source_label(node, node_id, event.get("name"))
        stamp = time.strftime("%H:%M:%S", time.localtime(event.get("_received", time.time())))
        prop = f"msg.{event['property']}" if event.get("property") else "msg"
        fmt = event.get("format", "")
        value = str(event.get("msg", ""))
        with self.list:
            card = (
                ui.card()
                .tight()
                .classes("w-full p-2 sf-debug-msg")
                .props("flat bordered")
                .props(testid("debug-message"))
            )
            card.debug_event = event  # type: ignore[attr-defined]
            with card:
                with ui.row().classes("w-full text-xs text-gray-600 gap-2 no-wrap items-center"):
                    ui.label(stamp)
                    ui.button(source, on_click=lambda _e, i=node_id: self.ws.focus(i)).props(
                        f'flat dense no-caps size=sm padding="0 4px" aria-label="Show node {source}"'
                    ).classes("sf-debug-source").tooltip(f"Show node {source} on the canvas")
                ui.label(f"{prop} : {fmt}").classes("text-xs text-gray-700")
                parsed = _json(value) if fmt in ("Object", "Array") or fmt.startswith("array") else None
                if isinstance(parsed, (dict, list)):
                    ui.tree(json_tree(parsed), node_key="id").props("dense no-transition").classes(
                        "w-full text-sm font-mono sf-debug-tree"
                    ).props(testid("debug-expand"))
                else:
                    ui.label(value).classes("text-sm font-mono break-all sf-debug-value")
        card.set_visibility(self._passes(event))
        self.shown += 1


_MISSING = object()


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return _MISSING
