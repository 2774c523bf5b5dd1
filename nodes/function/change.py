"""change: set, change (search/replace), delete and move message and context properties (Node-RED 15-change.js).

Each rule is compiled once, in setup(), into a function of the message; on_input just runs them in order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sofiaflow.nodes.jsvalues import js_number, js_regex, js_string
from sofiaflow.runtime.api import (
    JsonataError,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    clone_value,
    compile_expression,
    evaluate_jsonata,
    props,
    typed_getter,
)

_MISSING: Any = object()
"""JavaScript's undefined: a property that is not there. Setting it deletes the target."""

_SCOPES = frozenset(("msg", "flow", "global"))
_TO_TYPES = frozenset(
    ("str", "num", "bool", "json", "bin", "date", "jsonata", "env", "msg", "flow", "global")
)
_DYNAMIC_FROM = frozenset(("msg", "flow", "global"))
_MSG_REF = re.compile(r"\[msg\.([^\[\]]+)\]")

Rule = Callable[[Msg], None]
Reader = Callable[[Msg], Any]
Writer = Callable[[Msg, Any], None]


class ChangeRule(BaseModel):
    """One rule: `t` the action on property `p` (scope `pt`), with `to`/`tot` and, for change, `from`/`fromt`."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    t: str | None = "set"
    p: str | None = ""
    pt: str | None = None
    to: Any = ""
    tot: str | None = None
    from_: Any = Field("", alias="from")
    fromt: str | None = None
    dc: NRBool = False


class ChangeConfig(NodeConfig):
    rules: list[ChangeRule] | None = [ChangeRule(t="set", p="payload", pt="msg", to="", tot="str")]
    # legacy (pre-0.14) single-rule form, used when `rules` is absent
    action: str | None = ""
    property: str | None = ""
    from_: Any = Field("", alias="from")
    to: Any = ""
    reg: NRBool | None = False


# ----- Node-RED's setMessageProperty -------------------------------------------------------------


def _resolve(msg: Msg, parts: tuple) -> tuple:
    if not any(isinstance(p, tuple) for p in parts):
        return parts
    out = []
    for p in parts:
        if isinstance(p, tuple):
            value = props.get_parts(msg, tuple(p))
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise props.PropertyPathError(f"nested property reference resolved to {value!r}")
            out.append(value)
        else:
            out.append(p)
    return tuple(out)


def _set_message_property(msg: Msg, parts: tuple, value: Any) -> bool:
    """Set (or, for _MISSING, delete) a msg property; False when a step is not an object, as Node-RED."""
    parts = _resolve(msg, parts)
    obj: Any = msg
    for i, key in enumerate(parts[:-1]):
        if isinstance(obj, list) and isinstance(key, int):
            nxt = obj[key] if -len(obj) <= key < len(obj) else _MISSING
        elif isinstance(obj, dict):
            if isinstance(key, int) and key not in obj:
                key = str(key)  # object keys are strings
            nxt = obj.get(key, _MISSING)
        else:
            return False
        if nxt is _MISSING:
            if value is _MISSING:
                return True
            nxt = {} if isinstance(parts[i + 1], str) else []
            if isinstance(obj, list):
                while len(obj) <= key:
                    obj.append(None)
            obj[key] = nxt
        elif not isinstance(nxt, (dict, list)):
            return False
        obj = nxt
    last = parts[-1]
    if value is _MISSING:
        if isinstance(obj, dict):
            obj.pop(last, None)
        elif isinstance(obj, list) and isinstance(last, int) and -len(obj) <= last < len(obj):
            del obj[last]
        return True
    if isinstance(obj, list):
        if not isinstance(last, int):
            return False
        if last < 0:
            last += len(obj)
        while len(obj) <= last:
            obj.append(None)
        obj[last] = value
        return True
    if isinstance(last, int) and last not in obj:
        last = str(last)
    obj[last] = value
    return True


# ----- JavaScript String.prototype.replace ---------------------------------------------------------

_TEMPLATE_TOKEN = re.compile(r"\$(\$|&|`|'|<[^>]*>|\d{1,2})")


@lru_cache(maxsize=1024)
def _template(text: str, groups: int, named: bool) -> tuple | str:
    """Parse a JavaScript replacement string into literal text and group references."""
    if "$" not in text:
        return text
    pieces: list[Any] = []
    pos = 0
    for m in _TEMPLATE_TOKEN.finditer(text):
        token = m.group(1)
        piece: Any
        if token == "$":
            piece = "$"
        elif token == "&":
            piece = 0
        elif token == "`":
            piece = ("pre",)
        elif token == "'":
            piece = ("post",)
        elif token.startswith("<"):
            if not named:
                continue
            piece = ("name", token[1:-1])
        else:
            number = int(token)
            if len(token) == 2 and 1 <= number <= groups:
                piece = number
            elif 1 <= int(token[0]) <= groups:
                piece = (int(token[0]), token[1:])
            else:
                continue
        pieces.append(text[pos : m.start()])
        pos = m.end()
        pieces.append(piece)
    pieces.append(text[pos:])
    return tuple(p for p in pieces if p != "")


def _expand(pieces: tuple, m: re.Match[str]) -> str:
    out = []
    for piece in pieces:
        if piece.__class__ is str:
            out.append(piece)
        elif piece.__class__ is int:
            out.append(m.group(piece) or "")
        elif piece[0] == "pre":
            out.append(m.string[: m.start()])
        elif piece[0] == "post":
            out.append(m.string[m.end() :])
        elif piece[0] == "name":
            out.append((m.groupdict().get(piece[1]) or "") if piece[1] in m.re.groupindex else "")
        else:
            out.append((m.group(piece[0]) or "") + piece[1])
    return "".join(out)


def js_replace(pattern: re.Pattern[str], text: str, replacement: Any) -> str:
    """`text.replace(/pattern/g, replacement)` with JavaScript's `$1`, `$&`, `$<name>` and `$$`."""
    template = _template(js_string(replacement), pattern.groups, bool(pattern.groupindex))
    if template.__class__ is str:
        return pattern.sub(lambda m: template, text)
    return pattern.sub(lambda m: _expand(template, m), text)  # type: ignore[arg-type]


