"""history-query: finds historical instances of an ontology (the Parquet history), optionally with the
real-time ones too, with the same filter language as `ontology-query`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from sofiaflow.nodes.ontology.query import OntologyQueryConfig, OntologyQueryNode
from sofiaflow.runtime.api import HISTORY, NodeError, select_history


class HistoryQueryConfig(OntologyQueryConfig):
    scope: Literal["history", "all"] = Field(
        "history",
        description="history: the historical store only; all: history and the real-time DB together",
    )


class HistoryQueryNode(OntologyQueryNode[HistoryQueryConfig]):
    type = "history-query"
    label = "history"
    Config = HistoryQueryConfig
    help = (
        "Finds instances of the chosen ontology that have left the real-time DB for the history (Parquet "
        "files by day), or with `scope` all, in both. `query` is a MongoDB filter (`{{payload.x}}` "
        "parameters; `msg.query` overrides), with `sort`, `projection`, `limit`, `skip` as in ontology-query. "
        "Filters on `contextData.timestampMillis` read only the days they allow."
    )

    def setup_node(self) -> None:
        super().setup_node()
        try:
            self.history = self.service(HISTORY).store
        except NodeError as exc:
            raise NodeError(f"ontology {self.ontology!r}: {exc} (the historical store)") from None

    def find(
        self, flt: dict, projection: dict | None, sort: list | None, skip: int, limit: int
    ) -> list[dict]:
        if self.config.scope == "history":
            return self.history.find(self.ontology, flt, projection, sort, skip, limit)
        # both stores: an instance caught between a move's write and delete is taken once, the real-time copy
        realtime = self.store.find(self.ontology, flt)
        ids = {doc["_id"] for doc in realtime}
        merged: list[dict[str, Any]] = realtime + [
            doc for doc in self.history.documents(self.ontology, flt) if doc["_id"] not in ids
        ]
        return select_history(merged, flt, projection, sort, skip, limit)
