"""List editors: the change node's rules, the switch node's rules, the inject node's properties."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nicegui import ui

from sofiaflow.editor.properties.typed_input import PROPERTY_TYPES, VALUE_TYPES, TypedInput, show_error
from sofiaflow.editor.testid import testid

CHANGE_ACTIONS = {"set": "Set", "change": "Change", "delete": "Delete", "move": "Move"}
SWITCH_OPS = {
    "eq": "==",
    "neq": "!=",
    "lt": "<",
    "lte": "<=",
    "gt": ">",
    "gte": ">=",
    "btwn": "is between",
    "cont": "contains",
    "regex": "matches regex",
    "true": "is true",
    "false": "is false",
    "null": "is null",
    "nnull": "is not null",
    "istype": "is of type",
    "empty": "is empty",
    "nempty": "is not empty",
    "head": "head",
    "index": "index between",
    "tail": "tail",
    "jsonata_exp": "JSONata exp",
    "else": "otherwise",
}
_NO_VALUE = {"true", "false", "null", "nnull", "empty", "nempty", "else"}
_TWO_VALUES = {"btwn", "index"}


class _ListEditor:
    """Rows with a delete button each, and an add button; subclasses build and read one row."""

    title = "rules"

    def __init__(self, items: list[dict], mark: str) -> None:
        self.rows: list[tuple[ui.element, dict[str, Any]]] = []
        self.mark = mark
        ui.label(self.title).classes("text-sm text-gray-600 mt-2")
        self.box = ui.column().classes("w-full gap-1").props(testid(mark))
        for item in items:
            self.add(item)
        ui.button("add", icon="add", on_click=lambda: self.add(self.blank())).props(
            "flat dense no-caps"
        ).props(testid(f"{mark}-add"))

    def blank(self) -> dict:
        return {}

    def add(self, item: dict) -> None:
        with self.box:
            with ui.card().props("flat bordered").classes("w-full p-2") as card:
                with ui.row().classes("w-full items-start no-wrap gap-1"):
                    with ui.column().classes("grow gap-1"):
                        widgets = self.build(item, len(self.rows))
                    ui.button(icon="close", on_click=lambda c=card: self.remove(c)).props(
                        "flat dense round size=sm"
                    )
        self.rows.append((card, widgets))

    def remove(self, card: ui.element) -> None:
        self.rows = [(c, w) for c, w in self.rows if c is not card]
        self.box.remove(card)

    def build(self, item: dict, index: int) -> dict[str, Any]:
        raise NotImplementedError

    def read(self, widgets: dict[str, Any]) -> dict:
        raise NotImplementedError

    @property
    def value(self) -> list[dict]:
        return [self.read(w) for _c, w in self.rows]

    def check(self) -> str | None:
        """Mark every invalid typed value; the first problem, or None."""
        problems = [self.check_row(w) for _c, w in self.rows]
        return next((p for p in problems if p), None)

    def check_row(self, widgets: dict[str, Any]) -> str | None:
        return None


def _toggle(widgets: dict[str, Any], visible: Callable[[str], bool]) -> None:
    for name, widget in widgets.items():
        if isinstance(widget, TypedInput):
            widget.row.set_visibility(visible(name))


class ChangeRules(_ListEditor):
    title = "Rules"

    def blank(self) -> dict:
        return {"t": "set", "p": "payload", "pt": "msg", "to": "", "tot": "str"}

    def build(self, item: dict, index: int) -> dict[str, Any]:
        m = f"{self.mark}-{index}"
        action = (
            ui.select(CHANGE_ACTIONS, value=item.get("t") or "set", label="action")
            .props("dense outlined options-dense")
            .classes("w-32")
            .props(testid(f"{m}-action"))
        )
        widgets: dict[str, Any] = {"t": action}
        widgets["p"] = TypedInput(
            "property", item.get("p", ""), item.get("pt") or "msg", PROPERTY_TYPES, f"{m}-p"
        )
        widgets["from"] = TypedInput(
            "search for",
            item.get("from", ""),
            item.get("fromt") or "str",
            ["str", "num", "bool", "re", "msg", "flow", "global", "env"],
            f"{m}-from",
        )
        widgets["to"] = TypedInput(
            "to the value", item.get("to", ""), item.get("tot") or "str", VALUE_TYPES, f"{m}-to"
        )

        def refresh(_e: Any = None) -> None:
            act = action.value
            _toggle(
                widgets,
                lambda name: (
                    name == "p"
                    or (name == "to" and act in ("set", "change", "move"))
                    or (name == "from" and act == "change")
                ),
            )

        action.on_value_change(refresh)
        refresh()
        return widgets

    def read(self, w: dict[str, Any]) -> dict:
        rule = {"t": w["t"].value, "p": w["p"].value, "pt": w["p"].vtype}
        if rule["t"] in ("set", "change", "move"):
            rule.update(to=w["to"].value, tot=w["to"].vtype)
        if rule["t"] == "change":
            rule.update({"from": w["from"].value, "fromt": w["from"].vtype})
        return rule

    def check_row(self, w: dict[str, Any]) -> str | None:
        act = w["t"].value
        checks = (
            [w["p"]]
            + ([w["to"]] if act in ("set", "change", "move") else [])
            + ([w["from"]] if act == "change" else [])
        )
        problems = [c.check() for c in checks]
        return next((p for p in problems if p), None)


class SwitchRules(_ListEditor):
    title = "Rules (one output each)"

    def blank(self) -> dict:
        return {"t": "eq", "v": "", "vt": "str"}

    def build(self, item: dict, index: int) -> dict[str, Any]:
        m = f"{self.mark}-{index}"
        op = (
            ui.select(SWITCH_OPS, value=item.get("t") or "eq", label="test")
            .props("dense outlined options-dense")
            .classes("w-40")
            .props(testid(f"{m}-op"))
        )
        widgets: dict[str, Any] = {"t": op}
        widgets["v"] = TypedInput("value", item.get("v", ""), item.get("vt") or "str", VALUE_TYPES, f"{m}-v")
        widgets["v2"] = TypedInput(
            "and", item.get("v2", ""), item.get("v2t") or "num", VALUE_TYPES, f"{m}-v2"
        )
        widgets["case"] = ui.checkbox("ignore case", value=bool(item.get("case")))

        def refresh(_e: Any = None) -> None:
            t = op.value
            _toggle(
                widgets,
                lambda name: (name == "v" and t not in _NO_VALUE) or (name == "v2" and t in _TWO_VALUES),
            )
            widgets["case"].set_visibility(t == "regex")

        op.on_value_change(refresh)
        refresh()
        return widgets

    def read(self, w: dict[str, Any]) -> dict:
        t = w["t"].value
        rule: dict[str, Any] = {"t": t}
        if t not in _NO_VALUE:
            rule.update(v=w["v"].value, vt=w["v"].vtype)
        if t in _TWO_VALUES:
            rule.update(v2=w["v2"].value, v2t=w["v2"].vtype)
        if t == "regex":
            rule["case"] = bool(w["case"].value)
        return rule

    def check_row(self, w: dict[str, Any]) -> str | None:
        t = w["t"].value
        checks = ([w["v"]] if t not in _NO_VALUE else []) + ([w["v2"]] if t in _TWO_VALUES else [])
        problems = [c.check() for c in checks if c.vtype not in ("msg", "flow", "global") or c.value]
        return next((p for p in problems if p), None)


class InjectProps(_ListEditor):
    title = "Message properties"

    def __init__(self, node: dict, mark: str) -> None:
        items = []
        for prop in node.get("props") or [{"p": "payload"}]:
            item = dict(prop)
            if item.get("p") == "payload" and "v" not in item:
                item.update(v=node.get("payload", ""), vt=node.get("payloadType") or "date")
            elif item.get("p") == "topic" and "v" not in item:
                item.update(v=node.get("topic", ""), vt="str")
            items.append(item)
        super().__init__(items, mark)

    def blank(self) -> dict:
        return {"p": "", "v": "", "vt": "str"}

    def build(self, item: dict, index: int) -> dict[str, Any]:
        m = f"{self.mark}-{index}"
        name = (
            ui.input("msg.", value=item.get("p", ""))
            .props("dense outlined")
            .classes("w-full")
            .props(testid(f"{m}-p"))
        )
        value = TypedInput("value", item.get("v", ""), item.get("vt") or "str", VALUE_TYPES, f"{m}-v")
        return {"p": name, "v": value}

    def read(self, w: dict[str, Any]) -> dict:
        return {"p": w["p"].value.strip(), "v": w["v"].value, "vt": w["v"].vtype}

    def check_row(self, w: dict[str, Any]) -> str | None:
        problem = "name the property" if not w["p"].value.strip() else None
        show_error(w["p"], problem)
        return problem or w["v"].check()

    def node_props(self) -> dict[str, Any]:
        """`props` plus the top-level payload/payloadType/topic Node-RED also keeps."""
        props = self.value
        out: dict[str, Any] = {"props": props}
        for prop in props:
            if prop["p"] == "payload":
                out.update(payload=prop["v"], payloadType=prop["vt"])
            elif prop["p"] == "topic":
                out["topic"] = prop["v"]
        return out
