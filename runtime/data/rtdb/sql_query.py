"""onesait SQL queries translated to the real-time DB's filter language with sqlglot.

    select * from BasicSensor where BasicSensor.measure > 20 order by contextData.timestampMillis desc limit 10 offset 0
    select c.BasicSensor.assetId, c.BasicSensor.measure as m from BasicSensor as c where c.BasicSensor.assetId in ('a', 'b')
    select count(*) from BasicSensor where contextData.device = 'dev-1'
    select BasicSensor.assetId, avg(BasicSensor.measure) as mean from BasicSensor group by BasicSensor.assetId

Field paths are dotted as stored (through the root property or `contextData`); a leading table alias is
dropped. WHERE: = != <> < <= > >=, AND, OR, NOT, IN, NOT IN, BETWEEN, LIKE (% and _); literals are numbers,
strings, TRUE/FALSE. Selected columns come back as flat rows keyed by alias or the path's last component.
Aggregates (COUNT, SUM, AVG, MIN, MAX, optionally GROUP BY columns) run in Python over the matching
instances, at most `MAX_AGGREGATE_DOCS` of them. `offset N limit M` (the order onesait's Python client
appends) is accepted. What cannot be translated raises `SqlQueryError` naming the unsupported part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from sofiaflow.runtime.errors import ValidationError

MAX_LENGTH = 100_000
MAX_AGGREGATE_DOCS = 100_000
AGGREGATES = {exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max"}
_OFFSET_LIMIT = re.compile(r"\s+offset\s+(\d+)\s+limit\s+(\d+)\s*;?\s*$", re.IGNORECASE)
_COMPARE = {exp.EQ: "$eq", exp.NEQ: "$ne", exp.GT: "$gt", exp.GTE: "$gte", exp.LT: "$lt", exp.LTE: "$lte"}
_FLIP = {"$gt": "$lt", "$gte": "$lte", "$lt": "$gt", "$lte": "$gte", "$eq": "$eq", "$ne": "$ne"}


class SqlQueryError(ValidationError):
    """The SQL cannot be served; the message names the unsupported or malformed part."""


@dataclass
class Column:
    name: str
    path: str | None  # None: count(*)
    function: str | None = None  # count sum avg min max, or None for a plain column


@dataclass
class SqlQuery:
    """A translated SELECT. `columns` empty means `select *`."""

    collection: str
    filter: dict[str, Any] = field(default_factory=dict)
    columns: list[Column] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)
    sort: list[tuple[str, int]] = field(default_factory=list)
    skip: int = 0
    limit: int = 0

    @property
    def aggregated(self) -> bool:
        return bool(self.group_by) or any(c.function for c in self.columns)


def _sql(node: exp.Expression) -> str:
    try:
        return node.sql()
    except Exception:  # noqa: BLE001 - only used in messages
        return type(node).__name__


class _Translator:
    def __init__(self, table: str, alias: str | None) -> None:
        self.table, self.alias = table, alias

    def path(self, node: exp.Expression) -> str:
        parts: list[str] = []
        while isinstance(node, exp.Dot):
            parts.insert(0, node.expression.name)
            node = node.this
        if not isinstance(node, exp.Column):
            raise SqlQueryError(f"{_sql(node)!r} is not a field path")
        parts = [p.name for p in node.parts] + parts
        if self.alias and len(parts) > 1 and parts[0] == self.alias:
            parts = parts[1:]
        return ".".join(parts)

    def literal(self, node: exp.Expression) -> Any:
        if isinstance(node, exp.Paren):
            return self.literal(node.this)
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
            return -self.literal(node.this)
        if isinstance(node, exp.Boolean):
            return node.this
        if isinstance(node, exp.Literal):
            if node.is_string:
                return node.this
            text = node.this
            return int(text) if re.fullmatch(r"\d+", text) else float(text)
        if isinstance(node, exp.Null):
            raise SqlQueryError("comparisons with NULL are not supported")
        raise SqlQueryError(f"{_sql(node)!r} is not a literal value (number, string, TRUE or FALSE)")

    def condition(self, node: exp.Expression) -> dict[str, Any]:
        if isinstance(node, exp.Paren):
            return self.condition(node.this)
        if isinstance(node, exp.And):
            return {"$and": [self.condition(node.this), self.condition(node.expression)]}
        if isinstance(node, exp.Or):
            return {"$or": [self.condition(node.this), self.condition(node.expression)]}
        if isinstance(node, exp.Not):
            inner = node.this.this if isinstance(node.this, exp.Paren) else node.this
            if isinstance(inner, exp.In):
                return {self.path(inner.this): {"$nin": self.values(inner)}}
            return {"$nor": [self.condition(node.this)]}
        for kind, op in _COMPARE.items():
            if isinstance(node, kind):
                left, right = node.this, node.expression
                if not isinstance(left, (exp.Column, exp.Dot)):
                    left, right, op = right, left, _FLIP[op]
                return {self.path(left): {op: self.literal(right)}}
        if isinstance(node, exp.In):
            return {self.path(node.this): {"$in": self.values(node)}}
        if isinstance(node, exp.Between):
            return {
                self.path(node.this): {
                    "$gte": self.literal(node.args["low"]),
                    "$lte": self.literal(node.args["high"]),
                }
            }
        if isinstance(node, exp.Like):
            pattern = self.literal(node.expression)
            if not isinstance(pattern, str):
                raise SqlQueryError(f"LIKE needs a string pattern, got {pattern!r}")
            return {self.path(node.this): {"$regex": like_to_regex(pattern)}}
        if isinstance(node, exp.Is):
            raise SqlQueryError(f"{_sql(node)!r}: IS NULL / IS NOT NULL are not supported")
        raise SqlQueryError(f"the condition {_sql(node)!r} is not supported")

    def values(self, node: exp.In) -> list[Any]:
        if node.args.get("query") is not None:
            raise SqlQueryError("IN (SELECT ...) subqueries are not supported")
        return [self.literal(v) for v in node.expressions]

    def column(self, node: exp.Expression) -> Column:
        name = node.alias if isinstance(node, exp.Alias) else None
        inner = node.this if isinstance(node, exp.Alias) else node
        for kind, function in AGGREGATES.items():
            if isinstance(inner, kind):
                arg = inner.this
                if isinstance(arg, exp.Distinct):
                    raise SqlQueryError(f"{_sql(inner)!r}: DISTINCT inside aggregates is not supported")
                path = None if isinstance(arg, exp.Star) else self.path(arg)
                if path is None and function != "count":
                    raise SqlQueryError(f"{function}(*) is not supported; name a field")
                return Column(name or _sql(inner).lower(), path, function)
        if isinstance(inner, (exp.Column, exp.Dot)):
            path = self.path(inner)
            return Column(name or path.rsplit(".", 1)[-1], path)
        raise SqlQueryError(
            f"the selected expression {_sql(inner)!r} is not supported "
            "(select *, field paths or count/sum/avg/min/max)"
        )


def like_to_regex(pattern: str) -> str:
    """SQL LIKE (% any run, _ one character) as an anchored regular expression."""
    out = ["^"]
    for ch in pattern:
        out.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    out.append("$")
    return "".join(out)


def _number(node: exp.Expression | None, what: str) -> int:
    value = node.expression if node is not None else None
    if value is None:
        return 0
    if not isinstance(value, exp.Literal) or value.is_string or not re.fullmatch(r"\d+", value.this):
        raise SqlQueryError(f"{what} must be a non-negative integer, got {_sql(value)!r}")
    return int(value.this)


def parse_sql(text: str) -> SqlQuery:
    """Translate one SELECT; SqlQueryError names the unsupported part."""
    if not isinstance(text, str) or not text.strip():
        raise SqlQueryError("the SQL query is empty")
    if len(text) > MAX_LENGTH:
        raise SqlQueryError(f"the SQL query is longer than {MAX_LENGTH} characters")
    text = _OFFSET_LIMIT.sub(lambda m: f" limit {m.group(2)} offset {m.group(1)}", text.strip())
    try:
        statements = [s for s in sqlglot.parse(text) if s is not None]
    except SqlglotError as exc:
        raise SqlQueryError(f"SQL syntax error: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise SqlQueryError(f"expected one SQL statement, got {len(statements)}")
    tree = statements[0]
    if not isinstance(tree, exp.Select):
        raise SqlQueryError(
            f"only SELECT is supported as SQL, got {tree.key.upper()} (use a NATIVE query "
            "to update or delete)"
        )
    for part in ("joins", "having", "distinct", "with", "windows", "qualify"):
        if tree.args.get(part):
            raise SqlQueryError(f"{part.upper()} is not supported in SQL queries")
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None or not isinstance(source.this, exp.Table):
        raise SqlQueryError("the query needs FROM <ontology>")
    table = source.this
    query = SqlQuery(table.name)
    tr = _Translator(table.name, table.alias or None)
    where = tree.args.get("where")
    if where is not None:
        query.filter = tr.condition(where.this)
    if not (len(tree.expressions) == 1 and isinstance(tree.expressions[0], exp.Star)):
        query.columns = [tr.column(e) for e in tree.expressions]
    group = tree.args.get("group")
    if group is not None:
        query.group_by = [tr.path(e) for e in group.expressions]
    if query.aggregated:
        for col in query.columns:
            if col.function is None and col.path not in query.group_by:
                raise SqlQueryError(f"{col.path!r} is selected but neither grouped nor aggregated")
    if query.aggregated and not query.columns:
        raise SqlQueryError("select * cannot be used with GROUP BY")
    order = tree.args.get("order")
    if order is not None:
        names = {c.name: c for c in query.columns}
        for item in order.expressions:
            node = item.this
            if query.aggregated:
                key = (
                    node.name
                    if isinstance(node, exp.Column) and node.name in names and not node.table
                    else tr.column(node).name
                )
                if key not in names:
                    raise SqlQueryError(
                        f"ORDER BY {_sql(node)!r} must name a selected column of the aggregate"
                    )
            else:
                key = tr.path(node)
            query.sort.append((key, -1 if item.args.get("desc") else 1))
    query.limit = _number(tree.args.get("limit"), "LIMIT")
    query.skip = _number(tree.args.get("offset"), "OFFSET")
    return query


# ----- in-Python parts: projection to flat rows, aggregation --------------------------------------------------


def get_path(doc: Any, path: str) -> Any:
    """The value at a dotted path (None when missing; arrays on the way are not traversed)."""
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def project_rows(query: SqlQuery, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Plain selected columns as flat rows."""
    return [{c.name: get_path(d, c.path) for c in query.columns} for d in docs]


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _comparable(values: list[Any]) -> list[Any]:
    nums = [v for v in values if _numeric(v)]
    return nums if nums else [v for v in values if isinstance(v, str)]


