"""A parsed cep query compiled onto the CEP operators: expressions to closures, windows to `WindowStore`s.

Expressions become plain Python closures over the event's attributes (nothing is evaluated as code):

- attributes: `value`, nested `location.city`; in patterns `e1.value` (an earlier step's event); a missing
  attribute is null;
- comparisons `== != < <= > >=`: numbers with numbers, texts with texts, booleans and null by equality; values
  of different types are unequal and never less or greater;
- arithmetic `+ - * / %` on numbers (a boolean is not one); anything else, or a division by zero, is null;
- `and`, `or`, `not` over conditions: only `true` holds.

A windowed query keeps one `WindowStore` per aggregate (and one for the window's own events), all fed the same
(group key, time, value) events, so their windows open, close and drop events alike; a row is read across them.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

from sofiaflow.nodes.cep.aggregates import NUMERIC, is_number
from sofiaflow.nodes.cep.query_grammar import Expr, Item, Pattern, Pos, Query, QuerySyntaxError, Stream
from sofiaflow.nodes.cep.state import Emission, Spec, WindowStore
from sofiaflow.runtime.api import NodeError

AGGREGATES = {
    "count": "count",
    "sum": "sum",
    "avg": "avg",
    "min": "min",
    "max": "max",
    "stddev": "stddev",
    "distinctCount": "distinct",
}
"""Query function -> the window aggregate it runs on."""

Fn = Callable[[Any, Sequence[Any]], Any]
"""(event scope, aggregate values) -> value."""

_MISSING = object()


# ----- expressions -----------------------------------------------------------------------------------------------
def _number(value: Any) -> bool:
    return type(value) is int or type(value) is float or (is_number(value) and not isinstance(value, bool))


def _lookup(value: Any, names: Sequence[str]) -> Any:
    for name in names:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _equal(a: Any, b: Any) -> bool:
    if _number(a) and _number(b):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if a is None or b is None:
        return a is None and b is None
    return type(a) is type(b) and a == b


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def check(a: Any, b: Any) -> bool:
        if _number(a) and _number(b) or isinstance(a, str) and isinstance(b, str):
            return compare(a, b)
        return False

    return check


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": _equal,
    "!=": lambda a, b: not _equal(a, b),
    "<": _ordered(operator.lt),
    "<=": _ordered(operator.le),
    ">": _ordered(operator.gt),
    ">=": _ordered(operator.ge),
}


def _arith(op: str) -> Callable[[Any, Any], Any]:
    def apply(a: Any, b: Any) -> Any:
        if not (_number(a) and _number(b)):
            return None
        if op == "+":
            out = a + b
        elif op == "-":
            out = a - b
        elif op == "*":
            out = a * b
        elif b == 0:
            return None
        elif op == "/":
            out = a / b
        else:
            out = math.fmod(a, b) if isinstance(a, float) or isinstance(b, float) else int(math.fmod(a, b))
        return out if not isinstance(out, float) or math.isfinite(out) else None

    return apply


class Scope:
    """How names resolve where an expression stands; `attribute` answers a getter (scope, aggs) -> value."""

    what = "expression"

    def attribute(self, names: tuple[str, ...], pos: Pos) -> Fn:
        if len(names) == 1:
            (name,) = names
            return lambda ev, aggs: ev.get(name) if ev.__class__ is dict else None
        return lambda ev, aggs: _lookup(ev, names)

    def aggregate(self, name: str, args: tuple[Expr, ...], pos: Pos) -> Fn:
        raise pos.error(f"{name}() is an aggregate: aggregates belong in select, over a window")


def compile_expr(expr: Expr, scope: Scope) -> Fn:
    kind = expr[0]
    if kind == "const":
        value = expr[1]
        return lambda ev, aggs: value
    if kind == "attr":
        return scope.attribute(expr[1], expr[2])
    if kind == "call":
        name, args, pos = expr[1], expr[2], expr[3]
        if name in AGGREGATES:
            return scope.aggregate(name, args, pos)
        known = ", ".join(AGGREGATES)
        raise pos.error(f"unknown function {name!r} (the aggregates: {known})")
    if kind == "not":
        inner = compile_expr(expr[1], scope)
        return lambda ev, aggs: inner(ev, aggs) is not True
    if kind == "neg":
        inner = compile_expr(expr[1], scope)
        return lambda ev, aggs: _arith("-")(0, inner(ev, aggs))
    if kind in ("and", "or"):
        parts = [compile_expr(e, scope) for e in expr[1]]
        if kind == "and":
            return lambda ev, aggs: all(p(ev, aggs) is True for p in parts)
        return lambda ev, aggs: any(p(ev, aggs) is True for p in parts)
    op, left, right = expr[1], compile_expr(expr[2], scope), compile_expr(expr[3], scope)
    apply = _COMPARE.get(op) or _arith(op)
    return lambda ev, aggs: apply(left(ev, aggs), right(ev, aggs))


def condition(expr: Expr | None, scope: Scope) -> Callable[[Any], bool] | None:
    if expr is None:
        return None
    fn = compile_expr(expr, scope)
    return lambda ev: fn(ev, ()) is True


def _has_aggregate(expr: Any) -> bool:
    if not isinstance(expr, tuple):
        return False
    if expr and expr[0] == "call" and expr[1] in AGGREGATES:
        return True
    return any(_has_aggregate(part) for part in expr)


_EXPRS = frozenset(("const", "attr", "call", "not", "neg", "and", "or", "op"))


def _names(items: tuple[Item, ...]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item.name is None:
            raise item.pos.error("name this expression with 'as' (select ... as name)")
        if item.name in seen:
            raise item.pos.error(f"the output attribute {item.name!r} is selected twice")
        seen.append(item.name)
    return seen


class _Output(Scope):
    """having: the names of the output row."""

    what = "having"

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def attribute(self, names: tuple[str, ...], pos: Pos) -> Fn:
        if names[0] not in self.names:
            raise pos.error(f"having: {names[0]!r} is not a selected attribute ({', '.join(self.names)})")
        return lambda row, aggs: _lookup(row, names)

    def aggregate(self, name: str, args: tuple[Expr, ...], pos: Pos) -> Fn:
        raise pos.error(f"having: select {name}(...) with 'as' and name it here")


def _having(query: Query, names: list[str]) -> Callable[[Any], bool] | None:
    return condition(query.having, _Output(names))


# ----- windowed (and plain) stream queries ---------------------------------------------------------------------
class _Selected(Scope):
    """select over a window: attributes of the event, aggregates numbered as they are met."""

    def __init__(self, window: bool) -> None:
        self.window = window
        self.aggregates: list[tuple[str, Fn, Pos]] = []

    def aggregate(self, name: str, args: tuple[Expr, ...], pos: Pos) -> Fn:
        if not self.window:
            raise pos.error(
                f"{name}() needs a window: add #window.length(n), time(t), lengthBatch(n) or timeBatch(t)"
            )
        if name != "count" and len(args) != 1:
            raise pos.error(f"{name}() takes one attribute or expression")
        if len(args) > 1:
            raise pos.error("count() takes at most one argument")
        for arg in args:
            if _has_aggregate(arg):
                raise pos.error(f"an aggregate inside {name}()")
        arg = compile_expr(args[0], Scope()) if args else (lambda ev, aggs: 1)
        index = len(self.aggregates)
        self.aggregates.append((name, arg, pos))
        return lambda ev, aggs: aggs[index]


Row = dict[str, Any]
"""What a query sends: the selected attributes (the query's `output` names the stream)."""


class QueryError(NodeError, ValueError):
    """An event a query cannot take (an aggregate over a value that is not a number): fails that message."""


class WindowQuery:
    """`from S[filter]#window.kind(size) select ... group by ... having ... insert into O` (window optional)."""

    def __init__(self, query: Query, arrival: bool, lateness: float, max_keys: int, max_events: int) -> None:
        source = query.source
        assert isinstance(source, Stream)
        self.stream = source.name
        self.output = query.output
        self.filter = condition(source.filter, Scope())
        window = source.window
        self.window = window
        scope = _Selected(window is not None)
        if query.select is None:
            if window is not None and window.kind.endswith("Batch"):
                raise window.pos.error("select the attributes and aggregates of a batch window (not *)")
            self.items: list[tuple[str, Fn]] | None = None
            self.having = condition(query.having, Scope())
        else:
            names = _names(query.select)
            self.items = [
                (name, compile_expr(item.expr, scope)) for name, item in zip(names, query.select, strict=True)
            ]
            self.having = _having(query, names)
        self.group = [compile_expr(g, Scope()) for g in query.group_by]
        if self.group and window is None:
            raise query.group_by[0][2].error("group by needs a window")
        self.aggregates = scope.aggregates
        self.stores: list[WindowStore] = []
        self.batch = window is not None and window.kind.endswith("Batch")
        if window is None:
            return
        sliding = not self.batch
        measure = "count" if window.kind.startswith("length") else "time"
        if measure == "count" and window.size > max_events:
            raise window.pos.error(
                f"a {window.kind} window of {int(window.size)} events is over maxEvents ({max_events})"
            )

        def store(aggregate: str) -> WindowStore:
            spec = Spec(
                window="sliding" if sliding else "tumbling",
                measure=measure,
                size=window.size,
                aggregate=aggregate,
                emit="event" if sliding else "close",
                lateness=0.0 if arrival else lateness,
                max_keys=max_keys,
                max_events=max_events,
            )
            return WindowStore(spec, arrival=arrival)

        # the window's own events (the latest event's attributes, for batches; a running count for sliding
        # windows without aggregates), then one store per aggregate
        self._own = self.batch or not self.aggregates
        self.stores = [store("last" if self.batch else "count")] if self._own else []
        self.stores += [store(AGGREGATES[name]) for name, _, _ in self.aggregates]
        self._numeric = [AGGREGATES[name] in NUMERIC for name, _, _ in self.aggregates]
        self._slide = not self.batch and measure == "time"
        self._args = [
            (name, arg, numeric)
            for (name, arg, _), numeric in zip(self.aggregates, self._numeric, strict=True)
        ]
        self._one_group = self.group[0] if len(self.group) == 1 else None

    @property
    def base(self) -> WindowStore:
        return self.stores[0]

    def take(self, event: dict[str, Any], t: float) -> list[Row] | None:
        """One event of the stream (already known to be of it); the rows it sends, None when late (dropped)."""
        if self.filter is not None and not self.filter(event):
            return []
        if self.window is None:
            return self._rows([(event, ())])
        one = self._one_group
        if one is not None:
            key = one(event, ())
            if key.__class__ is dict or key.__class__ is list:
                key = _hashable(key)
        else:
            key = self._key(event) if self.group else None
        values: list[Any] = [event if self.batch else 1] if self._own else []
        for name, arg, numeric in self._args:
            value = arg(event, ())
            if numeric and not (
                value.__class__ is int
                or value.__class__ is float
                and value - value == 0.0
                or is_number(value)
            ):
                raise QueryError(f"{name}(): {_show(value)} is not a number")
            values.append(value)
        if self._slide:  # one emission per store
            ems = [store.slide(key, t, value) for store, value in zip(self.stores, values, strict=True)]
            if ems[0] is None:
                return None
            aggs = [em[1] for em in ems[1:]] if self._own else [em[1] for em in ems]  # type: ignore[index]
            items = self.items
            row = {name: fn(event, aggs) for name, fn in items} if items is not None else dict(event)
            return [row] if self.having is None or self.having(row) else []
        outs = [store.add(key, t, value) for store, value in zip(self.stores, values, strict=True)]
        if outs[0] is None:
            return None
        return self._emitted(outs, event)

    def close_due(self, now: float) -> list[Row]:
        """Arrival time: the batches whose time is up."""
        return self._emitted([store.close_due(now) for store in self.stores], None)

    def _emitted(self, outs: list[list[Emission] | None], event: Any) -> list[Row]:
        pairs = []
        skip = 1 if self._own else 0
        for i, base in enumerate(outs[0] or ()):
            aggs = [out[i].value for out in outs[skip:]]  # type: ignore[index]
            pairs.append((base.value if self.batch else event, aggs))
        return self._rows(pairs)

    def _rows(self, pairs: list[tuple[Any, Sequence[Any]]]) -> list[Row]:
        rows = []
        for event, aggs in pairs:
            if self.items is None:
                row = dict(event) if isinstance(event, dict) else {"value": event}
            else:
                row = {name: fn(event, aggs) for name, fn in self.items}
            if self.having is None or self.having(row):
                rows.append(row)
        return rows

    def _key(self, event: Any) -> Any:
        group = self.group
        if not group:
            return None
        parts = [_hashable(fn(event, ())) for fn in group]
        return parts[0] if len(parts) == 1 else tuple(parts)


def _hashable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----- patterns -------------------------------------------------------------------------------------------------
class _StepScope(Scope):
    """A step's filter: bare names are its own event's attributes; `eN.x` an earlier step's event."""

    def __init__(self, own: str, earlier: list[str], later: list[str]) -> None:
        self.own, self.earlier, self.later = own, earlier, later

    def attribute(self, names: tuple[str, ...], pos: Pos) -> Fn:
        head, rest = names[0], names[1:]
        if head == self.own:
            return lambda ev, aggs: _lookup(ev[""], rest) if rest else ev[""]
        if head in self.earlier:
            return lambda ev, aggs: _lookup(ev[head], rest) if rest else ev[head]
        if head in self.later:
            raise pos.error(f"{head!r} is matched after this step: refer to earlier steps only")
        return lambda ev, aggs: _lookup(ev[""], names)


class _PatternSelect(Scope):
    def __init__(self, aliases: list[str]) -> None:
        self.aliases = aliases

    def attribute(self, names: tuple[str, ...], pos: Pos) -> Fn:
        head, rest = names[0], names[1:]
        if head not in self.aliases:
            raise pos.error(
                f"name the event of {'.'.join(names)!r}: {', '.join(a + '.' for a in self.aliases)}"
            )
        return lambda ev, aggs: _lookup(ev.get(head), rest) if rest else ev.get(head)

    def aggregate(self, name: str, args: tuple[Expr, ...], pos: Pos) -> Fn:
        raise pos.error(f"{name}() over a pattern: patterns select attributes of their events")


class PatternQuery:
    """`from [every] e1=S[...] -> e2=S[...] ... within t select ... insert into O`.

    Events are taken in time order. Each live partial match waits for its next step: the first later event of
    that step's stream that fulfils the step's condition (with the partial's earlier events bound) advances
    it; an event may advance several partials, and may also start one. A partial whose first event is more
    than `within` older than the current event is dropped. With `every`, each event fulfilling the first step
    starts a partial; without it, one only starts when none is live (so matches follow one another). Matches
    are sent in the order they complete, older partials first. At most `max_pending` partials are kept (the
    oldest dropped, counted)."""

    def __init__(self, query: Query, max_pending: int) -> None:
        source = query.source
        assert isinstance(source, Pattern)
        if query.group_by:
            raise query.group_by[0][2].error("group by over a pattern: select the attributes of its events")
        aliases = [s.alias for s in source.steps]
        self.streams = {s.stream for s in source.steps}
        self.steps = []
        for i, step in enumerate(source.steps):
            scope = _StepScope(step.alias, aliases[:i], aliases[i + 1 :])
            self.steps.append((step.alias, step.stream, condition(step.filter, scope)))
        self.every = source.every
        self.within = source.within.ms if source.within is not None else math.inf
        self.output = query.output
        select_scope = _PatternSelect(aliases)
        if query.select is None:
            self.items: list[tuple[str, Fn]] | None = None
            self.having = condition(query.having, Scope())
        else:
            names = _names(query.select)
            self.items = [
                (name, compile_expr(item.expr, select_scope))
                for name, item in zip(names, query.select, strict=True)
            ]
            self.having = _having(query, names)
        self.aliases = aliases
        self.max_pending = max_pending
        self.partials: list[tuple[float, dict[str, Any], int]] = []  # (first time, bound events, next step)
        self.dropped = 0
        self.matches = 0

    def take(self, stream: str, event: Any, t: float) -> list[Row]:
        within = self.within
        partials = [p for p in self.partials if t - p[0] <= within]
        rows: list[Row] = []
        kept = []
        for start, bound, at in partials:
            _, wanted, cond = self.steps[at]
            if wanted == stream and (cond is None or cond({**bound, "": event})):
                bound = {**bound, self.aliases[at]: event}
                if at + 1 == len(self.steps):
                    self.matches += 1
                    rows.extend(self._row(bound))
                    continue
                kept.append((start, bound, at + 1))
            else:
                kept.append((start, bound, at))
        _, first_stream, first = self.steps[0]
        if (self.every or not kept) and first_stream == stream and (first is None or first({"": event})):
            kept.append((t, {self.aliases[0]: event}, 1))
            if len(kept) > self.max_pending:
                del kept[0]
                self.dropped += 1
        self.partials = kept
        return rows

    def _row(self, bound: dict[str, Any]) -> list[Row]:
        row = dict(bound) if self.items is None else {name: fn(bound, ()) for name, fn in self.items}
        if self.having is None or self.having(row):
            return [row]
        return []


def plan(query: Query, *, arrival: bool, lateness: float, max_keys: int, max_events: int, max_pending: int):
    """The compiled query; QuerySyntaxError for what it cannot run, naming it and its position."""
    if isinstance(query.source, Pattern):
        if len(query.source.steps) < 2:
            raise QuerySyntaxError("a pattern needs two steps or more", 1, 1)
        return PatternQuery(query, max_pending)
    return WindowQuery(query, arrival, lateness, max_keys, max_events)