# ----- the node ------------------------------------------------------------------------------------


class ChangeNode(Node[ChangeConfig]):
    type = "change"
    category = "function"
    color = "#e2d96e"
    Config = ChangeConfig
    help = (
        "Sets, changes (search and replace), deletes or moves message, flow and global properties, "
        "applying its rules in order. Values can be constants, other properties, env variables or JSONata."
    )

    def setup(self) -> None:
        cfg = self.config
        rules = cfg.rules if "rules" in cfg.model_fields_set and cfg.rules is not None else None
        if rules is None:
            rules = self._legacy_rules(cfg)
        self._rules: list[Rule] = []
        for index, rule in enumerate(rules):
            try:
                compiled = self._compile_rule(rule)
            except (NodeError, props.PropertyPathError) as exc:
                raise NodeError(f"rules[{index}] ({rule.t} {rule.p!r}): {exc}") from None
            if compiled is not None:
                self._rules.append(compiled)

    @staticmethod
    def _legacy_rules(cfg: ChangeConfig) -> list[ChangeRule]:
        t = "set" if cfg.action == "replace" else (cfg.action or "")
        rule = ChangeRule(t=t, p=cfg.property or "")
        if t in ("set", "move"):
            rule.to = cfg.to or ""
            if t == "move":
                rule.tot = "msg"
        elif t == "change":
            rule.from_ = cfg.from_ or ""
            rule.to = cfg.to or ""
            rule.fromt = "re" if (cfg.reg is None or cfg.reg) else "str"
        return [rule]

    # ----- scopes --------------------------------------------------------------------------------
    def _context_scope(self, scope: str) -> Any:
        return self.flow if scope == "flow" else self.global_

    def _context_key(self, key: str) -> Callable[[Msg], str]:
        if not key or not key.strip():
            raise NodeError("the context key is empty")
        if "[msg." not in key:
            return lambda msg: key

        def normalise(msg: Msg) -> str:
            def render(m: re.Match[str]) -> str:
                try:
                    value = props.get_path(msg, m.group(1))
                except props.PropertyPathError as exc:
                    raise NodeError(str(exc)) from None
                if isinstance(value, int) and not isinstance(value, bool):
                    return f"[{value}]"
                if isinstance(value, str):
                    return f'["{value}"]' if '"' not in value else f"['{value}']"
                raise NodeError(f"msg.{m.group(1)} is {value!r}, not a key or index")

            return _MSG_REF.sub(render, key)

        return normalise

    def _reader(self, scope: str, key: str) -> Reader:
        """fn(msg) -> value of the property (or _MISSING)."""
        if scope == "msg":
            parts = props.parse_path(key)
            if len(parts) == 1 and isinstance(parts[0], str):
                name = parts[0]
                return lambda msg: msg.get(name, _MISSING)

            def read_msg(msg: Msg) -> Any:
                try:
                    return props.get_parts(msg, parts, _MISSING)
                except props.PropertyPathError:
                    return _MISSING

            return read_msg
        context_key = self._context_key(key)

        def read_context(msg: Msg) -> Any:
            value = self._context_scope(scope).get(context_key(msg))
            return _MISSING if value is None else value

        return read_context

    def _writer(self, scope: str, key: str) -> Writer:
        """fn(msg, value) setting the property; _MISSING deletes it."""
        if scope == "msg":
            parts = props.parse_path(key)
            if len(parts) == 1 and isinstance(parts[0], str):
                name = parts[0]

                def write_key(msg: Msg, value: Any) -> None:
                    if value is _MISSING:
                        msg.pop(name, None)
                    else:
                        msg[name] = value

                return write_key

            def write_msg(msg: Msg, value: Any) -> None:
                try:
                    ok = _set_message_property(msg, parts, value)
                except props.PropertyPathError:
                    return
                if not ok:
                    self.warn(f"Cannot set property of non-object type: {key}")

            return write_msg
        context_key = self._context_key(key)

        def write_context(msg: Msg, value: Any) -> None:
            ctx = self._context_scope(scope)
            if value is _MISSING:
                ctx.delete(context_key(msg))
            else:
                ctx.set(context_key(msg), value)

        return write_context

    # ----- values --------------------------------------------------------------------------------
    def _to_value(self, rule: ChangeRule) -> Reader:
        tot = rule.tot or "str"
        to = rule.to
        if tot not in _TO_TYPES:
            raise NodeError(f"unknown value type {tot!r}")
        if tot == "str":
            text = "" if to is None else to
            return lambda msg: text
        if tot == "num":
            number = js_number(to)
            if isinstance(number, float) and math.isnan(number):
                raise NodeError(f"{to!r} is not a number")
            return lambda msg: number
        if tot == "bool":
            flag = to is True or (isinstance(to, str) and to.lower() == "true")
            return lambda msg: flag
        if tot == "msg":
            return self._reader("msg", str(to))
        if tot in ("flow", "global"):
            return self._reader(tot, str(to))
        if tot == "env":
            value = self.evaluate(to, "env")  # Node-RED reads env once, when the node starts
            if isinstance(value, (dict, list)):
                return lambda msg: clone_value(value)
            return lambda msg: _MISSING if value is None else value
        if tot == "json":
            try:
                json.loads(to) if isinstance(to, str) else None
            except json.JSONDecodeError as exc:
                raise NodeError(f"invalid JSON {to!r}: {exc.msg}") from None
        if tot == "jsonata":  # an expression giving nothing (undefined) deletes the target, as in Node-RED
            expr = str(to)
            compile_expression(expr)
            return _as_node_red_jsonata_error(
                lambda msg: evaluate_jsonata(expr, msg, self, undefined=_MISSING)
            )
        return typed_getter(self, to, tot)  # json, bin, date

    def _from_value(self, rule: ChangeRule) -> Callable[[Msg], tuple[str, Any, re.Pattern[str] | None]]:
        """fn(msg) -> (fromType, fromValue, fromRE) as Node-RED's getFromValue."""
        fromt = rule.fromt or "str"
        if rule.model_extra and rule.model_extra.get("re") and fromt == "str":
            fromt = "re"
        if fromt == "env":
            value = self.evaluate(rule.from_, "env")  # read once, like the `to` side
            fromt = "num" if isinstance(value, (int, float)) and not isinstance(value, bool) else "str"
            return self._from_constant(fromt, value)
        if fromt in _DYNAMIC_FROM:
            read = self._reader(fromt, str(rule.from_))

            def dynamic(msg: Msg) -> tuple[str, Any, re.Pattern[str] | None]:
                value = read(msg)
                if isinstance(value, bool):
                    return "bool", js_string(value), None
                if isinstance(value, (int, float)):
                    return "num", value, None
                if isinstance(value, re.Pattern):
                    return "re", value, value
                if isinstance(value, str):
                    return "str", value, _literal(value)
                kind = "undefined" if value is _MISSING else "object"
                raise NodeError(f"Invalid 'from' property: unsupported type: {kind}")

            return dynamic
        return self._from_constant(fromt, rule.from_)

    @staticmethod
    def _from_constant(
        fromt: str, from_value: Any
    ) -> Callable[[Msg], tuple[str, Any, re.Pattern[str] | None]]:
        source = "" if from_value is None else js_string(from_value)
        try:
            pattern = js_regex(source) if fromt == "re" else _literal(source)
        except re.error as exc:
            raise NodeError(f"Invalid 'from' property: {exc}") from None
        const = (fromt, source, pattern)
        return lambda msg: const

    # ----- rules ---------------------------------------------------------------------------------
    def _compile_rule(self, rule: ChangeRule) -> Rule | None:
        t = rule.t or ""
        if t == "":
            return None  # a legacy node without an action does nothing
        if t not in ("set", "change", "delete", "move"):
            raise NodeError(f"unknown rule type {t!r}")
        pt = rule.pt or "msg"
        if pt not in _SCOPES:
            raise NodeError(f"unknown property type {pt!r}")
        key = "" if rule.p is None else str(rule.p)
        if not key:
            raise NodeError("the property to act on is empty")
        if t == "delete":
            write = self._writer(pt, key)
            return lambda msg: write(msg, _MISSING)
        if t == "move":
            return self._compile_move(pt, key, rule.tot or "msg", "" if rule.to is None else str(rule.to))
        if t == "set" and not rule.tot and isinstance(rule.to, str) and rule.to.startswith("msg."):
            rule = rule.model_copy(update={"to": rule.to[4:], "tot": "msg"})  # Node-RED's migration
        get_value = self._to_value(rule)
        if rule.dc:
            raw_value = get_value

            def get_value(msg: Msg) -> Any:
                value = raw_value(msg)
                return value if value is _MISSING else clone_value(value)

        if t == "set":
            return self._compile_set(pt, key, rule, get_value)
        return self._compile_change(pt, key, rule, get_value)

    def _compile_set(self, pt: str, key: str, rule: ChangeRule, get_value: Reader) -> Rule:
        write = self._writer(pt, key)
        tot = rule.tot or "str"
        if pt == "msg" and tot in ("str", "num", "bool") and "." not in key and "[" not in key:
            constant = get_value({})

            def set_constant(msg: Msg) -> None:
                msg[key] = constant

            return set_constant
        return lambda msg: write(msg, get_value(msg))

    def _compile_change(self, pt: str, key: str, rule: ChangeRule, get_value: Reader) -> Rule:
        read = self._reader(pt, key)
        write = self._writer(pt, key)
        get_from = self._from_value(rule)

        def change(msg: Msg) -> None:
            current = read(msg)
            if current is _MISSING:
                return
            value = get_value(msg)
            from_type, from_value, from_re = get_from(msg)
            cls = current.__class__
            if cls is str:
                if (
                    from_type in ("num", "bool", "str")
                    and from_value.__class__ is str
                    and current == from_value
                ):
                    write(msg, value)  # the whole value matches: replace it with the typed value
                elif from_re is not None:
                    write(msg, js_replace(from_re, current, "undefined" if value is _MISSING else value))
            elif cls is bool:
                if from_type == "bool" and js_string(current) == js_string(from_value):
                    write(msg, value)
            elif cls in (int, float):
                if from_type == "num" and current == js_number(from_value):
                    write(msg, value)

        return change

    def _compile_move(self, pt: str, key: str, tot: str, to: str) -> Rule | None:
        if tot not in _SCOPES:
            raise NodeError(f"unknown target type {tot!r}")
        if not to:
            raise NodeError("the property to move to is empty")
        if pt == tot and key == to:
            return None  # moving a property onto itself changes nothing
        read = self._reader(pt, key)
        write_to = self._writer(tot, to)
        remove = self._writer(pt, key)
        if tot != pt or to in key:

            def move(msg: Msg) -> None:
                write_to(msg, read(msg))
                remove(msg, _MISSING)
        else:  # moving to a child of itself (payload -> payload.a): read, delete, then set

            def move(msg: Msg) -> None:
                value = read(msg)
                remove(msg, _MISSING)
                write_to(msg, value)

        return move

    def on_input(self, msg: Msg) -> None:
        for rule in self._rules:
            rule(msg)
        self.send(msg)


def _as_node_red_jsonata_error(getter: Callable[[Msg], Any]) -> Callable[[Msg], Any]:
    """A failing expression's error reads as Node-RED's: "Invalid JSONata expression: <reason>"."""

    def evaluate(msg: Msg) -> Any:
        try:
            return getter(msg)
        except JsonataError as exc:
            raise NodeError(f"Invalid JSONata expression: {exc.__cause__ or exc}") from None

    return evaluate


def _literal(text: str) -> re.Pattern[str]:
    return _compile_literal(text)


@lru_cache(maxsize=1024)
def _compile_literal(text: str) -> re.Pattern[str]:
    return re.compile(re.escape(text))
