"""The palette: every registered node type (built-in and third-party), by category, with search and help."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from sofiaflow.editor.node_icons import node_icon
from sofiaflow.editor.testid import testid

CATEGORY_ORDER = ["common", "function", "network", "sequence", "parser", "storage", "ontology"]
HIDDEN = ("internal", "config")
NEW_NODE_DEFAULTS = {
    "change": {"rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "", "tot": "str"}]},
}
"""Defaults of new nodes where the config model's own (for loading old flows) differ from Node-RED's editor."""
_DRAG_JS = (
    "(e) => { e.dataTransfer.setData('text/x-sofiaflow-type', e.currentTarget.dataset.type);"
    " e.dataTransfer.effectAllowed = 'copy'; }"
)


def palette_types(registry: Any) -> dict[str, dict]:
    """type name -> palette entry (category, label, help, color, inputs, outputs, config, schema, defaults)."""
    out = {}
    for entry in registry.describe():
        if entry["category"] == "internal":
            continue
        props = entry["schema"].get("properties", {})
        defaults = {k: v["default"] for k, v in props.items() if "default" in v}
        defaults.update(NEW_NODE_DEFAULTS.get(entry["type"], {}))
        cls = registry.find(entry["type"]) if hasattr(registry, "find") else None
        icon = node_icon(entry["type"], entry["category"], getattr(cls, "icon", None))
        entry = dict(entry, defaults=defaults, icon=icon)
        out[entry["type"]] = entry
    return out


def short_help(entry: dict) -> str:
    text = (entry.get("help") or "").strip()
    return text.split("\n\n")[0].replace("\n", " ") if text else f"{entry['type']} node"


def _grouped(types: dict[str, dict]) -> list[tuple[str, list[dict]]]:
    groups: dict[str, list[dict]] = {}
    for entry in types.values():
        if entry["category"] not in HIDDEN and not entry.get("config"):
            groups.setdefault(entry["category"], []).append(entry)
    order = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    return [
        (c, sorted(groups[c], key=lambda e: e["type"]))
        for c in sorted(groups, key=lambda c: (order.get(c, 99), c))
    ]


def palette_panel(types: dict[str, dict], on_add: Callable[[str], Any] | None = None) -> None:
    """Draw the palette into the current container; drag an item onto the canvas (or double-click it, or focus it
    and press Enter or Space). Each item's accessible name is its full type name (`ontology-insert` reads "ontology insert")."""
    items: list[tuple[ui.element, str]] = []
    sections: list[tuple[ui.expansion, list[ui.element]]] = []

    def filter_items(e: Any) -> None:
        text = (e.value or "").strip().lower()
        for element, haystack in items:
            element.set_visibility(not text or text in haystack)
        for section, members in sections:
            section.set_visibility(any(m.visible for m in members))
            if text:
                section.open()

    ui.input(placeholder="filter nodes", on_change=filter_items).props(
        'dense clearable outlined aria-label="Filter nodes" clear-icon=close'
    ).classes("w-full mb-1").props(testid("palette-search"))
    for category, entries in _grouped(types):
        members = []
        with (
            ui.expansion(category, value=True)
            .props("dense header-class='text-weight-medium'")
            .classes("w-full") as section
        ):
            for entry in entries:
                label = entry.get("label") or entry["type"]
                item = (
                    ui.element("div")
                    .classes("sf-palette-node")
                    .props(
                        f'draggable=true data-type="{entry["type"]}" role=button tabindex=0 '
                        f'aria-label="{entry["type"].replace("-", " ")}"'
                    )
                )
                item.style(f"background:{entry.get('color') or '#ddd'}")
                with item:
                    icon = entry.get("icon") or node_icon(entry["type"], entry["category"])
                    ui.icon(icon).classes("sf-palette-icon").props(f'aria-hidden=true data-icon="{icon}"')
                    ui.label(label).classes("sf-palette-label")
                    ui.tooltip(short_help(entry)).props(
                        "anchor='center right' self='center left' max-width=280px"
                    )
                item.on("dragstart", js_handler=_DRAG_JS)
                if on_add is not None:
                    item.on("dblclick", lambda _e, t=entry["type"]: on_add(t))
                    item.on("keydown.enter", lambda _e, t=entry["type"]: on_add(t))
                    item.on("keydown.space.prevent", lambda _e, t=entry["type"]: on_add(t))
                items.append((item, f"{entry['type']} {label} {short_help(entry)}".lower()))
                members.append(item)
        sections.append((section, members))


PALETTE_CSS = """
.sf-palette-node { width: 170px; margin: 3px 4px; padding: 4px 10px; border: 1px solid #999; border-radius: 5px;
  font: 13px Helvetica, Arial, sans-serif; cursor: grab; user-select: none; display: flex; align-items: center;
  gap: 6px; }
.sf-palette-icon { font-size: 16px; color: rgba(0, 0, 0, 0.6); flex: none; }
.sf-palette-node:active { cursor: grabbing; }
.sf-palette-node:focus-visible { outline: 3px solid #1d4ed8; outline-offset: 1px; }
"""
