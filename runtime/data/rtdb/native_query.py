"""onesait NATIVE queries: MongoDB shell strings parsed into a `NativeQuery`, never evaluated.

    db.BasicSensor.find({"BasicSensor.assetId": "s-1"}, {"BasicSensor": 1}).sort({"contextData.timestampMillis": -1}).skip(5).limit(10)
    db.BasicSensor.count({...})            db.BasicSensor.find({...}).count()
    db.BasicSensor.update({...}, {$set: {...}}, {multi: true})    updateOne / updateMany
    db.BasicSensor.remove({...})           deleteOne / deleteMany

Values are the shell's JavaScript literals: objects with quoted or bare keys, single or double quoted
strings, numbers, true/false/null (Python's True/False/None too, which onesait's Python client writes),
arrays, `/regex/flags`, `ISODate("...")` / `new Date("...")` (as `{"$date": "..."}`), `ObjectId("...")`
(the id string) and `NumberInt/NumberLong/NumberDouble(n)`. Anything else is refused with
`NativeQueryError` naming the part and its position. The parser is a small recursive descent with bounded
input size and nesting.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from sofiaflow.runtime.errors import ValidationError

MAX_LENGTH = 100_000
MAX_DEPTH = 64

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
  | (?P<punct>[{}\[\]():,.;])
  | (?P<regex>/(?:[^/\\\n]|\\.)+/[a-z]*)
""",
    re.VERBOSE,
)

_VALUE_FUNCTIONS = {"ISODate", "Date", "ObjectId", "NumberInt", "NumberLong", "NumberDouble", "NumberDecimal"}
_METHODS = {
    "find",
    "findOne",
    "count",
    "countDocuments",
    "update",
    "updateOne",
    "updateMany",
    "remove",
    "deleteOne",
    "deleteMany",
}
_FIND_CHAIN = {"sort", "skip", "limit", "count", "projection", "pretty", "toArray"}


class NativeQueryError(ValidationError):
    """The query text is not a NATIVE query this platform can serve; the message says which part."""


@dataclass
class NativeQuery:
    """One parsed shell query. `operation`: find, count, update or remove."""

    collection: str
    operation: str
    filter: dict[str, Any] = field(default_factory=dict)
    projection: dict[str, Any] | None = None
    sort: list[tuple[str, int]] = field(default_factory=list)
    skip: int = 0
    limit: int = 0
    update: dict[str, Any] | None = None
    multi: bool = True


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise NativeQueryError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup or ""
        if (
            kind == "regex"
            and out
            and (out[-1].kind in ("num", "str", "name") or out[-1].text in (")", "]", "}"))
        ):
            raise NativeQueryError(f"unexpected '/' at position {pos} (division is not supported)")
        if kind != "ws":
            out.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return out


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


