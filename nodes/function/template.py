"""template: renders a Mustache template with the message as the view (80-template.js).

Rendering follows mustache.js 4.2 as Node-RED uses it: chevron tokenizes the template once
(delimiters, standalone lines, comments), and a small renderer here applies mustache.js's rules
that chevron does not share: JavaScript truthiness for sections (`{}` and `[]` are true, `0` and
`""` false), `String()` conversion of values (`7.0` -> `7`, `true`, `1,2,3`, `[object Object]`),
the HTML escaping of `{{ }}` (& < > " ' / and backtick, =), and Node-RED's fallbacks for names missing from
the message: `{{flow.x}}`, `{{flow[store].x}}`, `{{global.x}}` and `{{env.NAME}}`.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from datetime import date
from typing import Any

from chevron.tokenizer import ChevronError, tokenize
from pydantic import Field

from sofiaflow.nodes.jsvalues import iso_date, js_json_parse, js_number_string, js_typeof
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, props

_VAR, _RAW, _SECTION, _INVERTED = range(4)
_MISSING = object()
_CONTEXT_NAME = re.compile(r"^(flow|global)(\[(\w+)\])?\.(.+)", re.S)
_ENV_NAME = re.compile(r"^env\.(.+)", re.S)

_HTML = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&#39;",
        "/": "&#x2F;",
        "`": "&#x60;",
        "=": "&#x3D;",
    }
)
_JSON_STR = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\f": "\\f", "\b": "\\b"})


# ----- compiling -------------------------------------------------------------------------------------------------


class _Tag:
    """A variable or section tag, with its name split once and its context fallback parsed."""

    __slots__ = ("kind", "name", "parts", "fallback", "children")

    def __init__(self, kind: int, name: str, children: list | None = None) -> None:
        self.kind = kind
        self.name = name
        self.parts = tuple(name.split(".")) if name.find(".") > 0 else None
        self.children = children
        self.fallback: tuple | None = None
        m = _CONTEXT_NAME.match(name)
        if m:
            self.fallback = (m.group(1), m.group(3), m.group(4))
        else:
            m = _ENV_NAME.match(name)
            if m:
                self.fallback = ("env", None, m.group(1))


def compile_template(text: str) -> list:
    """Parse a Mustache template into a tree of literal strings and `_Tag`s; raises NodeError."""
    if not isinstance(text, str):
        raise NodeError(
            f'Invalid template! Template should be a "string" but "{js_typeof(text)}" was given '
            "as the first argument for mustache#render(template, view, partials)"
        )
    root: list = []
    stack = [root]
    try:
        for tag, key in tokenize(text):
            if tag == "literal":
                if key:
                    stack[-1].append(key)
            elif tag == "variable":
                stack[-1].append(_Tag(_VAR, key))
            elif tag == "no escape":
                stack[-1].append(_Tag(_RAW, key))
            elif tag in ("section", "inverted section"):
                section = _Tag(_SECTION if tag == "section" else _INVERTED, key, [])
                stack[-1].append(section)
                stack.append(section.children)
            elif tag == "end":
                stack.pop()
            # comments, partials (Node-RED passes none) and delimiter changes render nothing
    except ChevronError as exc:
        raise NodeError(f"invalid Mustache template: {' '.join(str(exc).split())}") from None
    return root


# ----- JavaScript value semantics --------------------------------------------------------------------------------


def js_string(value: Any) -> str:
    """JavaScript's String(value)."""
    cls = value.__class__
    if cls is str:
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if cls is int or cls is float:
        return js_number_string(value)
    if value is None:
        return "null"
    if cls is list or cls is tuple:
        return ",".join("" if v is None else js_string(v) for v in value)
    if cls is dict:
        return "[object Object]"
    if cls is bytes or cls is bytearray:
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (int, float)):
        return js_number_string(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, date):
        return iso_date(value)
    if isinstance(value, dict):
        return "[object Object]"
    if isinstance(value, (list, tuple)):
        return js_string(list(value))
    return str(value)


