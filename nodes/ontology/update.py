"""ontology-update: applies $set/$unset/$inc to the instances matching a filter."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from sofiaflow.nodes.ontology.common import (
    OntologyConfig,
    OntologyNode,
    compile_json_field,
    msg_object,
    store_error,
)
from sofiaflow.runtime.api import (
    ONTOLOGY_DATA,
    Msg,
    NodeError,
    NRBool,
    RtdbError,
    check_update,
    parse_filter,
    props,
)


class OntologyUpdateConfig(OntologyConfig):
    query: Any = Field(
        "",
        title="Filter",
        description='A MongoDB-style filter, e.g. {"assetId": "{{payload.id}}"}; {{...}} takes values from the message; msg.query overrides it.',
        json_schema_extra={"x-widget": "code", "x-language": "json"},
    )
    update: Any = Field(
        "",
        title="Update",
        description='What to change, e.g. {"$set": {"status": "{{payload.status}}"}}; blank: msg.payload.',
        json_schema_extra={"x-widget": "code", "x-language": "json"},
    )
    multi: NRBool = Field(
        True, title="Update every match", description="Unchecked: only the first instance found."
    )


class OntologyUpdateNode(OntologyNode[OntologyUpdateConfig]):
    type = "ontology-update"
    needs_right = "INSERT"
    label = "update"
    Config = OntologyUpdateConfig
    help = (
        "Updates the instances of the chosen ontology matching `query` (MongoDB filter; `msg.query` "
        'overrides) with `update` ({"$set": ..., "$unset": ..., "$inc": ...}; `msg.update` overrides); '
        "both accept `{{payload.x}}` parameters. `multi` off: only the first match. Sends on with the number "
        "of matched instances in `msg.payload`."
    )

    def setup_node(self) -> None:
        cfg = self.config
        self._query = compile_json_field(cfg.query, "query", dict, check=lambda f: parse_filter(f, "query"))
        self._update = compile_json_field(cfg.update, "update", dict, check=check_update)
        self.data = self.service(ONTOLOGY_DATA)

    async def on_input(self, msg: Msg) -> None:
        flt = msg_object(msg, "query")
        if flt is None:
            if self._query is None:
                raise NodeError("no filter: set `query` (use {} to update every instance) or msg.query")
            flt = self._query(msg)
        update = msg_object(msg, "update")
        if update is None:
            if self._update is None:
                raise NodeError('no update: set `update` ({"$set": {...}}) or msg.update')
            update = self._update(msg)
        try:
            count, notified = await asyncio.to_thread(
                self.data.update, self.ontology, flt, update, self.config.multi
            )
        except RtdbError as exc:
            raise store_error(self, "update", exc) from None
        if count > notified and self.data.events.has_listeners(self.ontology):
            self.warn(f"{count} instances updated; only {notified} notified to subscribers")
        props.set_path(msg, self.prop, count)
        self.send(msg)
