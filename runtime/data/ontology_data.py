"""`OntologyData`: the one way data enters, changes and leaves the real-time DB.

Flows (the ontology nodes), gateways (REST, SSAP, MQTT ingestion) and the admin API all write through
it, so every write is validated against its ontology, stamped with onesait's `contextData`, and
published on the change hub (`OntologyEvents`) that `ontology-subscribe` nodes listen to, whoever wrote.
The methods are blocking (the store is); async callers run them with `asyncio.to_thread`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sofiaflow.runtime.data.events import OntologyEvents
from sofiaflow.runtime.data.ontologies import OntologyRegistry, context_data
from sofiaflow.runtime.data.rtdb import RealtimeStore
from sofiaflow.runtime.data.rtdb.base import MAX_KEY_LENGTH, check_keys, scoped_key
from sofiaflow.runtime.errors import ValidationError

NOTIFY_LIMIT = 1000
"""At most this many updated or deleted documents are read to notify subscribers."""
MAX_ERRORS_SHOWN = 3


class InstanceValidationError(ValidationError):
    """Instances refused by their ontology's schema; nothing was stored. `problems` lists each
    (`where`, `path`, `message`)."""

    def __init__(self, ontology: str, problems: list[dict[str, str]]) -> None:
        self.ontology = ontology
        self.problems = problems
        shown = "; ".join(
            f"{p['where']} at {p['path'] or '/'}: {p['message']}" for p in problems[:MAX_ERRORS_SHOWN]
        )
        more = f" (and {len(problems) - MAX_ERRORS_SHOWN} more)" if len(problems) > MAX_ERRORS_SHOWN else ""
        super().__init__(
            f"ontology {ontology!r}: {len(problems)} validation error(s), nothing stored: {shown}{more}"
        )


@dataclass(frozen=True)
class Writer:
    """Who writes, for `contextData`: the user, the device (digital client) and its session, the transport
    (`source`: mqtt, http or flow) and the writer's time zone."""

    user: str | None = None
    device: str | None = None
    source: str = "flow"
    timezone: str = "UTC"
    device_template: str | None = None
    client_session: str | None = None
    client_connection: str | None = None

    def context(self, now: datetime | None = None) -> dict[str, Any]:
        return context_data(
            user=self.user,
            device=self.device,
            source=self.source,
            timezone=self.timezone,
            now=now,
            device_template=self.device_template,
            client_connection=self.client_connection,
            client_session=self.client_session,
        )


