"""ontology-delete: removes the instances matching a filter."""

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
from sofiaflow.runtime.api import ONTOLOGY_DATA, Msg, NodeError, RtdbError, parse_filter, props


class OntologyDeleteConfig(OntologyConfig):
    query: Any = Field(
        "",
        title="Filter",
        description='A MongoDB-style filter, e.g. {"assetId": "{{payload.id}}"}; {{...}} takes values from the message; msg.query overrides it.',
        json_schema_extra={"x-widget": "code", "x-language": "json"},
    )


class OntologyDeleteNode(OntologyNode[OntologyDeleteConfig]):
    type = "ontology-delete"
    needs_right = "INSERT"
    label = "delete"
    Config = OntologyDeleteConfig
    help = (
        "Deletes the instances of the chosen ontology matching `query` (MongoDB filter with `{{payload.x}}` "
        "parameters; `msg.query` overrides; `{}` deletes all, an empty query is refused). Sends on with the "
        "number deleted in `msg.payload`."
    )

    def setup_node(self) -> None:
        self._query = compile_json_field(
            self.config.query, "query", dict, check=lambda f: parse_filter(f, "query")
        )
        self.data = self.service(ONTOLOGY_DATA)

    async def on_input(self, msg: Msg) -> None:
        flt = msg_object(msg, "query")
        if flt is None:
            if self._query is None:
                raise NodeError("no filter: set `query` (use {} to delete every instance) or msg.query")
            flt = self._query(msg)
        try:
            count, notified = await asyncio.to_thread(self.data.delete, self.ontology, flt)
        except RtdbError as exc:
            raise store_error(self, "delete", exc) from None
        if count > notified and self.data.events.has_listeners(self.ontology):
            self.warn(f"{count} instances deleted; only {notified} notified to subscribers")
        props.set_path(msg, self.prop, count)
        self.send(msg)
