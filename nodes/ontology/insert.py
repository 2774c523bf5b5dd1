"""ontology-insert: stores one instance or a batch in the real-time DB, all or nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from sofiaflow.nodes.ontology.common import MISSING, OntologyConfig, OntologyNode, store_error
from sofiaflow.runtime.api import (
    AUDIT,
    DEVICES,
    ONTOLOGY_DATA,
    WRITE_SOURCES,
    InstanceValidationError,
    Msg,
    NodeError,
    RtdbError,
    Writer,
    context_data,
    right_covers,
)


class OntologyInsertConfig(OntologyConfig):
    timezone: str = Field(
        "UTC", title="Time zone", description="For dates without one, e.g. UTC or Europe/Madrid."
    )


class OntologyInsertNode(OntologyNode[OntologyInsertConfig]):
    type = "ontology-insert"
    needs_right = "INSERT"
    label = "insert"
    Config = OntologyInsertConfig
    help = (
        "Stores `msg.payload` (an object, or an array of objects for a batch) as instances of the chosen "
        "ontology, each with onesait's `contextData`. Everything is validated first: one invalid instance "
        "fails the message (to catch) and nothing is written; so does a message from a registered device "
        "(`msg.device`) without the INSERT right. Sends on with `msg.payload` = the new id "
        "(an array of ids for an array) and `msg.inserted` = the stored documents."
    )

    def setup_node(self) -> None:
        try:
            context_data(timezone=self.config.timezone or "UTC")
        except ValueError as exc:
            raise NodeError(f"timezone: {exc}") from None
        self.timezone = self.config.timezone or "UTC"
        self.data = self.service(ONTOLOGY_DATA)
        self.devices = self.optional_service(DEVICES)

    def _check_device(self, name: str) -> None:
        """A registered device (`msg.device`, set by `mqtt in` on the embedded broker) needs INSERT on the
        ontology; a refusal fails the message (to catch) and is audited. Other names are plain labels."""
        try:
            device = self.devices.get(name)
        except LookupError:
            return
        if right_covers(str(device.ontologies.get(self.ontology, "")).upper(), "INSERT"):
            return
        message = f"device {name!r} has no INSERT right on ontology {self.ontology!r}; nothing stored"
        audit = self.optional_service(AUDIT)
        if audit is not None:
            audit.record(f"device:{name}", "mqtt.insert", self.ontology, "denied", {"message": message})
        raise NodeError(message)

    async def on_input(self, msg: Msg) -> None:
        value = self.get_prop(msg)
        if value is MISSING:
            raise NodeError(f"msg.{self.prop} has no value to insert")
        batch = isinstance(value, list)
        bodies = value if batch else [value]
        device = _text(msg.get("device"))
        writer = Writer(
            user=_text(msg.get("user")), device=device, source=_source(msg), timezone=self.timezone
        )
        try:
            self.data.check(self.ontology, bodies, batch)
            if device is not None and self.devices is not None:
                await asyncio.to_thread(self._check_device, device)
            stored = (
                await asyncio.to_thread(self.data.insert, self.ontology, bodies, writer, batch)
                if bodies
                else []
            )
        except InstanceValidationError as exc:
            raise NodeError(str(exc)) from None
        except RtdbError as exc:
            raise store_error(self, "insert", exc) from None
        ids = [doc["_id"] for doc in stored]
        msg["payload"] = ids if batch else ids[0]
        msg["inserted"] = stored if batch else stored[0]
        self.send(msg)


def _source(msg: Msg) -> str:
    """The transport the message came in by: `msg.source` when a gateway set it; else "http" for a message
    from `http in` (it carries `req`), "mqtt" for one from `mqtt in` (it carries `qos` and `retain`)."""
    value = msg.get("source")
    if value in WRITE_SOURCES:
        return value
    if "req" in msg:
        return "http"
    if "qos" in msg and "retain" in msg:
        return "mqtt"
    return "flow"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        for key in ("username", "name", "id"):
            if isinstance(value.get(key), str):
                return value[key]
        return None
    return str(value)