class OntologyData:
    """Validated, stamped, announced access to the instances of the registry's ontologies."""

    def __init__(self, registry: OntologyRegistry, store: RealtimeStore, events: OntologyEvents) -> None:
        self.registry = registry
        self.store = store
        self.events = events

    # ----- writes ---------------------------------------------------------------------------------
    def check(self, ontology: str, bodies: list[Any], batch: bool = True) -> None:
        """Raise `InstanceValidationError` unless every body is valid for `ontology` (which must exist:
        `OntologyNotFoundError` otherwise)."""
        self.registry.validator(ontology)
        problems: list[dict[str, str]] = []
        for index, body in enumerate(bodies):
            where = f"item {index}" if batch else "instance"
            if not isinstance(body, dict):
                problems.append(
                    {"where": where, "path": "", "message": f"must be an object, got {type(body).__name__}"}
                )
                continue
            for error in self.registry.validate(ontology, body):
                problems.append({"where": where, "path": error["path"], "message": error["message"]})
        if problems:
            raise InstanceValidationError(ontology, problems)

    def insert(
        self, ontology: str, bodies: list[dict[str, Any]], writer: Writer | None = None, batch: bool = True
    ) -> list[dict[str, Any]]:
        """Validate every body, then store them all with `contextData`; the stored documents (with `_id`).
        One invalid body stores nothing."""
        return self.insert_keyed(ontology, bodies, None, writer, batch, scope=None)[0]

    def insert_keyed(
        self,
        ontology: str,
        bodies: list[dict[str, Any]],
        keys: list[str | None] | None,
        writer: Writer | None = None,
        batch: bool = True,
        *,
        scope: str | None,
    ) -> tuple[list[dict[str, Any]], list[bool]]:
        """`insert` with an idempotency key per body (None: none): a body whose key is already stored (or
        repeats an earlier key of `bodies`) stores nothing and is answered with the stored instance. The
        database's unique index on the key decides, so this holds across workers and races. Returns (the
        documents: stored, or found for a duplicate; which are duplicates). Only new documents are announced.

        Keys belong to `scope`, the identity that inserts: the user its flow acts for (`Node.tenant`), None for
        the platform. It is named on every call, as the one place keys are scoped: they are stored as
        `scoped_key(scope, key)`, so one user's keys never meet another's, neither to read the other's instance
        through a repeated key nor to keep the other's instances out by storing their keys first. A duplicate is
        answered with the stored document only when the row found holds this very stored key (a store comparing
        keys loosely, e.g. under a case-insensitive collation, could find another's): otherwise with its `_id`
        alone."""
        if scope is not None and (not isinstance(scope, str) or not scope):
            raise ValueError(f"scope: must be a user name or None (the platform), got {scope!r:.80}")
        self.check(ontology, bodies, batch)
        if not bodies:
            return [], []
        stored_keys: list[str | None] | None = None
        if keys is not None:
            given = check_keys(keys, len(bodies), MAX_KEY_LENGTH)
            stored_keys = [None if key is None else scoped_key(scope, key) for key in given]
        context = (writer or Writer()).context()
        docs = [{**body, "contextData": dict(context)} for body in bodies]
        answers = self.store.insert_once(ontology, docs, stored_keys)
        ids = [_id for _id, _ in answers]
        duplicate = [dup for _, dup in answers]
        stored = [
            {"_id": _id, **{k: v for k, v in doc.items() if k != "_id"}}
            for _id, doc in zip(ids, docs, strict=True)
        ]
        if any(duplicate) and stored_keys is not None:
            wanted = sorted({_id for _id, dup in zip(ids, duplicate, strict=True) if dup})
            found = self.store.find_with_keys(ontology, wanted)
            stored = [
                _own(found.get(doc["_id"]), key, doc["_id"]) if dup else doc
                for doc, dup, key in zip(stored, duplicate, stored_keys, strict=True)
            ]
        new = [doc for doc, dup in zip(stored, duplicate, strict=True) if not dup]
        if new:
            self.events.publish(ontology, "insert", new)
        return stored, duplicate

    def update(
        self, ontology: str, filter: dict[str, Any] | None, update: dict[str, Any], multi: bool = True
    ) -> tuple[int, int]:
        """Apply `update` ($set/$unset/$inc) to the matches; (matched count, notified count)."""
        self.registry.validator(ontology)
        if not self.events.has_listeners(ontology):
            return self.store.update(ontology, filter, update, multi), 0
        found = self.store.find(ontology, filter, {"_id": 1}, None, 0, NOTIFY_LIMIT if multi else 1)
        ids = [d["_id"] for d in found]
        if not multi:
            if not ids:
                return 0, 0
            filter = {"_id": ids[0]}
        count = self.store.update(ontology, filter, update, multi)
        docs = self.store.find(ontology, {"_id": {"$in": ids}}) if ids else []
        self.events.publish(ontology, "update", docs)
        return count, len(docs)

    def delete(self, ontology: str, filter: dict[str, Any] | None) -> tuple[int, int]:
        """Delete the matches; (deleted count, notified count)."""
        self.registry.validator(ontology)
        if not self.events.has_listeners(ontology):
            return self.store.delete(ontology, filter), 0
        docs = self.store.find(ontology, filter, None, None, 0, NOTIFY_LIMIT)
        if len(docs) < NOTIFY_LIMIT:
            count = self.store.delete(ontology, {"_id": {"$in": [d["_id"] for d in docs]}}) if docs else 0
        else:
            count = self.store.delete(ontology, filter)
        self.events.publish(ontology, "delete", docs)
        return count, len(docs)

    # ----- reads ----------------------------------------------------------------------------------
    def find(
        self,
        ontology: str,
        filter: dict[str, Any] | None = None,
        projection: dict[str, Any] | None = None,
        sort: Any = None,
        skip: int = 0,
        limit: int = 0,
    ) -> list[dict[str, Any]]:
        self.registry.validator(ontology)
        return self.store.find(ontology, filter, projection, sort, skip, limit)

    def count(self, ontology: str, filter: dict[str, Any] | None = None) -> int:
        self.registry.validator(ontology)
        return self.store.count(ontology, filter)


def _own(found: tuple[str | None, dict[str, Any]] | None, key: str | None, _id: str) -> dict[str, Any]:
    """The document found for a duplicate when it holds the stored key it was found for, else its `_id` alone."""
    if found is None or key is None or found[0] != key:
        return {"_id": _id}
    return found[1]
