"""Ontology operations behind API endpoints: query (paged), get by id, insert, update, delete.

They run with the rights of the calling key's user (`permissions.check`) through the "ontology-data" service, so
writes are validated, stamped with `contextData` and seen by subscribers. Blocking: run them in a thread.

A query answers a page with the total of its matches. The total is counted only when the page does not show it
(a last page does), and then remembered per ontology and filter for TOTAL_TTL seconds (`Totals`): writes through
the API Manager forget that ontology's totals at once, writes by flows or other workers show within TOTAL_TTL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sofiaflow.runtime.api_manager.model import RIGHT_OF, EndpointSpec
from sofiaflow.runtime.data.ontologies import OntologyNotFoundError
from sofiaflow.runtime.data.ontology_data import InstanceValidationError, OntologyData, Writer
from sofiaflow.runtime.data.rtdb import DuplicateKeyError, RtdbError
from sofiaflow.runtime.errors import SofiaflowError

MAX_BATCH = 1000
_RESERVED_FIELDS = ("_id", "contextData")
TOTAL_TTL = 1.0
"""Seconds a query's total may be reused (writes through the API Manager forget it at once)."""
_TOTALS_LIMIT = 10_000


class Totals:
    """The totals of queries by (ontology, filter), each reused for `ttl` seconds; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ttl: float = TOTAL_TTL) -> None:
        self._clock, self._ttl = clock, ttl
        self._totals: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def get(self, data: OntologyData, ontology: str, flt: dict[str, Any]) -> int:
        # repr: cheap, and tells 1 from 1.0 and True, NaN from null; the same operation renders its filter's
        # fields in the same order each time (another order only makes another entry)
        key = (ontology, repr(flt))
        now = self._clock()
        with self._lock:
            hit = self._totals.get(key)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        total = data.count(ontology, flt)
        with self._lock:
            if len(self._totals) >= _TOTALS_LIMIT:
                self._totals.clear()
            self._totals[key] = (now, total)
        return total

    def forget(self, ontology: str) -> None:
        with self._lock:
            for key in [k for k in self._totals if k[0] == ontology]:
                del self._totals[key]


class CallError(SofiaflowError):
    """An answer other than success: status, code, message and extra body fields."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers, self.extra = status, code, message, headers, extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def run(
    data: OntologyData,
    permissions: Any,
    spec: EndpointSpec,
    values: dict[str, Any],
    user: str,
    body: Any,
    limit: int,
    offset: int,
    totals: Totals | None = None,
) -> tuple[int, Any]:
    """(status, JSON answer) of `spec`'s ontology operation; CallError for refusals and bad input.
    `permissions.check` raising PermissionDenied is left to the caller (it is audited there). `totals`: where
    queries' totals are remembered (None: counted on every call)."""
    ontology = spec.ontology or ""
    permissions.check(user, ontology, RIGHT_OF[spec.operation])
    try:
        if spec.operation == "query":
            return _query(data, spec, values, user, limit, offset, totals)
        try:
            return _OPERATIONS[spec.operation](data, spec, values, user, body, limit, offset)
        finally:
            if totals is not None and spec.operation != "getById":
                totals.forget(ontology)  # also after a failed write: part of it may have been stored
    except InstanceValidationError as exc:
        raise CallError(400, "invalid_instance", str(exc), problems=exc.problems) from None
    except OntologyNotFoundError as exc:
        raise CallError(404, "not_found", f"this API's ontology is gone: {exc}") from None
    except DuplicateKeyError as exc:
        raise CallError(409, "duplicate", str(exc)) from None
    except RtdbError as exc:
        raise CallError(400, "invalid_query", str(exc)) from None


def _filter(spec: EndpointSpec, values: dict[str, Any], user: str) -> dict[str, Any]:
    if spec.template is None:
        return {"_id": str(values["id"])}
    flt = spec.template.render(values, user)
    if not flt and spec.template.names and spec.operation in ("update", "delete"):
        raise CallError(
            400,
            "invalid_query",
            "without its optional parameters this operation would touch every "
            "instance; give at least one of " + ", ".join(sorted(spec.template.names)),
        )
    return flt


def _query(
    data: OntologyData,
    spec: EndpointSpec,
    values: dict,
    user: str,
    limit: int,
    offset: int,
    totals: Totals | None,
) -> tuple[int, Any]:
    flt = spec.template.render(values, user) if spec.template is not None else {}
    items = data.find(spec.ontology, flt, None, list(spec.sort) if spec.sort else None, offset, limit)
    if items and len(items) < limit:
        total = offset + len(items)  # the last page: no need to count
    elif totals is not None:
        total = totals.get(data, spec.ontology or "", flt)
    else:
        total = data.count(spec.ontology, flt)
    return 200, {"total": total, "limit": limit, "offset": offset, "items": items}


def _get_by_id(
    data: OntologyData, spec: EndpointSpec, values: dict, user: str, _body: Any, _limit: int, _offset: int
) -> tuple[int, Any]:
    docs = data.find(spec.ontology, _filter(spec, values, user), limit=1)
    if not docs:
        raise CallError(404, "not_found", f"no instance of {spec.ontology} with id {values.get('id')!r}")
    return 200, docs[0]


def _check_fields(body: Any, where: str) -> None:
    if not isinstance(body, dict):
        raise CallError(
            400,
            "invalid_body",
            f"{where} must be a JSON object (an instance), got "
            f"{type(body).__name__ if body is not None else 'no body'}",
        )
    reserved = [k for k in _RESERVED_FIELDS if k in body]
    if reserved:
        raise CallError(
            400, "invalid_body", f"{where}: {', '.join(reserved)} is set by the platform, not the caller"
        )


def _insert(
    data: OntologyData, spec: EndpointSpec, _values: dict, user: str, body: Any, _limit: int, _offset: int
) -> tuple[int, Any]:
    batch = isinstance(body, list)
    bodies = body if batch else [body]
    if batch and not 1 <= len(bodies) <= MAX_BATCH:
        raise CallError(400, "invalid_body", f"a batch holds 1 to {MAX_BATCH} instances, got {len(bodies)}")
    for index, item in enumerate(bodies):
        _check_fields(item, f"item {index}" if batch else "the body")
    stored = data.insert(spec.ontology, bodies, Writer(user=user, source="http"), batch)
    ids = [doc["_id"] for doc in stored]
    return 201, ({"ids": ids} if batch else {"id": ids[0]})


def _update(
    data: OntologyData, spec: EndpointSpec, values: dict, user: str, body: Any, _limit: int, _offset: int
) -> tuple[int, Any]:
    _check_fields(body, "the body")
    data.check(spec.ontology, [body], batch=False)
    flt = _filter(spec, values, user)
    matched, _ = data.update(spec.ontology, flt, {"$set": body}, multi=spec.template is not None)
    if not matched and spec.template is None:
        raise CallError(404, "not_found", f"no instance of {spec.ontology} with id {values.get('id')!r}")
    return 200, {"matched": matched}


def _delete(
    data: OntologyData, spec: EndpointSpec, values: dict, user: str, _body: Any, _limit: int, _offset: int
) -> tuple[int, Any]:
    deleted, _ = data.delete(spec.ontology, _filter(spec, values, user))
    if not deleted and spec.template is None:
        raise CallError(404, "not_found", f"no instance of {spec.ontology} with id {values.get('id')!r}")
    return 200, {"deleted": deleted}


_OPERATIONS = {
    "getById": _get_by_id,
    "insert": _insert,
    "update": _update,
    "delete": _delete,
}
