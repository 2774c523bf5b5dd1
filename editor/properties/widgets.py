"""The simple controls of a form: text, number, checkbox, select, code, JSON; each wrapped as a `FormField`.

A `FormField` reads its part of the node (`read()`), says what is wrong with it (`check()`), shows an error on
itself, and gives its current value to other fields' `x-show-if` (`current()`). Values keep the type the node
stored them in: a Node-RED "true"/"false" string stays a string, a qos "2" stays "2".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from nicegui import ui

from sofiaflow.editor.layout import CODE_THEME
from sofiaflow.editor.properties.schema import LANGUAGES, FieldSpec
from sofiaflow.editor.properties.typed_input import TypedInput, show_error
from sofiaflow.editor.testid import testid


class FormField:
    """One field of the form; `container` is what is hidden when `x-show-if` does not hold."""

    def __init__(
        self,
        key: str,
        widget: Any,
        read: Callable[[], dict],
        check: Callable[[], str | None] | None = None,
        error_target: Any = None,
        container: Any = None,
        current: Callable[[], Any] | None = None,
    ) -> None:
        self.key, self.widget, self._read, self._check = key, widget, read, check
        self.error_target = error_target if error_target is not None else widget
        self.container = container if container is not None else widget
        self._current = current
        self.spec: FieldSpec | None = None

    def read(self) -> dict:
        return self._read()

    def current(self) -> Any:
        if self._current is not None:
            return self._current()
        return self.read().get(self.key)

    def check(self) -> str | None:
        return self._check() if self._check else None

    def set_visible(self, visible: bool) -> None:
        target = self.container.row if isinstance(self.container, TypedInput) else self.container
        if target is not None and hasattr(target, "set_visibility"):
            target.set_visibility(visible)

    def show_error(self, message: str | None) -> None:
        if isinstance(self.error_target, ui.label):
            self.error_target.set_text(message or "")
            self.error_target.set_visibility(bool(message))
        elif isinstance(self.error_target, TypedInput):
            self.error_target.set_error(message)
        elif self.error_target is not None and hasattr(self.error_target, "props"):
            show_error(self.error_target, message)
        if message:
            label = self.spec.label if self.spec is not None else self.key
            ui.notify(f"{label}: {message}", type="negative", position="bottom")


def as_stored(value: Any, before: Any) -> Any:
    """`value` in the type the property was stored in (`before`): strings stay strings."""
    if isinstance(before, str) and not isinstance(value, str) and value is not None:
        return str(value).lower() if isinstance(value, bool) else str(value)
    return value


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true") or value == 1


def _hint(widget: Any, spec: FieldSpec) -> Any:
    if spec.help:
        widget.props(f'hint="{_attr(spec.help)}" bottom-slots hide-bottom-space')
    return widget


def _attr(text: str) -> str:
    return text.replace('"', "'")


def text_field(spec: FieldSpec, value: Any, mark: str) -> FormField:
    box = (
        ui.input(spec.label, value="" if value is None else str(value))
        .props("dense outlined")
        .classes("w-full")
        .props(testid(mark))
    )
    _hint(box, spec)
    return FormField(spec.key, box, lambda: {spec.key: box.value})


def checkbox_field(spec: FieldSpec, value: Any, mark: str) -> FormField:
    """A checkbox; a flag stored as "true"/"false" stays a string, one stored as a property name (exec's
    addpay "payload") stays that name when checked and becomes "" when not."""
    before = value if value is not None else spec.default
    named = isinstance(before, str) and before.strip().lower() not in ("true", "false", "")
    with ui.column().classes("w-full gap-0") as column:
        box = ui.checkbox(spec.label, value=named or truthy(value)).props(testid(mark))
        if spec.help:
            ui.label(spec.help).classes("text-xs text-gray-500 -mt-2 ml-10")

    def read() -> dict:
        if named:
            return {spec.key: before if box.value else ""}
        return {spec.key: as_stored(bool(box.value), before)}

    return FormField(spec.key, box, read, container=column, current=lambda: bool(box.value))


ENV_VARIABLE = re.compile(r"^\$\{[^}]+\}$|^\$\([^)]+\)$")
"""A whole `${VAR}` (or `$(VAR)`): a deploy fills the property from the env before it checks it, as Node-RED."""


def number_field(spec: FieldSpec, value: Any, mark: str) -> FormField:
    box = (
        ui.input(spec.label, value="" if value is None else str(value))
        .props("dense outlined inputmode=decimal")
        .classes("w-full")
        .props(testid(mark))
    )
    _hint(box, spec)
    integer = spec.widget == "integer"
    before = value

    def parse() -> Any:
        text = (box.value or "").strip()
        if not text:
            return None
        if integer:
            return int(text)
        return float(text) if any(c in text for c in ".eE") else int(text)

    def check() -> str | None:
        try:
            parse()
        except ValueError:
            if ENV_VARIABLE.match((box.value or "").strip()):
                return None  # a whole ${VAR}: kept as written, the deploy fills it and then checks it
            return f"{box.value!r} is not {'a whole number' if integer else 'a number'}"
        return None

    def read() -> dict:
        try:
            number = parse()
        except ValueError:
            return {spec.key: box.value}
        if number is None:
            return {spec.key: "" if isinstance(before, str) or before is None else None}
        return {spec.key: as_stored(number, before)}

    return FormField(spec.key, box, read, check)


def select_field(spec: FieldSpec, value: Any, options: dict, mark: str) -> FormField:
    """A dropdown; the stored value keeps its type (a qos stored as "2" is matched by the option 2)."""
    before = value if value is not None else spec.default
    chosen = next((k for k in options if _matches(k, value)), None)
    if chosen is None and value not in (None, ""):
        options = {**options, value: f"{value} (not one of the choices)"}
        chosen = value
    select = (
        ui.select(options, value=chosen, label=spec.label)
        .props("dense outlined options-dense")
        .classes("w-full")
        .props(testid(mark))
    )
    _hint(select, spec)
    valid = {k for k in options if not str(options[k]).endswith("(not one of the choices)")}

    def check() -> str | None:
        if select.value in valid:
            return None
        if select.value in (None, ""):
            return None if spec.default in (None, "") else "choose one"
        return f"{select.value!r} is not one of: {', '.join(str(options[k]) for k in valid)}"

    return FormField(
        spec.key,
        select,
        lambda: {spec.key: as_stored(select.value, before) if select.value is not None else ""},
        check,
        current=lambda: select.value,
    )


def _matches(option: Any, value: Any) -> bool:
    if isinstance(option, bool) or isinstance(value, bool):
        return str(option).lower() == str(value).lower()
    return option == value or (value is not None and str(option) == str(value))


def code_field(spec: FieldSpec, value: Any, mark: str) -> FormField:
    """A code editor in its language that scrolls inside itself (long lines do not widen the panel).

    A JSON value stored as data (a filter object) is shown as JSON text and stored back as data."""
    data = value is not None and not isinstance(value, str)
    with ui.column().classes("w-full gap-1 min-w-0") as column:
        ui.label(spec.label).classes("text-sm text-gray-700 mt-2")
        if spec.help:
            ui.label(spec.help).classes("text-xs text-gray-500")
        language = LANGUAGES.get(spec.language)
        text = json.dumps(value, indent=2) if data else ("" if value is None else value)
        code = (
            ui.codemirror(text, language=language, theme=CODE_THEME)
            .classes("w-full h-64 border sf-code")
            .style("max-width: 100%; overflow: auto")
            .props(testid(mark))
            .props(f'role=group aria-label="{_attr(spec.label)}"')
        )
        error = ui.label("").classes("text-xs text-negative")
        error.set_visibility(False)

    def parsed() -> Any:
        return json.loads(code.value) if code.value.strip() else ""

    def check() -> str | None:
        if spec.language != "json" or not code.value.strip():
            return None
        try:
            parsed()
        except ValueError as exc:
            return f"invalid JSON: {exc}"
        return None

    def read() -> dict:
        if data:
            try:
                return {spec.key: parsed()}
            except ValueError:
                pass
        return {spec.key: code.value}

    field = FormField(spec.key, code, read, check, error_target=error, container=column)
    return field


def json_field(spec: FieldSpec, value: Any, mark: str) -> FormField:
    """A JSON value (only where the stored value is JSON data); refused on Done when it does not parse."""
    text = json.dumps(value, indent=1) if not isinstance(value, str) else value
    box = (
        ui.textarea(f"{spec.label} (JSON)", value=text)
        .props("dense outlined autogrow")
        .classes("w-full font-mono")
        .props(testid(mark))
    )
    _hint(box, spec)
    was_str = isinstance(value, str)

    def read() -> dict:
        if was_str:
            return {spec.key: box.value}
        try:
            return {spec.key: json.loads(box.value or "null")}
        except ValueError:
            return {spec.key: box.value}

    def check() -> str | None:
        if was_str:
            return None
        try:
            json.loads(box.value or "null")
        except ValueError as exc:
            return f"invalid JSON: {exc}"
        return None

    return FormField(spec.key, box, read, check)
