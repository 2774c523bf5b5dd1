"""The lark side of the cep query language (query_grammar.py): the parser built from its GRAMMAR, and the transformer
from lark's tree to query_grammar's syntax tree. query_grammar.parse() imports it with the first query it parses, so a
server whose flows have no cep query node does not load lark."""

from __future__ import annotations

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, v_args

from sofiaflow.nodes.cep.query_grammar import (
    _KEYWORDS,
    GRAMMAR,
    WINDOWS,
    Duration,
    Item,
    Pattern,
    Query,
    Step,
    Stream,
    Window,
    _expr_pos,
    _fold,
    _number,
    _pos,
    _unescape,
    _unit,
)

__all__ = ["PARSER", "ToQuery", "UnexpectedCharacters", "UnexpectedEOF", "UnexpectedInput"]

PARSER = Lark(GRAMMAR, parser="lalr", maybe_placeholders=True)


@v_args(inline=True)
class ToQuery(Transformer):
    def start(self, source, *rest):
        output = rest[-1]
        select = group_by = having = None
        chosen = False
        for part in rest[:-1]:
            if isinstance(part, tuple) and part and part[0] == "select":
                select, chosen = part[1], True
            elif isinstance(part, tuple) and part and part[0] == "group":
                group_by = part[1]
            else:
                having = part
        if not chosen:
            select = None
        return Query(source, select, group_by or (), having, str(output))

    def stream(self, name, *parts):
        filt = window = None
        for part in parts:
            if isinstance(part, Window):
                window = part
            else:
                filt = part
        return Stream(str(name), filt, window)

    def filter(self, expr):
        return expr

    def window(self, keyword, kind, number, unit=None):
        name = str(kind)
        if name not in WINDOWS:
            raise _pos(kind).error(f"unsupported window {name!r} (length, time, lengthBatch, timeBatch)")
        size = _number(number)
        if name in ("length", "lengthBatch"):
            if unit is not None:
                raise _pos(unit).error(f"a {name} window counts events: no time unit")
            if not isinstance(size, int) or size < 1:
                raise _pos(number).error(f"a {name} window needs a whole number of events above 0")
            return Window(name, size, _pos(kind))
        size *= 1 if unit is None else _unit(unit)
        if size <= 0:
            raise _pos(number).error(f"a {name} window needs a length above 0")
        return Window(name, size, _pos(kind))

    def unit(self, name):
        return name

    def pattern(self, *parts):
        every = bool(parts) and isinstance(parts[0], Token) and parts[0].type == "EVERY"
        steps = tuple(p for p in parts if isinstance(p, Step))
        within = next((p for p in parts if isinstance(p, Duration)), None)
        aliases: set[str] = set()
        for step in steps:
            if step.alias in aliases:
                raise step.pos.error(f"the alias {step.alias!r} is used twice")
            aliases.add(step.alias)
        return Pattern(every, steps, within)

    def step(self, alias, stream, filt=None):
        return Step(str(alias), str(stream), filt, _pos(alias))

    def within(self, *parts):
        ms = sum(_number(n) * _unit(u) for n, u in zip(parts[::2], parts[1::2], strict=True))
        if ms <= 0:
            raise _pos(parts[0]).error("within needs a duration above 0")
        return Duration(ms, _pos(parts[0]))

    def select(self, *items):
        if len(items) == 1 and isinstance(items[0], Token) and items[0].type == "STAR":
            return ("select", None)
        return ("select", tuple(items))

    def item(self, expr, alias=None):
        pos = _expr_pos(expr)
        if alias is not None:
            return Item(expr, str(alias), _pos(alias))
        if expr[0] == "attr":
            return Item(expr, expr[1][-1], pos)
        return Item(expr, None, pos)

    def group_by(self, *attributes):
        return ("group", tuple(attributes))

    def having(self, expr):
        return expr

    def attribute(self, *names):
        for name in names:
            if str(name).lower() in _KEYWORDS:
                raise _pos(name).error(f"{str(name)!r} is a keyword, not an attribute")
        return ("attr", tuple(str(n) for n in names), _pos(names[0]))

    def number(self, token):
        return ("const", _number(token))

    def string(self, token):
        return ("const", _unescape(str(token)))

    def true(self, _):
        return ("const", True)

    def false(self, _):
        return ("const", False)

    def null(self, _):
        return ("const", None)

    def call(self, name, *args):
        return ("call", str(name), tuple(a for a in args if a is not None), _pos(name))

    def negation(self, expr):
        return ("not", expr)

    def minus(self, expr):
        if expr[0] == "const" and isinstance(expr[1], (int, float)) and not isinstance(expr[1], bool):
            return ("const", -expr[1])
        return ("neg", expr)

    def either(self, *exprs):
        return exprs[0] if len(exprs) == 1 else ("or", exprs)

    def both(self, *exprs):
        return exprs[0] if len(exprs) == 1 else ("and", exprs)

    def comparison(self, left, op, right):
        return ("op", str(op), left, right)

    def sum(self, first, *rest):
        return _fold(first, rest)

    def product(self, first, *rest):
        return _fold(first, rest)
