"""ontology-update: applies $set/$unset/$inc to the instances matching a filter."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.api import Msg, NodeError, NRBool, props
from runtime.rtdb import RtdbError, parse_filter

from .common import OntologyConfig, OntologyNode, compile_json_field, events_hub, msg_object, store_error

NOTIFY_LIMIT = 1000
"""At most this many updated documents are re-read to notify ontology-subscribe nodes."""


def _check_update(update: dict[str, Any]) -> None:
    from runtime.rtdb.base import check_update

    check_update(update)


class OntologyUpdateConfig(OntologyConfig):
    query: Any = ""
    update: Any = ""
    multi: NRBool = True


class OntologyUpdateNode(OntologyNode):
    type = "ontology-update"
    label = "update"
    Config = OntologyUpdateConfig
    help = ("Updates the instances of the chosen ontology matching `query` (MongoDB filter; `msg.query` "
            "overrides) with `update` ({\"$set\": ..., \"$unset\": ..., \"$inc\": ...}; `msg.update` overrides); "
            "both accept `{{payload.x}}` parameters. `multi` off: only the first match. Sends on with the number "
            "of matched instances in `msg.payload`.")

    def setup_node(self) -> None:
        cfg = self.config
        self._query = compile_json_field(cfg.query, "query", dict, check=lambda f: parse_filter(f, "query"))
        self._update = compile_json_field(cfg.update, "update", dict, check=_check_update)
        self.hub = events_hub(self)

    async def on_input(self, msg: Msg) -> None:
        flt = msg_object(msg, "query")
        if flt is None:
            if self._query is None:
                raise NodeError("no filter: set `query` (use {} to update every instance) or msg.query")
            flt = self._query(msg)
        update = msg_object(msg, "update")
        if update is None:
            if self._update is None:
                raise NodeError("no update: set `update` ({\"$set\": {...}}) or msg.update")
            update = self._update(msg)
        multi = self.config.multi
        notify = self.hub.has_listeners(self.ontology)
        try:
            if notify:
                count, docs = await asyncio.to_thread(self._update_notified, flt, update, multi)
            else:
                count, docs = await asyncio.to_thread(self.store.update, self.ontology, flt, update, multi), []
        except RtdbError as exc:
            raise store_error(self, "update", exc) from None
        if notify and count > len(docs):
            self.warn(f"{count} instances updated; only {len(docs)} notified to subscribers")
        props.set_path(msg, self.prop, count)
        self.hub.publish(self.ontology, "update", docs)
        self.send(msg)

    def _update_notified(self, flt: dict, update: dict, multi: bool) -> tuple[int, list[dict]]:
        """Update, then re-read (up to NOTIFY_LIMIT of) the updated documents by id for the subscribers."""
        store, name = self.store, self.ontology
        found = store.find(name, flt, {"_id": 1}, None, 0, NOTIFY_LIMIT if multi else 1)
        ids = [d["_id"] for d in found]
        if not multi:
            if not ids:
                return 0, []
            flt = {"_id": ids[0]}
        count = store.update(name, flt, update, multi)
        docs = store.find(name, {"_id": {"$in": ids}}) if ids else []
        return count, docs
