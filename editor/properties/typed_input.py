"""A typed input as Node-RED's: a value and its type (msg, flow, global, str, num, bool, json, ...)."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from sofiaflow.editor.testid import testid

VALUE_TYPES = ["str", "num", "bool", "json", "date", "msg", "flow", "global", "env", "jsonata", "bin", "re"]
PROPERTY_TYPES = ["msg", "flow", "global"]
TYPE_LABELS = {
    "msg": "msg.",
    "flow": "flow.",
    "global": "global.",
    "str": "a-z",
    "num": "0-9",
    "bool": "bool",
    "json": "{}",
    "date": "timestamp",
    "env": "env",
    "jsonata": "J:",
    "bin": "buffer",
    "re": "regex",
    "full": "complete msg object",
    "pay": "the original msg object",
    "payl": "the latest msg object",
    "nul": "nothing",
    "auto": "the same as the output",
    "counter": "a message count",
    "stream": "msg._streamId",
    "off": "off",
    "val": "null",
    "seq": "message sequence",
    "elem": "element's value",
    "len": "fixed length of",
}
NO_VALUE_TYPES = {"date", "full", "pay", "payl", "nul", "auto", "counter", "stream", "off", "seq", "elem"}
"""Types whose value is implied: no input beside the type."""


def check_typed(value: Any, vtype: str | None) -> str | None:
    """Why `value` is not a valid `vtype` value, or None."""
    text = "" if value is None else str(value)
    if vtype == "num":
        try:
            float(text)
        except ValueError:
            return f"{text!r} is not a number"
    elif vtype == "json":
        try:
            json.loads(text)
        except ValueError as exc:
            return f"invalid JSON: {exc}"
    elif vtype == "bool" and text not in ("true", "false"):
        return "use true or false"
    elif vtype in ("msg", "flow", "global") and not text.strip():
        return "name a property"
    return None


class TypedInput:
    """A type select and a value input side by side; `.value`, `.vtype`, `.set_error()`."""

    def __init__(
        self,
        label: str,
        value: Any,
        vtype: str | None,
        types: list[str] | None = None,
        mark: str = "",
        help: str = "",  # noqa: A002 - the field's help, as FieldSpec names it
    ) -> None:
        self.label, self.help = label, help
        types = list(types or VALUE_TYPES)
        vtype = vtype or types[0]
        if vtype not in types:
            types.append(vtype)
        with ui.row().classes("w-full items-start no-wrap gap-1") as self.row:
            self.type_select = (
                ui.select({t: TYPE_LABELS.get(t, t) for t in types}, value=vtype, label=f"{label} type")
                .props("dense outlined options-dense")
                .classes("w-28 shrink-0")
                .props(testid(f"{mark}-type" if mark else ""))
            )
            # the select is named by its label prop ("Key type"); what it shows is shorter ("type") beside the value
            with self.type_select.add_slot("label"):
                self.type_label = ui.label("type")
            shown = value if isinstance(value, str) else json.dumps(value) if value is not None else ""
            if vtype == "bool":
                shown = "true" if value in (True, "true") else "false"
            self.input = (
                ui.input(label, value=shown).props("dense outlined").classes("grow").props(testid(mark or ""))
            )
        self.type_select.on_value_change(self._type_changed)
        self._type_changed()

    def _type_changed(self, _e: Any = None) -> None:
        implied = self.type_select.value in NO_VALUE_TYPES
        self.input.set_visibility(not implied)
        # no input beside it: the select takes the row, so "complete msg object" is not cut off, and it carries
        # the field's name and help (else the form would show a bare "type" with nothing to say what it is for)
        if implied:  # min-w-0: a long help line under it wraps instead of widening the row
            self.type_select.classes(add="grow min-w-0", remove="w-28 shrink-0")
        else:
            self.type_select.classes(add="w-28 shrink-0", remove="grow min-w-0")
        shown, hidden = (self.type_select, self.input) if implied else (self.input, self.type_select)
        self.type_select._props["label"] = self.label if implied else f"{self.label} type"
        self.type_label.set_text(self.label if implied else "type")
        if self.help:
            shown._props.update({"hint": self.help, "bottom-slots": True, "hide-bottom-space": True})
            for key in ("hint", "bottom-slots", "hide-bottom-space"):
                hidden._props.pop(key, None)
            hidden.update()
        shown.update()
        self.type_select.update()

    def on_value_change(self, callback: Any) -> None:
        """Call `callback(event)` when the kind or the value changes (fields shown by this one follow it)."""
        self.type_select.on_value_change(callback)
        self.input.on_value_change(callback)

    @property
    def vtype(self) -> str:
        return self.type_select.value

    @property
    def value(self) -> str:
        return "" if self.vtype in NO_VALUE_TYPES else (self.input.value or "")

    def check(self) -> str | None:
        """Show and return the reason the value does not fit its type (None when valid)."""
        problem = check_typed(self.value, self.vtype)
        self.set_error(problem)
        return problem

    def set_error(self, message: str | None) -> None:
        show_error(self.input, message)


def show_error(element: ui.element, message: str | None) -> None:
    """Mark a Quasar field as invalid with `message` under it, or clear the mark (None)."""
    if message:
        element.props(f'error error-message="{message.replace(chr(34), chr(39))}"')
    else:
        element.props(remove="error error-message")
