"""ontology-delete: removes the instances matching a filter."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.api import Msg, NodeError, props
from runtime.rtdb import RtdbError, parse_filter

from .common import OntologyConfig, OntologyNode, compile_json_field, events_hub, msg_object, store_error

NOTIFY_LIMIT = 1000
"""At most this many deleted documents are read beforehand to notify ontology-subscribe nodes."""


class OntologyDeleteConfig(OntologyConfig):
    query: Any = ""


class OntologyDeleteNode(OntologyNode):
    type = "ontology-delete"
    label = "delete"
    Config = OntologyDeleteConfig
    help = ("Deletes the instances of the chosen ontology matching `query` (MongoDB filter with `{{payload.x}}` "
            "parameters; `msg.query` overrides; `{}` deletes all, an empty query is refused). Sends on with the "
            "number deleted in `msg.payload`.")

    def setup_node(self) -> None:
        self._query = compile_json_field(self.config.query, "query", dict,
                                         check=lambda f: parse_filter(f, "query"))
        self.hub = events_hub(self)

    async def on_input(self, msg: Msg) -> None:
        flt = msg_object(msg, "query")
        if flt is None:
            if self._query is None:
                raise NodeError("no filter: set `query` (use {} to delete every instance) or msg.query")
            flt = self._query(msg)
        try:
            if self.hub.has_listeners(self.ontology):
                count, docs = await asyncio.to_thread(self._delete_notified, flt)
            else:
                count, docs = await asyncio.to_thread(self.store.delete, self.ontology, flt), []
        except RtdbError as exc:
            raise store_error(self, "delete", exc) from None
        if count > len(docs) and self.hub.has_listeners(self.ontology):
            self.warn(f"{count} instances deleted; only {len(docs)} notified to subscribers")
        props.set_path(msg, self.prop, count)
        self.hub.publish(self.ontology, "delete", docs)
        self.send(msg)

    def _delete_notified(self, flt: dict) -> tuple[int, list[dict]]:
        """Read (up to NOTIFY_LIMIT of) the documents, delete them, and the rest of the matches."""
        store, name = self.store, self.ontology
        docs = store.find(name, flt, None, None, 0, NOTIFY_LIMIT)
        if len(docs) < NOTIFY_LIMIT:
            count = store.delete(name, {"_id": {"$in": [d["_id"] for d in docs]}}) if docs else 0
            return count, docs
        return store.delete(name, flt), docs
