"""The Siddhi-style query language of the cep query node: its grammar (lark) and the syntax tree it parses to.

    from Temp[value > 30]#window.time(5 min)
    select deviceId, avg(value) as avgValue group by deviceId having avgValue > 35
    insert into Alerts

    from every e1=Temp[value > 30] -> e2=Temp[deviceId == e1.deviceId and value > e1.value] within 1 min
    select e1.deviceId, e1.value as first, e2.value as second insert into Rising

Keywords are case-insensitive. Whatever the grammar cannot read, and what it reads but the node does not
support (an unknown window or function, a time unit), is a `QuerySyntaxError` naming it and its line:column.
The text is only ever parsed: nothing in it runs as code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.api import ValidationError

if TYPE_CHECKING:
    from lark import Token

GRAMMAR = r"""
start: "from"i source select? group_by? having? "insert"i "into"i NAME

?source: stream | pattern
stream: NAME filter? window?
filter: "[" expr "]"
window: "#" WINDOW "." NAME "(" NUMBER unit? ")"
pattern: EVERY? step ("->" step)+ within?
step: NAME "=" NAME filter?
within: "within"i (NUMBER unit)+

select: "select"i (STAR | item ("," item)*)
item: expr ("as"i NAME)?
group_by: "group"i "by"i attribute ("," attribute)*
having: "having"i expr

unit: NAME

?expr: or_
?or_: and_ (_OR and_)*  -> either
?and_: not_ (_AND not_)*  -> both
?not_: _NOT not_ -> negation
     | comparison
?comparison: sum (COMPARE sum)?
?sum: product (ADD product)*
?product: unary (MUL unary)*
?unary: "-" unary -> minus
      | atom
?atom: NUMBER -> number
     | STRING -> string
     | TRUE -> true
     | FALSE -> false
     | NULL -> null
     | NAME "(" [expr ("," expr)*] ")" -> call
     | attribute
     | "(" expr ")"
attribute: NAME ("." NAME)*

EVERY: "every"i
WINDOW: "window"i
TRUE: "true"i
FALSE: "false"i
NULL: "null"i
_OR: "or"i
_AND: "and"i
_NOT: "not"i
STAR: "*"
COMPARE: "==" | "!=" | "<=" | ">=" | "<" | ">"
ADD: "+" | "-"
MUL: "*" | "/" | "%"
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /\d+(\.\d+)?([eE][+-]?\d+)?/
STRING: /"([^"\\]|\\.)*"/ | /'([^'\\]|\\.)*'/

%import common.WS
%ignore WS
%ignore /--[^\n]*/
"""

_KEYWORDS = frozenset(
    "from select as group by having insert into within every window true false null or and not".split()
)


class QuerySyntaxError(ValidationError):
    """What is wrong in a query and where (1-based line and column)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"{message} at {line}:{column}")
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Pos:
    line: int
    column: int

    def error(self, message: str) -> QuerySyntaxError:
        return QuerySyntaxError(message, self.line, self.column)


# Expressions: tuples, the first item the kind.
#   ("const", value) | ("attr", (name, ...), pos) | ("call", name, (args...), pos) | ("not", e) | ("neg", e)
#   ("and", (e, ...)) | ("or", (e, ...)) | ("op", operator, left, right)
Expr = tuple[Any, ...]


@dataclass(frozen=True)
class Duration:
    ms: float
    pos: Pos


@dataclass(frozen=True)
class Window:
    kind: str  # length | time | lengthBatch | timeBatch
    size: float  # events or ms
    pos: Pos


@dataclass(frozen=True)
class Stream:
    name: str
    filter: Expr | None
    window: Window | None


@dataclass(frozen=True)
class Step:
    alias: str
    stream: str
    filter: Expr | None
    pos: Pos


@dataclass(frozen=True)
class Pattern:
    every: bool
    steps: tuple[Step, ...]
    within: Duration | None


@dataclass(frozen=True)
class Item:
    expr: Expr
    name: str | None  # the alias, or None when the expression names itself (an attribute) or has no name
    pos: Pos


@dataclass(frozen=True)
class Query:
    source: Stream | Pattern
    select: tuple[Item, ...] | None  # None: select * (every attribute)
    group_by: tuple[Expr, ...]
    having: Expr | None
    output: str


