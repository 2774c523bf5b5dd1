"""`/alarms`: list, read, acknowledge, clear and delete alarms (the runtime's AlarmStore over HTTP).

`GET /alarms?status=ACTIVE&severity=critical,major&originator=boiler&type=device%20silent&offset=0&limit=100`
answers `{"alarms": [...], "total", "offset", "limit"}`, the latest first; `status` takes ACTIVE_UNACK,
ACTIVE_ACK, CLEARED_UNACK, CLEARED_ACK or a group (ANY, ACTIVE, CLEARED, ACK, UNACK), comma-separated, as
`severity` does (critical, major, minor, warning). A bad parameter is a 400 naming it (`field`).

Tenancy: an alarm belongs to the owner of the flow that raised it. Administrators see and change every alarm;
developers and users see their own, and developers acknowledge, clear and delete their own; someone else's
alarm is a 404, as if it did not exist. Acknowledging or clearing twice answers the alarm as it is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request, Response

from sofiaflow.runtime.core.services import ALARMS
from sofiaflow.runtime.data.alarms import AlarmNotFound, AlarmQuery, AlarmStore, AlarmValidationError
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, record
from sofiaflow.runtime.runtime import Runtime

router = APIRouter(tags=["alarms"])


def _store(runtime: Runtime) -> AlarmStore:
    store = runtime.engine.services.get(ALARMS) if runtime.engine is not None else None
    if store is None:
        raise ApiError(503, "alarms_unavailable", "the alarm store is not running")
    return store


def _owners(request: Request) -> tuple[str | None, ...] | None:
    """Whose alarms the caller sees: None for administrators (and in-process callers), else their own."""
    if getattr(request.state, "role", None) in (None, "administrator"):
        return None
    return (getattr(request.state, "user", None),)


@contextmanager
def _answers() -> Iterator[None]:
    try:
        yield
    except AlarmValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc), field=exc.field) from None
    except AlarmNotFound as exc:
        raise ApiError(404, "not_found", str(exc)) from None


def _now_ms() -> int:
    return int(time.time() * 1000)


@router.get("/alarms", summary="A page of the alarms the caller may see, the latest first")
async def list_alarms(
    request: Request,
    runtime: RuntimeDep,
    status: str | None = None,
    severity: str | None = None,
    originator: str | None = None,
    type: str | None = None,  # noqa: A002 - the alarm property's name
    offset: str = "0",
    limit: str = "100",
) -> dict[str, Any]:
    with _answers():
        query = AlarmQuery.parse(status, severity, originator, type, offset, limit, _owners(request))
    return _store(runtime).list(query).as_dict()


@router.get("/alarms/{alarm_id}", summary="One alarm")
async def get_alarm(alarm_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    with _answers():
        return _store(runtime).get(alarm_id, _owners(request)).as_dict()


@router.post("/alarms/{alarm_id}/ack", summary="Acknowledge an alarm; the flow that raised it is told")
async def acknowledge_alarm(alarm_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    store = _store(runtime)
    with _answers():
        store.get(alarm_id, _owners(request))
        alarm, event = store.acknowledge(alarm_id, _now_ms(), by=getattr(request.state, "user", None))
    if event is not None:
        record(request, "alarm.ack", alarm_id)
    return alarm.as_dict()


@router.post("/alarms/{alarm_id}/clear", summary="Clear an alarm; the flow that raised it is told")
async def clear_alarm(alarm_id: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    store = _store(runtime)
    with _answers():
        store.get(alarm_id, _owners(request))
        event = store.clear(alarm_id, _now_ms(), by=getattr(request.state, "user", None))
        if event is None:
            return store.get(alarm_id).as_dict()
    record(request, "alarm.clear", alarm_id)
    return event.alarm.as_dict()


@router.delete("/alarms/{alarm_id}", status_code=204, summary="Delete an alarm")
async def delete_alarm(alarm_id: str, request: Request, runtime: RuntimeDep) -> Response:
    store = _store(runtime)
    with _answers():
        store.get(alarm_id, _owners(request))
        store.delete(alarm_id)
    record(request, "alarm.delete", alarm_id)
    return Response(status_code=204)