def _unquote(tok: _Tok) -> str:
    body, out, i = tok.text[1:-1], [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt == "u":
            digits = body[i + 2 : i + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise NativeQueryError(f"bad \\u escape in the string at position {tok.pos}")
            out.append(chr(int(digits, 16)))
            i += 6
            continue
        out.append(_ESCAPES.get(nxt, nxt))
        i += 2
    return "".join(out)


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = _tokenize(text)
        self.i = 0
        self.depth = 0

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def where(self) -> str:
        tok = self.peek()
        return f"at position {tok.pos} ({tok.text!r})" if tok else "at the end of the query"

    def take(self, text: str | None = None, kind: str | None = None) -> _Tok:
        tok = self.peek()
        if tok is None or (text is not None and tok.text != text) or (kind is not None and tok.kind != kind):
            wanted = repr(text) if text else kind
            raise NativeQueryError(f"expected {wanted} {self.where()}")
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.text == text and tok.kind == "punct":
            self.i += 1
            return True
        return False

    # ----- values ------------------------------------------------------------------------------------
    def value(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise NativeQueryError("unexpected end of the query, a value was expected")
        if tok.text == "{":
            return self.nested(self.obj)
        if tok.text == "[":
            return self.nested(self.array)
        self.i += 1
        if tok.kind == "num":
            number = float(tok.text)
            return int(number) if re.fullmatch(r"-?\d+", tok.text) else number
        if tok.kind == "str":
            return _unquote(tok)
        if tok.kind == "regex":
            pattern, flags = tok.text[1:].rsplit("/", 1)
            return {"$regex": pattern, **({"$options": flags} if flags else {})}
        if tok.kind == "name":
            return self.name_value(tok)
        raise NativeQueryError(f"unexpected {tok.text!r} at position {tok.pos}")

    def nested(self, fn: Any) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise NativeQueryError(f"the query nests deeper than {MAX_DEPTH} levels")
        try:
            return fn()
        finally:
            self.depth -= 1

    def name_value(self, tok: _Tok) -> Any:
        constants = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
        if tok.text in constants:
            return constants[tok.text]
        name = tok.text
        if name == "new":
            name = self.take(kind="name").text
            if name not in ("Date", "ISODate"):
                raise NativeQueryError(f"'new {name}' is not supported (only new Date(\"...\"))")
        if name not in _VALUE_FUNCTIONS:
            raise NativeQueryError(
                f"{name!r} at position {tok.pos} is not a value supported in a NATIVE query "
                f"(literals and {', '.join(sorted(_VALUE_FUNCTIONS))}(...))"
            )
        args = self.args(name)
        if name in ("ISODate", "Date"):
            if len(args) != 1 or not isinstance(args[0], str):
                raise NativeQueryError(f"{name}(...) needs one ISO 8601 date string")
            return {"$date": args[0]}
        if name == "ObjectId":
            if len(args) != 1 or not isinstance(args[0], str):
                raise NativeQueryError("ObjectId(...) needs one id string")
            return args[0]
        if name in ("NumberInt", "NumberLong", "NumberDouble", "NumberDecimal"):
            if len(args) != 1:
                raise NativeQueryError(f"{name}(...) needs one number")
            try:
                number = float(args[0])
            except (TypeError, ValueError):
                raise NativeQueryError(f"{name}({args[0]!r}): not a number") from None
            return number if name in ("NumberDouble", "NumberDecimal") else int(number)
        raise NativeQueryError(f"{tok.text}(...) at position {tok.pos} is not supported")  # pragma: no cover

    def args(self, what: str) -> list[Any]:
        self.take("(")
        out: list[Any] = []
        if self.accept(")"):
            return out
        while True:
            out.append(self.value())
            if self.accept(")"):
                return out
            if not self.accept(","):
                raise NativeQueryError(f"expected ',' or ')' in the arguments of {what} {self.where()}")

    def obj(self) -> dict[str, Any]:
        self.take("{")
        out: dict[str, Any] = {}
        while not self.accept("}"):
            tok = self.peek()
            if tok is None or tok.kind not in ("str", "name", "num"):
                raise NativeQueryError(f"expected a key {self.where()}")
            self.i += 1
            key = _unquote(tok) if tok.kind == "str" else tok.text
            self.take(":")
            out[key] = self.value()
            if not self.accept(","):
                self.take("}")
                break
        return out

    def array(self) -> list[Any]:
        self.take("[")
        out: list[Any] = []
        while not self.accept("]"):
            out.append(self.value())
            if not self.accept(","):
                self.take("]")
                break
        return out

    # ----- the statement -----------------------------------------------------------------------------
    def calls(self) -> tuple[str, list[tuple[str, list[Any], int]]]:
        self.take("db", kind="name")
        self.take(".")
        coll = self.take(kind="name").text
        if coll == "getCollection":
            args = self.args("getCollection")
            if len(args) != 1 or not isinstance(args[0], str):
                raise NativeQueryError("db.getCollection(...) needs one collection name")
            coll = args[0]
        calls: list[tuple[str, list[Any], int]] = []
        while self.accept("."):
            tok = self.take(kind="name")
            allowed = _FIND_CHAIN if calls else _METHODS
            if tok.text not in allowed:
                after = f" after .{calls[-1][0]}(...)" if calls else ""
                raise NativeQueryError(
                    f".{tok.text}(...) at position {tok.pos} is not supported{after} (use "
                    f"{', '.join(sorted(allowed))})"
                )
            calls.append((tok.text, self.args(tok.text), tok.pos))
        self.accept(";")
        if self.peek() is not None:
            raise NativeQueryError(f"unexpected {self.peek().text!r} at position {self.peek().pos}")
        if not calls:
            raise NativeQueryError("the query calls no method on the collection (e.g. .find({...}))")
        return coll, calls


def _object_arg(args: list[Any], index: int, what: str) -> dict[str, Any] | None:
    if len(args) <= index or args[index] is None:
        return None
    if not isinstance(args[index], dict):
        raise NativeQueryError(f"{what} must be an object, got {json.dumps(args[index])}")
    return args[index]


def _count_arg(args: list[Any], what: str) -> int:
    if (
        len(args) != 1
        or isinstance(args[0], bool)
        or not isinstance(args[0], (int, float))
        or args[0] < 0
        or int(args[0]) != args[0]
    ):
        raise NativeQueryError(f".{what}(n) needs one non-negative integer")
    return int(args[0])


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true") or value == 1


def parse_native(text: str) -> NativeQuery:
    """Parse one shell query; NativeQueryError names what is wrong or unsupported."""
    if not isinstance(text, str) or not text.strip():
        raise NativeQueryError("the NATIVE query is empty")
    if len(text) > MAX_LENGTH:
        raise NativeQueryError(f"the NATIVE query is longer than {MAX_LENGTH} characters")
    coll, calls = _Parser(text.strip()).calls()
    (method, args, pos), rest = calls[0], calls[1:]
    q = NativeQuery(coll, "find")
    if method in ("find", "findOne"):
        q.filter = _object_arg(args, 0, f"{method} filter") or {}
        q.projection = _object_arg(args, 1, f"{method} projection")
        if method == "findOne":
            q.limit = 1
        for name, chain_args, chain_pos in rest:
            if name not in _FIND_CHAIN:
                raise NativeQueryError(
                    f".{name}(...) at position {chain_pos} is not supported after find "
                    f"(use {', '.join(sorted(_FIND_CHAIN))})"
                )
            if name == "sort":
                spec = _object_arg(chain_args, 0, "sort") or {}
                for key, direction in spec.items():
                    if direction not in (1, -1) or isinstance(direction, bool):
                        raise NativeQueryError(
                            f"sort direction of {key!r} must be 1 or -1, got {direction!r}"
                        )
                    q.sort.append((key, direction))
            elif name in ("skip", "limit"):
                setattr(q, name, _count_arg(chain_args, name))
            elif name == "count":
                q.operation = "count"
            elif name == "projection":
                q.projection = _object_arg(chain_args, 0, "projection")
        return q
    if rest:
        raise NativeQueryError(f".{rest[0][0]}(...) at position {rest[0][2]} cannot follow .{method}(...)")
    if method in ("count", "countDocuments"):
        q.operation, q.filter = "count", _object_arg(args, 0, f"{method} filter") or {}
        return q
    if method in ("update", "updateOne", "updateMany"):
        if len(args) < 2:
            raise NativeQueryError(f".{method}(filter, update) needs a filter and an update document")
        q.operation = "update"
        q.filter = _object_arg(args, 0, f"{method} filter") or {}
        q.update = _object_arg(args, 1, f"{method} update")
        if not q.update or not all(k.startswith("$") for k in q.update):
            raise NativeQueryError(
                f".{method}: replacing whole documents is not supported; use "
                "operators such as {$set: {...}}"
            )
        options = _object_arg(args, 2, f"{method} options") or {}
        if _truthy(options.get("upsert")):
            raise NativeQueryError(f".{method}: upsert is not supported")
        q.multi = method == "updateMany" or (method == "update" and _truthy(options.get("multi")))
        return q
    if method in ("remove", "deleteOne", "deleteMany"):
        q.operation = "remove"
        q.filter = _object_arg(args, 0, f"{method} filter") or {}
        just_one = len(args) > 1 and (
            _truthy(args[1]) or (isinstance(args[1], dict) and _truthy(args[1].get("justOne")))
        )
        q.multi = not (method == "deleteOne" or just_one)
        return q
    raise NativeQueryError(
        f"db.{coll}.{method}(...) at position {pos} is not supported (use find, findOne, "
        "count, countDocuments, update, updateOne, updateMany, remove, deleteOne, deleteMany)"
    )