def _truthy(value: Any) -> bool:
    """JavaScript truthiness (`[]` and `{}` are true; `0`, `NaN`, `""`, null are false)."""
    if value is None or value is False or value is True:
        return bool(value)
    cls = value.__class__
    if cls is str:
        return value != ""
    if cls is int or cls is float:
        return value == value and value != 0
    return True


def _property(obj: Any, key: str) -> Any:
    """`obj[key]` when `key in obj` in JavaScript terms, else _MISSING."""
    cls = obj.__class__
    if cls is dict or isinstance(obj, dict):
        return obj.get(key, _MISSING) if key in obj else _MISSING
    if cls is list or cls is tuple or cls is str or cls is bytes or cls is bytearray:
        if key == "length":
            return len(obj) if cls is not str or obj.isascii() else len(obj.encode("utf-16-le")) // 2
        if key.isdigit():
            i = int(key)
            return obj[i] if i < len(obj) else _MISSING
    return _MISSING


class _Context:
    __slots__ = ("view", "parent")

    def __init__(self, view: Any, parent: _Context | None) -> None:
        self.view = view
        self.parent = parent


def _lookup_chain(ctx: _Context | None, tag: _Tag) -> Any:
    """mustache.js Context.lookup: the first context where the whole (dotted) name exists."""
    name, parts = tag.name, tag.parts
    if name == ".":
        return ctx.view if ctx is not None else _MISSING
    while ctx is not None:
        view = ctx.view
        if parts is None:
            value = _property(view, name) if view is not None else _MISSING
            if value is not _MISSING:
                return value
        else:
            value = view
            last = len(parts) - 1
            for i, part in enumerate(parts):
                if value is None or value is _MISSING:
                    break
                value = _property(value, part)
                if i == last and value is not _MISSING:
                    return value
        ctx = ctx.parent
    return _MISSING


# ----- the node --------------------------------------------------------------------------------------------------


class TemplateConfig(NodeConfig):
    field: str = "payload"
    fieldType: str = "msg"
    format: str = Field(
        "handlebars",
        title="Format",
        description="How the template is highlighted.",
        json_schema_extra={
            "x-choices": [
                ["handlebars", "Mustache template"],
                ["html", "HTML"],
                ["json", "JSON"],
                ["javascript", "JavaScript"],
                ["sql", "SQL"],
                ["yaml", "YAML"],
                ["text", "plain text"],
            ]
        },
    )
    syntax: str = Field(
        "mustache",
        title="Syntax",
        json_schema_extra={"x-choices": [["mustache", "Mustache"], ["plain", "plain text"]]},
    )
    template: Any = Field(
        "This is the payload: {{payload}} !",
        title="Template",
        description="{{payload}} inserts msg.payload; {{flow.name}} and {{global.name}} read context.",
        json_schema_extra={"x-widget": "code", "x-language": "mustache"},
    )
    output: str = Field(
        "str",
        title="Output as",
        json_schema_extra={
            "x-choices": [["str", "plain text"], ["json", "parsed JSON"], ["yaml", "parsed YAML"]]
        },
    )