def _aggregate(column: Column, docs: list[dict[str, Any]]) -> Any:
    if column.path is None:
        return len(docs)
    values = [get_path(d, column.path) for d in docs]
    if column.function == "count":
        return sum(v is not None for v in values)
    if column.function in ("sum", "avg"):
        nums = [v for v in values if _numeric(v)]
        if column.function == "sum":
            return sum(nums)
        return sum(nums) / len(nums) if nums else None
    candidates = _comparable(values)
    if not candidates:
        return None
    return min(candidates) if column.function == "min" else max(candidates)


def _sort_value(value: Any) -> tuple:
    if value is None:
        return (0, 0)
    if _numeric(value):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, str(value))


def aggregate_rows(query: SqlQuery, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COUNT/SUM/AVG/MIN/MAX per group (one group without GROUP BY), sorted, skipped and limited."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    if query.group_by:
        for doc in docs:
            key = tuple(repr(get_path(doc, p)) for p in query.group_by)
            groups.setdefault(key, []).append(doc)
    else:
        groups[()] = docs
    rows = []
    for members in groups.values():
        rows.append(
            {
                c.name: (_aggregate(c, members) if c.function else get_path(members[0], c.path))
                for c in query.columns
            }
        )
    for name, direction in reversed(query.sort):
        rows.sort(key=lambda r, n=name: _sort_value(r.get(n)), reverse=direction < 0)
    rows = rows[query.skip :]
    return rows[: query.limit] if query.limit else rows
