"""The debug sidebar: messages from debug nodes, filtered by node, cleared, each expandable as JSON."""

from __future__ import annotations

import json
import time
from collections import deque
from typing import Any

from nicegui import ui

from sofiaflow.editor.testid import testid
from sofiaflow.editor.workspace import Workspace

MAX_MESSAGES = 200


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
            ).props("dense options-dense outlined").classes("w-36").props(testid("debug-filter"))
            ui.button(icon="delete_sweep", on_click=self.clear).props("flat dense").tooltip(
                "clear messages"
            ).props(testid("debug-clear"))
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
        name = event.get("name") or node.get("name") or node.get("type") or node_id or "?"
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
                with ui.row().classes("w-full text-xs text-gray-500 gap-2 no-wrap"):
                    ui.label(stamp)
                    ui.link(f"node: {name}").classes("cursor-pointer").on(
                        "click", lambda _e, i=node_id: self.ws.focus(i)
                    )
                ui.label(f"{prop} : {fmt}").classes("text-xs text-gray-600")
                if fmt in ("Object", "Array") or fmt.startswith("array"):
                    with (
                        ui.expansion(value[:80], value=len(value) < 60)
                        .props("dense")
                        .classes("w-full text-sm")
                        .props(testid("debug-expand"))
                    ):
                        ui.code(pretty(value), language="json").classes("w-full text-xs")
                else:
                    ui.label(value).classes("text-sm font-mono break-all sf-debug-value")
        card.set_visibility(self._passes(event))
        self.shown += 1
