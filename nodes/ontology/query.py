"""ontology-query: finds instances of an ontology with a MongoDB filter (mustache parameters allowed)."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from pydantic import Field

from sofiaflow.nodes.ontology.common import (
    OntologyConfig,
    OntologyNode,
    compile_json_field,
    msg_object,
    store_error,
)
from sofiaflow.runtime.api import Msg, NodeError, NRInt, RtdbError, parse_filter, props


class OntologyQueryConfig(OntologyConfig):
    query: Any = Field(
        "",
        title="Filter",
        description='A MongoDB-style filter, e.g. {"assetId": "{{payload.id}}"}; {{...}} takes values from the message; msg.query overrides it.',
        json_schema_extra={"x-widget": "code", "x-language": "json"},
    )
    sort: Any = Field(
        "",
        title="Sort",
        description='e.g. {"timestamp": -1} for the newest first; blank: none.',
        json_schema_extra={"x-widget": "code", "x-language": "json"},
    )
    projection: Any = Field(
        "",
        title="Fields returned",
        description='e.g. {"value": 1, "assetId": 1}; blank: whole instances.',
        json_schema_extra={"x-widget": "code", "x-language": "json"},
    )
    limit: NRInt = Field(None, title="Limit", description="At most this many instances; blank: no limit.")
    skip: NRInt = Field(None, title="Skip", description="Leave out this many first; blank: none.")


def _sort_spec(value: Any) -> list[tuple[str, int]] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list):
        return [tuple(item) if isinstance(item, list) else item for item in value]
    raise NodeError(f'sort must be an object ({{"field": -1}}) or an array of [field, 1|-1], got {value!r}')


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NodeError(f"{what} must be a whole number >= 0, got {value!r}")
    return value


QC = TypeVar("QC", bound=OntologyQueryConfig)


class OntologyQueryNode(OntologyNode[QC]):
    """ontology-query, and the base of history-query (generic over the config, which extends the query's)."""

    type = "ontology-query"
    label = "query"
    Config = OntologyQueryConfig
    help = (
        "Finds instances of the chosen ontology: `query` is a MongoDB filter (JSON; `{{payload.x}}` "
        "parameters), or `msg.query` overrides it; `sort`, `projection`, `limit`, `skip` from the config or "
        "`msg`. Sends the documents as an array in `msg.payload` (or the configured property)."
    )

    def setup_node(self) -> None:
        cfg = self.config
        self._query = compile_json_field(cfg.query, "query", dict, check=lambda f: parse_filter(f, "query"))
        self._sort = compile_json_field(cfg.sort, "sort", (dict, list))
        self._projection = compile_json_field(cfg.projection, "projection", dict)
        for what in ("limit", "skip"):
            value = getattr(cfg, what)
            if value is not None and value < 0:
                raise NodeError(f"{what}: must be >= 0, got {value}")
        self._limit = cfg.limit or 0
        self._skip = cfg.skip or 0

    async def on_input(self, msg: Msg) -> None:
        flt = msg_object(msg, "query")
        if flt is None:
            flt = self._query(msg) if self._query else {}
        sort = msg.get("sort")
        if sort is None and self._sort is not None:
            sort = self._sort(msg)
        projection = msg_object(msg, "projection")
        if projection is None and self._projection is not None:
            projection = self._projection(msg)
        limit = _count(msg["limit"], "msg.limit") if msg.get("limit") is not None else self._limit
        skip = _count(msg["skip"], "msg.skip") if msg.get("skip") is not None else self._skip
        try:
            docs = await asyncio.to_thread(self.find, flt, projection, _sort_spec(sort), skip, limit)
        except RtdbError as exc:
            raise store_error(self, "query", exc) from None
        props.set_path(msg, self.prop, docs)
        self.send(msg)

    def find(
        self, flt: dict, projection: dict | None, sort: list | None, skip: int, limit: int
    ) -> list[dict]:
        """The documents asked for (runs in a worker thread)."""
        return self.store.find(self.ontology, flt, projection, sort, skip, limit)
