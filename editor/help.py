"""The help sidebar: each node type's documentation (its help text, inputs, outputs, properties, examples)
rendered from markdown, with a searchable list of node types. `open_help(ws, node_type)` shows one."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from sofiaflow.editor.help_docs import DOCS
from sofiaflow.editor.workspace import Workspace

_SKIP_PROPS = ("id", "type", "z", "x", "y", "wires", "g", "d")
HELP_CSS = """
.sf-help h2 { font-size: 1.25rem; line-height: 1.75rem; margin: .25rem 0; font-weight: 600; }
.sf-help h3 { font-size: 1rem; line-height: 1.5rem; margin: .75rem 0 .25rem; font-weight: 600; }
.sf-help pre { font-size: .75rem; overflow-x: auto; }
"""


def help_markdown(node_type: str, entry: dict | None) -> str:
    """The full documentation of `node_type` as markdown (`entry` is its palette entry)."""
    if entry is None:
        return f"## {node_type}\n\nThis node type is not installed here."
    parts = [f"## {entry.get('label') or node_type}"]
    kind = "config node" if entry.get("config") else f"{entry.get('category', '')} node"
    parts.append(f"*{node_type}* · {kind}" + (f" · from {entry['module']}" if entry.get("module") else ""))
    if entry.get("help"):
        parts.append(str(entry["help"]).strip())
    if not entry.get("config"):
        outputs = entry.get("outputs", 0)
        parts.append(
            f"**Inputs:** {entry.get('inputs', 0)} · **Outputs:** {outputs}"
            + (" (the configuration may change it)" if outputs else "")
        )
    if node_type in DOCS:
        parts.append(DOCS[node_type].strip())
    props = ((entry.get("schema") or {}).get("properties")) or {}
    rows = [_property_line(key, spec) for key, spec in props.items() if key not in _SKIP_PROPS]
    if rows:
        parts.append("### Properties\n" + "\n".join(rows))
    if entry.get("credentials"):
        secret = ", ".join(f"`{k}`" for k in entry["credentials"])
        parts.append(f"**Credentials** (kept encrypted, never exported): {secret}")
    return "\n\n".join(parts)


def _property_line(key: str, spec: dict) -> str:
    kind = spec.get("type") or "/".join(
        str(s.get("type")) for s in spec.get("anyOf", []) if isinstance(s, dict) and s.get("type")
    )
    line = f"- **{key}**" + (f" ({kind})" if kind else "")
    target = spec.get("x-config") or spec.get("x-config-type")
    if target:
        line += f": a `{target}` config node"
    if "default" in spec and spec["default"] not in ("", None, [], {}):
        line += f", default `{json.dumps(spec['default'], ensure_ascii=False)[:60]}`"
    if spec.get("description"):
        line += f": {spec['description']}"
    return line


class HelpSidebar:
    """A search box, the matching node types, and the documentation of the chosen one."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.current = ""
        ui.add_css(HELP_CSS, shared=True)
        ui.label("help").classes("text-base font-semibold")
        self.search = (
            ui.input("Search node types", on_change=lambda e: self._filter(e.value or ""))
            .props("dense outlined clearable")
            .classes("w-full")
        )
        with ui.scroll_area().classes("w-full h-36 border rounded"):
            self.items: list[tuple[str, ui.element]] = []
            for node_type in sorted(ws.types):
                item = ui.item(node_type, on_click=lambda t=node_type: self.show(t)).props("dense clickable")
                self.items.append((node_type, item))
        self.doc = ui.markdown("Choose a node type, or select a node and open its help.").classes(
            "w-full text-sm sf-help"
        )
        ws.sidebars["help"] = self

    def _filter(self, text: str) -> None:
        text = text.strip().lower()
        for node_type, item in self.items:
            entry = self.ws.types.get(node_type) or {}
            haystack = f"{node_type} {entry.get('label', '')} {entry.get('category', '')}".lower()
            item.set_visibility(not text or text in haystack)

    def show(self, node_type: str) -> None:
        self.current = node_type
        self.doc.set_content(help_markdown(node_type, self.ws.types.get(node_type)))


def open_help(ws: Workspace, node_type: str) -> None:
    """Open the help sidebar on `node_type` (the property form's help button calls this)."""
    sidebar: Any = ws.sidebars.get("help")
    if sidebar is None:
        ui.notify(f"no help sidebar on this page for {node_type!r}", type="warning")
        return
    ws.open_sidebar("help")
    sidebar.show(node_type)