_UNITS = {
    **dict.fromkeys(("ms", "millisec", "millisecond", "milliseconds", "millis"), 1),
    **dict.fromkeys(("sec", "secs", "second", "seconds"), 1_000),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), 60_000),
    **dict.fromkeys(("hour", "hours"), 3_600_000),
}
WINDOWS = ("length", "time", "lengthBatch", "timeBatch")


def _pos(token: Token) -> Pos:
    return Pos(token.line or 1, token.column or 1)


def _number(token: Token) -> int | float:
    text = str(token)
    return int(text) if text.isdigit() else float(text)


def _unit(token: Token) -> int:
    factor = _UNITS.get(str(token).lower())
    if factor is None:
        raise _pos(token).error(f"unknown time unit {str(token)!r} (ms, sec, min, hour and their long forms)")
    return factor


def _unescape(text: str) -> str:
    body, out, i = text[1:-1], [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _fold(first: Expr, rest: tuple) -> Expr:
    out = first
    for op, right in zip(rest[::2], rest[1::2], strict=True):
        out = ("op", str(op), out, right)
    return out


def _expr_pos(expr: Expr) -> Pos:
    for part in expr[1:]:
        if isinstance(part, Pos):
            return part
        if isinstance(part, tuple) and part and isinstance(part[0], str) and part[0] in _KINDS:
            return _expr_pos(part)
        if isinstance(part, tuple):
            for sub in part:
                if isinstance(sub, tuple) and sub and sub[0] in _KINDS:
                    return _expr_pos(sub)
    return Pos(1, 1)


_KINDS = frozenset(("const", "attr", "call", "not", "neg", "and", "or", "op"))


def parse(text: str) -> Query:
    """The query's syntax tree; QuerySyntaxError (message with line:column) when it cannot be read."""
    if not isinstance(text, str) or not text.strip():
        raise QuerySyntaxError("the query is empty", 1, 1)
    # lark, the parser built from GRAMMAR and the transformer to Query: loaded with the first query parsed
    from sofiaflow.nodes.cep.query_lark import (
        PARSER,
        ToQuery,
        UnexpectedCharacters,
        UnexpectedEOF,
        UnexpectedInput,
    )

    try:
        tree = PARSER.parse(text)
    except UnexpectedEOF as exc:
        lines = text.rstrip().splitlines() or [""]
        raise QuerySyntaxError(
            f"the query ends too early (expected {_expected(exc.expected)})", len(lines), len(lines[-1]) + 1
        ) from None
    except UnexpectedCharacters as exc:
        raise QuerySyntaxError(
            f"unexpected character {text[exc.pos_in_stream]!r}", exc.line, exc.column
        ) from None
    except UnexpectedInput as exc:
        token = getattr(exc, "token", None)
        expected = getattr(exc, "expected", None) or getattr(exc, "accepts", None) or set()
        if token is not None and token.type == "$END":
            lines = text.rstrip().splitlines() or [""]
            raise QuerySyntaxError(
                f"the query ends too early (expected {_expected(expected)})", len(lines), len(lines[-1]) + 1
            ) from None
        shown = repr(str(token)) if token is not None else "input"
        raise QuerySyntaxError(
            f"unexpected {shown} (expected {_expected(expected)})", exc.line, exc.column
        ) from None
    try:
        return ToQuery().transform(tree)
    except Exception as exc:  # lark wraps what the transformer raises
        inner = getattr(exc, "orig_exc", exc)
        if isinstance(inner, QuerySyntaxError):
            raise inner from None
        raise


_SHOWN = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a text",
    "LSQB": "'['",
    "RSQB": "']'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "DOT": "'.'",
    "EQUAL": "'='",
    "__ANON_0": "'->'",
    "HASH": "'#'",
    "COMPARE": "a comparison",
    "ADD": "'+' or '-'",
    "MUL": "'*', '/' or '%'",
    "STAR": "'*'",
    "MINUS": "'-'",
}


def _expected(names: Any) -> str:
    shown = []
    for name in sorted(names or ()):
        text = _SHOWN.get(name)
        if text is None:
            text = name.lower().lstrip("_")
            if text.startswith("__anon") or text.startswith("anon"):
                continue
            text = repr(text)
        if text not in shown:
            shown.append(text)
    return ", ".join(shown[:8]) or "something else"
