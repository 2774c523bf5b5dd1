"""ontology-insert: stores one instance or a batch in the real-time DB, all or nothing."""

from __future__ import annotations

import asyncio
import functools
import json
import math
from typing import Any

from pydantic import Field

from sofiaflow.nodes.ontology.common import MISSING, OntologyConfig, OntologyNode, store_error
from sofiaflow.runtime.api import (
    AUDIT,
    DEVICES,
    ONTOLOGY_DATA,
    WRITE_SOURCES,
    Getter,
    InstanceValidationError,
    Msg,
    NodeError,
    RtdbError,
    Writer,
    context_data,
    right_covers,
    typed_getter,
)

KEY_TYPES = ("stream", "msg", "jsonata", "off")


class OntologyInsertConfig(OntologyConfig):
    timezone: str = Field(
        "UTC", title="Time zone", description="For dates without one, e.g. UTC or Europe/Madrid."
    )
    idempotencyKey: str = Field(
        "",
        title="Idempotency key",
        description=(
            "An insert whose key is already stored (by a flow of the same owner) stores nothing and answers "
            "with the stored instance (msg.duplicate = true). stream: msg._streamId, when the message has one (set by partition); "
            'msg. or J: a key of your own, e.g. msg.payload.seq or payload.device & "/" & payload.seq; off: none.'
        ),
        json_schema_extra={
            "x-widget": "typed",
            "x-type-key": "idempotencyKeyType",
            "x-types": list(KEY_TYPES),
        },
    )
    idempotencyKeyType: str = "stream"


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
        "(an array of ids for an array) and `msg.inserted` = the stored documents.\n\n"
        "**Idempotency key**: an instance is stored at most once per key, whichever worker inserts it and "
        "however often a message is redelivered (the database's unique index decides). An insert whose key is "
        "already stored stores nothing, is no error, and sends on the stored instance's id and document with "
        "`msg.duplicate` = true (false for a new one; an array of flags for an array). The key is kept beside "
        "the instance: queries do not show it and the ontology's schema does not see it. Keys are per owner: "
        "those of a developer's flow are that developer's alone, so another developer inserting into the same "
        "ontology with the same key stores their own instance and never gets this one (administrators' and "
        "ownerless flows share the platform's keys). "
        "*stream* (the default): `msg._streamId`, which `partition` sets and keeps on redelivery; a message "
        "without one is stored without a key. The parts of a `split` message extend it with their positions "
        "(`~<index>`, nested splits each), so every part is its own instance; a function that sends several "
        "messages for one entry keeps the entry's id on each: give those a key of their own. *msg.* / *J:*: a key of "
        "your own, e.g. `msg.payload.seq` or "
        '`payload.device & "/" & payload.seq` (MQTT redelivery after a crash makes new messages, so the '
        "key must come from the data); a message without a value for it fails (to catch) and stores nothing. "
        "A string or number; for an array, an array with a key per item, or one key that each item extends "
        "with `#<index>`. *off*: no key. Deleting an instance frees its key."
    )

    def setup_node(self) -> None:
        try:
            context_data(timezone=self.config.timezone or "UTC")
        except ValueError as exc:
            raise NodeError(f"timezone: {exc}") from None
        self.timezone = self.config.timezone or "UTC"
        self.data = self.service(ONTOLOGY_DATA)
        self.devices = self.optional_service(DEVICES)
        self.key_type = self.config.idempotencyKeyType or "stream"
        if self.key_type not in KEY_TYPES:
            raise NodeError(f"idempotencyKeyType: {self.key_type!r} is not one of {', '.join(KEY_TYPES)}")
        self.key_of: Getter | None = None
        if self.key_type in ("msg", "jsonata"):
            source = (self.config.idempotencyKey or "").strip()
            if not source:
                what = "a message property" if self.key_type == "msg" else "a JSONata expression"
                raise NodeError(f"idempotencyKey: name {what} for the key (or choose stream or off)")
            try:
                self.key_of = typed_getter(self, source, self.key_type)
            except Exception as exc:  # noqa: BLE001 - a bad path or expression refuses the deploy
                raise NodeError(f"idempotencyKey: {source!r} is not a valid {self.key_type}: {exc}") from None
            self.key_source = source

    def _keys(self, msg: Msg, count: int, batch: bool) -> list[str | None] | None:
        """The idempotency key of each body, None for none; NodeError naming the key when it cannot be made."""
        if self.key_type == "off":
            return None
        if self.key_of is None:  # stream
            value: Any = msg.get("_streamId")
            if not isinstance(value, str) or not value:
                return None
            value += parts_suffix(msg.get("parts"))
        else:
            try:
                value = self.key_of(msg)
            except Exception as exc:  # noqa: BLE001 - a failing expression fails the message
                raise NodeError(f"idempotencyKey {self.key_source!r}: {exc}; nothing stored") from None
            if value is None:
                raise NodeError(
                    f"idempotencyKey {self.key_source!r}: no value in this message; nothing stored"
                )
        if batch and isinstance(value, list):
            if len(value) != count:
                raise NodeError(
                    f"idempotencyKey {self.key_source!r}: {len(value)} keys for {count} items; nothing stored"
                )
            return [self._key_text(v, f"item {i}") for i, v in enumerate(value)]
        key = self._key_text(value, "key")
        return [f"{key}#{i}" for i in range(count)] if batch else [key]

    def _key_text(self, value: Any, where: str) -> str:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float) and math.isfinite(value):
            return str(int(value)) if value.is_integer() else repr(value)
        source = getattr(self, "key_source", "msg._streamId")
        raise NodeError(
            f"idempotencyKey {source!r}: the {where} must be a non-empty string or a number, "
            f"got {json.dumps(value, default=str)[:80]}; nothing stored"
        )

    @property
    def key_scope(self) -> str | None:
        """Whose idempotency keys this node's are: `tenant`, the user its flow acts for (None for the platform:
        administrators' and ownerless tabs). Not `owner`: keys are scoped to keep tenants apart, and `tenant` is
        the runtime's tenancy boundary (`may_reach`). Administrators hold every right on every ontology, so
        sharing the platform's keys among them hands nobody an instance they could not read, and a flow passed
        between administrators (or deployed ownerless, then given one) keeps deduplicating. A developer's keys
        are the developer's alone: another developer inserting into the same ontology with the same key stores
        their own instance, and is answered with their own on a repeat."""
        return self.tenant

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
            keys = self._keys(msg, len(bodies), batch)
            if device is not None and self.devices is not None:
                await asyncio.to_thread(self._check_device, device)
            stored, duplicate = (
                await asyncio.to_thread(
                    functools.partial(
                        self.data.insert_keyed,
                        self.ontology,
                        bodies,
                        keys,
                        writer,
                        batch,
                        scope=self.key_scope,
                    )
                )
                if bodies
                else ([], [])
            )
        except InstanceValidationError as exc:
            raise NodeError(str(exc)) from None
        except RtdbError as exc:
            raise store_error(self, "insert", exc) from None
        ids = [doc["_id"] for doc in stored]
        msg["payload"] = ids if batch else ids[0]
        msg["inserted"] = stored if batch else stored[0]
        msg["duplicate"] = duplicate if batch else duplicate[0]
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


def parts_suffix(parts: Any) -> str:
    """`~i.j` for a message that `split` made (its index, then the enclosing splits' outwards), "" otherwise."""
    indexes: list[str] = []
    while isinstance(parts, dict) and len(indexes) < 32:
        index = parts.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            break
        indexes.append(str(index))
        parts = parts.get("parts")
    return "~" + ".".join(indexes) if indexes else ""
