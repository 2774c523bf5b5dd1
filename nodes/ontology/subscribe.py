"""ontology-subscribe: a message for each instance inserted, updated or deleted, whoever wrote it."""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic import Field

from sofiaflow.nodes.ontology.common import OntologyConfig, OntologyNode
from sofiaflow.runtime.api import ONTOLOGY_EVENTS, NodeError, filter_matches, new_message, parse_filter

EVENTS = ("insert", "update", "delete")


class OntologySubscribeConfig(OntologyConfig):
    query: Any = Field(
        "",
        title="Filter",
        description="Only changes whose instance matches this MongoDB-style filter; blank: all.",
        json_schema_extra={"x-widget": "code", "x-language": "json"},
    )
    events: str = Field(
        "insert,update,delete",
        title="Changes",
        json_schema_extra={
            "x-choices": [
                ["insert,update,delete", "inserts, updates and deletes"],
                ["insert", "inserts"],
                ["update", "updates"],
                ["delete", "deletes"],
                ["insert,update", "inserts and updates"],
            ]
        },
    )


class OntologySubscribeNode(OntologyNode[OntologySubscribeConfig]):
    type = "ontology-subscribe"
    label = "subscribe"
    inputs = 0
    is_source = True
    needs_store = False
    Config = OntologySubscribeConfig
    help = (
        'Sends `{topic: ontology, payload: document, event: "insert"|"update"|"delete"}` for each '
        "instance stored, changed or deleted (by flows, devices, gateways or the admin API), when it matches "
        "`query` (a MongoDB filter; "
        "empty: all). Updates send the new document, deletes the removed one."
    )

    def setup_node(self) -> None:
        query = self.config.query
        if isinstance(query, str):
            text = query.strip()
            try:
                query = json.loads(text) if text else {}
            except ValueError as exc:
                raise NodeError(f"query: not JSON: {exc}") from None
        if query is None:
            query = {}
        try:
            self.filter = parse_filter(query, "query")
        except Exception as exc:  # noqa: BLE001 - InvalidFilterError / UnsupportedFilterError
            raise NodeError(f"query: {exc}") from None
        wanted = [e.strip() for e in (self.config.events or "").split(",") if e.strip()] or list(EVENTS)
        bad = [e for e in wanted if e not in EVENTS]
        if bad:
            raise NodeError(f"events: {', '.join(bad)} not one of {', '.join(EVENTS)}")
        self.events = frozenset(wanted)
        self._unsubscribe = None

    async def start(self) -> None:
        # cluster=False: every worker runs this node; each change is sent by the one on the worker that made it
        self._unsubscribe = self.service(ONTOLOGY_EVENTS).subscribe(
            self.ontology, self._changed, cluster=False
        )

    async def close(self, removed: bool) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _changed(self, ontology: str, event: str, docs: list[dict[str, Any]]) -> None:
        if self._closed or event not in self.events:
            return
        for doc in docs:
            if filter_matches(doc, self.filter):
                self.send(new_message(payload=copy.deepcopy(doc), topic=ontology, event=event))