class TemplateNode(Node[TemplateConfig]):
    type = "template"
    category = "function"
    color = "rgb(243, 181, 103)"
    Config = TemplateConfig
    help = (
        "Sets a property (`msg.payload` by default, or flow/global context) from a Mustache template "
        "rendered with the message; `{{flow.x}}`, `{{global.x}}` and `{{env.X}}` read context and env. "
        "The result can be parsed as JSON or YAML."
    )

    def setup(self) -> None:
        cfg = self.config
        if cfg.fieldType not in ("msg", "flow", "global"):
            raise NodeError(f"fieldType must be msg, flow or global, not {cfg.fieldType!r}")
        if cfg.syntax not in ("mustache", "plain"):
            raise NodeError(f"syntax must be 'mustache' or 'plain', not {cfg.syntax!r}")
        if cfg.output not in ("str", "json", "yaml"):
            raise NodeError(f"output must be str, json or yaml, not {cfg.output!r}")
        field = cfg.field or "payload"
        if cfg.fieldType == "msg":
            if field.startswith("msg."):
                field = field[4:]
            try:
                props.parse_path(field)
            except props.PropertyPathError as exc:
                raise NodeError(f"field: {exc}") from None
        self._field = field
        self._field_type = cfg.fieldType
        self._mustache = cfg.syntax == "mustache"
        self._json = cfg.output == "json"
        self._yaml: Any = None
        if cfg.output == "yaml":
            try:
                import yaml
            except ImportError:
                raise NodeError("output 'yaml' needs the PyYAML package, which is not installed") from None
            self._yaml = yaml
        self._template = "" if cfg.template is None else cfg.template
        self._tree = compile_template(self._template) if self._mustache else None
        self._cache: OrderedDict[str, list] = OrderedDict()  # templates that arrive in msg.template

    # -- rendering --
    def _tree_for(self, text: Any) -> list:
        if not isinstance(text, str):
            return compile_template(text)
        tree = self._cache.get(text)
        if tree is None:
            tree = compile_template(text)
            self._cache[text] = tree
            if len(self._cache) > 64:
                self._cache.popitem(last=False)
        return tree

    def render(self, tree: list, msg: Msg) -> str:
        """Render a compiled template with `msg` as the view."""
        out: list[str] = []
        self._render(tree, _Context(msg, None), out)
        return "".join(out)

    def _value(self, tag: _Tag, ctx: _Context) -> Any:
        """Node-RED's NodeContext.lookup: the message first, then flow/global/env, else ''."""
        value = _lookup_chain(ctx, tag)
        if value is not _MISSING:
            if self._json and ctx.parent is None and value.__class__ is str:
                value = value.translate(_JSON_STR)
            return value
        fallback = tag.fallback
        if fallback is None:
            return ""
        kind, store, key = fallback
        if kind == "env":
            value = self.env(key)
            return "" if value is None else value
        scope = self.flow if kind == "flow" else self.global_
        return scope.get(key, store)

    def _render(self, tree: list, ctx: _Context, out: list[str]) -> None:
        for item in tree:
            if item.__class__ is str:
                out.append(item)
                continue
            kind = item.kind
            value = self._value(item, ctx)
            if kind == _VAR:
                if value is not None:
                    cls = value.__class__
                    if cls is str:
                        out.append(value.translate(_HTML))
                    elif (cls is int or cls is float) and cls is not bool:
                        out.append(js_number_string(value))
                    else:
                        out.append(js_string(value).translate(_HTML))
            elif kind == _RAW:
                if value is not None:
                    out.append(value if value.__class__ is str else js_string(value))
            elif kind == _SECTION:
                if not _truthy(value):
                    continue
                if value.__class__ is list or value.__class__ is tuple:
                    for element in value:
                        self._render(item.children, _Context(element, ctx), out)
                elif value is True:
                    self._render(item.children, ctx, out)
                elif not callable(value):
                    self._render(item.children, _Context(value, ctx), out)
            elif not _truthy(value) or ((value.__class__ is list or value.__class__ is tuple) and not value):
                self._render(item.children, ctx, out)

    # -- input --
    def on_input(self, msg: Msg) -> None:
        template = self._template
        tree = self._tree
        if (template == "" or template is None) and "template" in msg:
            template = msg["template"]
            tree = self._tree_for(template) if self._mustache else None
        value: Any = self.render(tree, msg) if tree is not None else template
        if self._json:
            value = js_json_parse(value) if isinstance(value, str) else value
        elif self._yaml is not None and isinstance(value, str):
            try:
                value = self._yaml.safe_load(value)
            except self._yaml.YAMLError as exc:
                raise NodeError(f"invalid YAML: {' '.join(str(exc).split())}") from None
        if self._field_type == "msg":
            props.set_path(msg, self._field, value)
        elif self._field_type == "flow":
            self.flow.set(self._field, value)
        else:
            self.global_.set(self._field, value)
        self.send(msg)
