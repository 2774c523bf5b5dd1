"""NATIVE and SQL queries of one ontology, run through `OntologyData` (blocking: call from a thread)."""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.data.rtdb.native_query import NativeQuery, NativeQueryError, parse_native
from sofiaflow.runtime.onesait.ssap import PROCESSOR, SsapError

MAX_RESULTS = 10_000
"""Instances a query without LIMIT returns at most (onesait also caps query results)."""


def output_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored instance as onesait shows it: `_id` as `{"$oid": id}`."""
    if "_id" not in doc:
        return doc
    return {"_id": {"$oid": doc["_id"]}, **{k: v for k, v in doc.items() if k != "_id"}}


def _same_collection(ontology: str, named: str, kind: str) -> None:
    if named != ontology:
        raise SsapError(
            PROCESSOR, f"the {kind} query reads {named!r} but the request is for ontology {ontology!r}"
        )


def parse_native_for(ontology: str, text: Any) -> NativeQuery:
    try:
        query = parse_native(text)
    except NativeQueryError as exc:
        raise SsapError(PROCESSOR, f"NATIVE query not supported: {exc}") from None
    _same_collection(ontology, query.collection, "NATIVE")
    return query


def run_query(data: Any, ontology: str, text: Any, query_type: Any = "NATIVE") -> Any:
    """Answer a QUERY: a list of instances or rows (a NATIVE count: `[{"count": n}]`)."""
    kind = str(query_type or "NATIVE").upper()
    if kind == "NATIVE":
        return _native(data, ontology, parse_native_for(ontology, text))
    if kind == "SQL":
        return _sql(data, ontology, text)
    raise SsapError(PROCESSOR, f"queryType {query_type!r} is not supported (use NATIVE or SQL)")


def _native(data: Any, ontology: str, query: NativeQuery) -> Any:
    if query.operation == "count":
        return [{"count": data.count(ontology, query.filter)}]
    if query.operation != "find":
        raise SsapError(PROCESSOR, f"a QUERY cannot {query.operation}: send an UPDATE or DELETE instead")
    docs = data.find(
        ontology, query.filter, query.projection, query.sort, query.skip, query.limit or MAX_RESULTS
    )
    return [output_doc(d) for d in docs]


def _sql(data: Any, ontology: str, text: Any) -> Any:
    # loaded on the first SQL query: sqlglot weighs about 9 MB
    from sofiaflow.runtime.data.rtdb.sql_query import (
        MAX_AGGREGATE_DOCS,
        SqlQueryError,
        aggregate_rows,
        parse_sql,
        project_rows,
    )

    try:
        query = parse_sql(text)
    except SqlQueryError as exc:
        raise SsapError(PROCESSOR, f"SQL query not supported: {exc}") from None
    _same_collection(ontology, query.collection, "SQL")
    if query.aggregated:
        if not query.group_by and all(c.function == "count" and c.path is None for c in query.columns):
            total = data.count(ontology, query.filter)
            rows = [{c.name: total for c in query.columns}][query.skip :]
            return rows[: query.limit] if query.limit else rows
        paths = {c.path for c in query.columns if c.path} | set(query.group_by)
        projection = {p: 1 for p in _disjoint(paths)} or {"_id": 1}
        docs = data.find(ontology, query.filter, projection, None, 0, MAX_AGGREGATE_DOCS + 1)
        if len(docs) > MAX_AGGREGATE_DOCS:
            raise SsapError(
                PROCESSOR,
                f"SQL aggregates run over at most {MAX_AGGREGATE_DOCS} instances; narrow the WHERE clause",
            )
        return aggregate_rows(query, docs)
    limit = query.limit or MAX_RESULTS
    if query.columns:
        projection = {p: 1 for p in _disjoint({c.path for c in query.columns})}
        return project_rows(
            query, data.find(ontology, query.filter, projection, query.sort, query.skip, limit)
        )
    return [output_doc(d) for d in data.find(ontology, query.filter, None, query.sort, query.skip, limit)]


def _disjoint(paths: set[str]) -> list[str]:
    """Paths without those inside another (a projection may not name both `a` and `a.b`)."""
    out = []
    for path in sorted(paths, key=len):
        if not any(path == p or path.startswith(p + ".") for p in out):
            out.append(path)
    return out
