"""The SSAP processor: checks sessions and rights, then serves each request through `OntologyData`.

One processor per `ssap-broker` configuration; REST and MQTT gateways hand it request envelopes and
get answer envelopes back (`handle`). Blocking store work runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sofiaflow.runtime.data.ontology_data import InstanceValidationError, Writer
from sofiaflow.runtime.data.rtdb import RtdbError, matches, parse_filter
from sofiaflow.runtime.data.schema import OntologyError
from sofiaflow.runtime.onesait import ssap
from sofiaflow.runtime.onesait.queries import output_doc, parse_native_for, run_query
from sofiaflow.runtime.onesait.sessions import Session, SessionStore
from sofiaflow.runtime.onesait.ssap import AUTHENTICATION, AUTHORIZATION, PROCESSOR, SsapError

log = logging.getLogger("sofiaflow.onesait.processor")

INSERT_OPS = {"INSERT", "UPDATE", "UPDATE_BY_ID", "DELETE", "DELETE_BY_ID"}
QUERY_OPS = {"QUERY", "SUBSCRIBE"}
QUERY_RIGHTS = {
    "ALL",
    "QUERY",
}  # as the user rights (sofiaflow.runtime.security.permissions): ALL is both, INSERT writes only
INSERT_RIGHTS = {"ALL", "INSERT"}
MAX_BATCH = 10_000
Indication = Callable[[Session, dict[str, Any], dict[str, Any]], None]


class SsapProcessor:
    """See the module docstring. `on_indication(session, subscription, envelope)` receives INDICATIONs."""

    def __init__(
        self,
        devices: Any,
        data: Any,
        sessions: SessionStore,
        events: Any = None,
        on_indication: Indication | None = None,
        permissions: Any = None,
        audit: Any = None,
    ) -> None:
        self.devices, self.data, self.sessions, self.events = devices, data, sessions, events
        self.permissions = permissions  # users' ontology rights: a client's owner must hold the right too
        self.audit = audit  # refusals are recorded there (runtime/security/audit.py)
        self.on_indication = on_indication
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self._unlisten = devices.on_revoke(self._revoked) if hasattr(devices, "on_revoke") else None

    def close(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for sub in list(self.subscriptions.values()):
            sub["stop"]()
        self.subscriptions.clear()

    def _revoked(self, name: str, token_id: str | None) -> None:
        self.sessions.drop_client(name, token_id)

    # ----- entry point -------------------------------------------------------------------------------
    async def handle(
        self, envelope: Any, transport: str = "http", sink: Indication | None = None
    ) -> dict[str, Any]:
        """The answer envelope to one request (errors become ERROR answers). A SUBSCRIBE's INDICATIONs go to
        `sink(session, subscription, envelope)` (default: `on_indication`)."""
        try:
            req = ssap.check_request(envelope)
            kind = req["messageType"]
            body = req.get("body") or {}
            if kind == "JOIN":
                return await self._join(req, body)
            session = self.sessions.use(req.get("sessionKey"))
            handler = getattr(self, "_" + kind.lower(), None)
            if handler is None:
                raise SsapError(PROCESSOR, f"{kind} messages are not supported by this broker")
            if kind in INSERT_OPS | QUERY_OPS:
                self._authorize(session, kind, body)
            if kind == "SUBSCRIBE":
                data = await self._subscribe(session, body, transport, sink or self.on_indication)
            else:
                data = await handler(session, body, transport, req)
            return ssap.response(req, data, session.key)
        except SsapError as exc:
            return ssap.error(envelope, exc.code, str(exc))
        except InstanceValidationError as exc:
            return ssap.error(envelope, PROCESSOR, str(exc))
        except (OntologyError, RtdbError, ValueError) as exc:
            return ssap.error(envelope, PROCESSOR, str(exc))
        except Exception as exc:  # noqa: BLE001 - every request gets its answer, whatever failed
            log.warning("SSAP %s failed: %s", _kind(envelope), failure_reason(exc))
            log.debug("SSAP %s failed", _kind(envelope), exc_info=not isinstance(exc, RecursionError))
            return ssap.error(envelope, PROCESSOR, failure_reason(exc))

    # ----- sessions ----------------------------------------------------------------------------------
    async def _join(self, req: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("token")
        client = body.get("clientPlatform") or body.get("deviceTemplate")
        instance = body.get("clientPlatformInstance") or body.get("device")
        if not isinstance(token, str) or not token:
            raise SsapError(AUTHENTICATION, "JOIN needs a token")
        if client is not None and not isinstance(client, str):
            raise SsapError(AUTHENTICATION, "clientPlatform must be a string")
        try:
            device = await asyncio.to_thread(self.devices.authenticate, client or None, token)
        except Exception as exc:  # AuthError and malformed tokens alike
            self._record_refusal(client or None, "JOIN", None, f"JOIN refused: {exc}")
            raise SsapError(AUTHENTICATION, f"JOIN refused: {exc}") from None
        instance = str(instance) if instance is not None else None
        if instance and hasattr(self.devices, "record_instance"):
            await asyncio.to_thread(self.devices.record_instance, device.name, instance)
        token_id = token.split(".", 1)[0]
        session = self.sessions.open(device, instance, token_id, renew=req.get("sessionKey"))
        return ssap.response(req, {"sessionKey": session.key}, session.key)

    async def _leave(self, session: Session, body: dict, transport: str, req: dict) -> dict[str, Any]:
        self.sessions.close(session.key)
        for sub_id, sub in list(self.subscriptions.items()):
            if sub["session"] == session.key:
                sub["stop"]()
                del self.subscriptions[sub_id]
        return {"message": "Disconnected"}

    def _authorize(self, session: Session, kind: str, body: dict[str, Any]) -> None:
        ontology = body.get("ontology")
        if not isinstance(ontology, str) or not ontology:
            raise SsapError(PROCESSOR, f"{kind} needs an ontology")
        right = (session.client.ontologies or {}).get(ontology)
        needed = INSERT_RIGHTS if kind in INSERT_OPS else QUERY_RIGHTS
        level = "INSERT" if kind in INSERT_OPS else "QUERY"
        if right not in needed:
            message = f"client {session.client_name!r} has no {level} right on ontology {ontology!r}"
            self._record_refusal(session.client_name, kind, ontology, message)
            raise SsapError(AUTHORIZATION, message)
        owner = getattr(session.client, "owner", None)
        if owner and self.permissions is not None:
            try:
                self.permissions.check(owner, ontology, level)
            except PermissionError:
                message = (
                    f"{owner!r}, owner of client {session.client_name!r}, has no {level} right on ontology "
                    f"{ontology!r}"
                )
                self._record_refusal(session.client_name, kind, ontology, message)
                raise SsapError(AUTHORIZATION, message) from None

    def _record_refusal(self, client: str | None, kind: str, ontology: str | None, message: str) -> None:
        if self.audit is not None:
            self.audit.record(
                f"device:{client}" if client else None,
                f"ssap.{kind.lower()}",
                ontology,
                "denied",
                {"message": message},
            )

    def _writer(self, session: Session, transport: str) -> Writer:
        return Writer(
            device=session.instance or session.client_name,
            source=transport,
            device_template=session.client_name,
            client_session=session.key,
            client_connection=session.instance,
        )

    # ----- data --------------------------------------------------------------------------------------
    async def _insert(self, session: Session, body: dict, transport: str, req: dict) -> Any:
        payload = body.get("data")
        single = isinstance(payload, dict)
        items = [payload] if single else payload
        if not isinstance(items, list) or not items:
            raise SsapError(PROCESSOR, "INSERT needs data: an instance object or a non-empty array of them")
        if len(items) > MAX_BATCH:
            raise SsapError(PROCESSOR, f"INSERT takes at most {MAX_BATCH} instances at once")
        stored = await asyncio.to_thread(
            self.data.insert, body["ontology"], items, self._writer(session, transport), not single
        )
        ids = [d["_id"] for d in stored]
        return {"id": ids[0]} if single else {"nInserted": len(ids), "ids": ids}

    async def _update(self, session: Session, body: dict, transport: str, req: dict) -> Any:
        ontology = body["ontology"]
        query = parse_native_for(ontology, body.get("query"))
        if query.operation != "update":
            raise SsapError(
                PROCESSOR, "UPDATE needs a NATIVE update query: db.X.update({...}, {$set: {...}})"
            )
        return await asyncio.to_thread(
            self._update_sync, ontology, query.filter, query.update, query.multi, bool(body.get("ids"))
        )

    def _update_sync(self, ontology: str, filter: dict, update: dict, multi: bool, want_ids: bool) -> Any:
        ids = (
            [d["_id"] for d in self.data.find(ontology, filter, {"_id": 1}, None, 0, 0 if multi else 1)]
            if want_ids
            else None
        )
        if ids is not None:
            filter = {"_id": {"$in": ids}}
        count, _ = self.data.update(ontology, filter, update, multi)
        return {"nModified": count, **({"ids": ids} if ids is not None else {})}

    async def _update_by_id(self, session: Session, body: dict, transport: str, req: dict) -> Any:
        ontology, doc_id, new = body["ontology"], body.get("id"), body.get("data")
        if not isinstance(doc_id, str) or not doc_id:
            raise SsapError(PROCESSOR, "UPDATE_BY_ID needs the instance id")
        if not isinstance(new, dict):
            raise SsapError(PROCESSOR, "UPDATE_BY_ID needs data: the new instance object")
        return await asyncio.to_thread(self._replace_sync, ontology, doc_id, new)

    def _replace_sync(self, ontology: str, doc_id: str, new: dict[str, Any]) -> Any:
        new = {k: v for k, v in new.items() if k not in ("_id", "contextData")}
        self.data.check(ontology, [new], batch=False)
        found = self.data.find(ontology, {"_id": doc_id}, None, None, 0, 1)
        if not found:
            raise SsapError(PROCESSOR, f"ontology {ontology!r} has no instance {doc_id!r}")
        gone = [k for k in found[0] if k not in new and k not in ("_id", "contextData")]
        update: dict[str, Any] = {"$set": new} if new else {}
        if gone:
            update["$unset"] = {k: "" for k in gone}
        if not update:
            return {"nModified": 0, "id": doc_id}
        count, _ = self.data.update(ontology, {"_id": doc_id}, update, False)
        return {"nModified": count, "id": doc_id}

    async def _delete(self, session: Session, body: dict, transport: str, req: dict) -> Any:
        ontology = body["ontology"]
        query = parse_native_for(ontology, body.get("query"))
        if query.operation != "remove":
            raise SsapError(PROCESSOR, "DELETE needs a NATIVE remove query: db.X.remove({...})")
        return await asyncio.to_thread(
            self._delete_sync, ontology, query.filter, query.multi, bool(body.get("ids"))
        )

    def _delete_sync(self, ontology: str, filter: dict, multi: bool, want_ids: bool) -> Any:
        ids = None
        if want_ids or not multi:
            ids = [d["_id"] for d in self.data.find(ontology, filter, {"_id": 1}, None, 0, 0 if multi else 1)]
            filter = {"_id": {"$in": ids}}
        count, _ = self.data.delete(ontology, filter) if ids is None or ids else (0, 0)
        return {"nDeleted": count, **({"ids": ids} if want_ids else {})}

    async def _delete_by_id(self, session: Session, body: dict, transport: str, req: dict) -> Any:
        doc_id = body.get("id")
        if not isinstance(doc_id, str) or not doc_id:
            raise SsapError(PROCESSOR, "DELETE_BY_ID needs the instance id")
        count, _ = await asyncio.to_thread(self.data.delete, body["ontology"], {"_id": doc_id})
        if not count:
            raise SsapError(PROCESSOR, f"ontology {body['ontology']!r} has no instance {doc_id!r}")
        return {"nDeleted": count, "id": doc_id}

    async def _query(self, session: Session, body: dict, transport: str, req: dict) -> Any:
        result_format = str(body.get("resultFormat") or "JSON").upper()
        if result_format != "JSON":
            raise SsapError(PROCESSOR, f"resultFormat {result_format!r} is not supported (only JSON)")
        return await asyncio.to_thread(
            run_query, self.data, body["ontology"], body.get("query"), body.get("queryType")
        )

    # ----- subscriptions -----------------------------------------------------------------------------
    async def _subscribe(self, session: Session, body: dict, transport: str, sink: Indication | None) -> Any:
        if self.events is None:
            raise SsapError(PROCESSOR, "subscriptions need the ontology change hub, which is not running")
        ontology = body["ontology"]
        query = body.get("queryValue") or body.get("query")
        filter: dict[str, Any] = {}
        if isinstance(query, dict):
            filter = query
        elif isinstance(query, str) and query.strip():
            filter = parse_native_for(ontology, query).filter
        ast = parse_filter(filter)
        sub_id = str(uuid.uuid4())
        subscription = {
            "id": sub_id,
            "session": session.key,
            "ontology": ontology,
            "client": session.client_name,
            "callback": body.get("callback"),
            "clientId": body.get("clientId") or session.instance,
            "transport": transport,
            "subscription": body.get("subscription"),
        }

        def listener(name: str, event: str, docs: list[dict[str, Any]]) -> None:
            if event != "insert":
                return
            live = self.sessions.peek(subscription["session"])
            if live is None:
                subscription["stop"]()
                self.subscriptions.pop(sub_id, None)
                return
            hits = [output_doc(d) for d in docs if matches(d, ast)]
            if hits and sink is not None:
                sink(live, subscription, ssap.indication(name, sub_id, hits, live.key))

        subscription["stop"] = self.events.subscribe(ontology, listener)
        self.subscriptions[sub_id] = subscription
        return {"subscriptionId": sub_id}

    async def _unsubscribe(self, session: Session, body: dict, transport: str, req: dict) -> Any:
        sub_id = body.get("subscriptionId")
        sub = self.subscriptions.get(sub_id) if isinstance(sub_id, str) else None
        if sub is None or sub["client"] != session.client_name:
            raise SsapError(PROCESSOR, f"no subscription {sub_id!r} of this client")
        sub["stop"]()
        del self.subscriptions[sub_id]
        return {"subscriptionId": sub_id}


def _kind(envelope: Any) -> str:
    kind = envelope.get("messageType") if isinstance(envelope, dict) else None
    return kind if isinstance(kind, str) else "request"


def failure_reason(exc: BaseException) -> str:
    """Why a request failed, for its client: the database's own message without the SQL it ran."""
    if isinstance(exc, RecursionError):
        return "the query is nested too deeply"
    if isinstance(exc, OverflowError):
        return "a number in the query is out of range"
    cause = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error (and quotes the SQL)
    text = str(cause).split("\n[SQL", 1)[0].strip().splitlines()
    first = text[0][:300] if text else ""
    return f"the query failed: {first}" if first else f"the query failed ({type(cause).__name__})"
