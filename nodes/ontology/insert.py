"""ontology-insert: stores one instance or a batch in the real-time DB, all or nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.api import Msg, NodeError
from runtime.ontologies import context_data
from runtime.rtdb import RtdbError

from .common import MISSING, OntologyConfig, OntologyNode, events_hub, store_error

MAX_ERRORS_SHOWN = 3


class OntologyInsertConfig(OntologyConfig):
    timezone: str = "UTC"


class OntologyInsertNode(OntologyNode):
    type = "ontology-insert"
    label = "insert"
    Config = OntologyInsertConfig
    help = ("Stores `msg.payload` (an object, or an array of objects for a batch) as instances of the chosen "
            "ontology, each with onesait's `contextData`. Everything is validated first: one invalid instance "
            "fails the message (to catch) and nothing is written. Sends on with `msg.payload` = the new id "
            "(an array of ids for an array) and `msg.inserted` = the stored documents.")

    def setup_node(self) -> None:
        try:
            context_data(timezone=self.config.timezone or "UTC")
        except ValueError as exc:
            raise NodeError(f"timezone: {exc}") from None
        self.timezone = self.config.timezone or "UTC"
        self.hub = events_hub(self)

    async def on_input(self, msg: Msg) -> None:
        value = self.get_prop(msg)
        if value is MISSING:
            raise NodeError(f"msg.{self.prop} has no value to insert")
        batch = isinstance(value, list)
        bodies = value if batch else [value]
        problems: list[str] = []
        for index, body in enumerate(bodies):
            where = f"item {index}" if batch else "instance"
            if not isinstance(body, dict):
                problems.append(f"{where}: must be an object, got {type(body).__name__}")
                continue
            for error in self.registry.validate(self.ontology, body):
                problems.append(f"{where} at {error['path'] or '/'}: {error['message']}")
        if problems:
            shown = "; ".join(problems[:MAX_ERRORS_SHOWN])
            more = f" (and {len(problems) - MAX_ERRORS_SHOWN} more)" if len(problems) > MAX_ERRORS_SHOWN else ""
            raise NodeError(f"ontology {self.ontology!r}: {len(problems)} validation error(s), nothing stored: "
                            f"{shown}{more}")
        context = context_data(user=_text(msg.get("user")), device=_text(msg.get("device")), source="flow",
                               timezone=self.timezone, now=None)
        docs = [{**body, "contextData": dict(context)} for body in bodies]
        if docs:
            try:
                ids = await asyncio.to_thread(self.store.insert, self.ontology, docs)
            except RtdbError as exc:
                raise store_error(self, "insert", exc) from None
        else:
            ids = []
        stored = [{"_id": _id, **{k: v for k, v in doc.items() if k != "_id"}} for _id, doc in zip(ids, docs,
                                                                                                   strict=True)]
        msg["payload"] = ids if batch else ids[0]
        msg["inserted"] = stored if batch else stored[0]
        self.hub.publish(self.ontology, "insert", stored)
        self.send(msg)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        for key in ("username", "name", "id"):
            if isinstance(value.get(key), str):
                return value[key]
        return None
    return str(value)
