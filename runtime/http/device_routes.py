"""`/devices`: create, list, change and delete devices and their tokens (the DeviceRegistry over HTTP).

A token is shown once, in the answer that creates it; listings show token ids and state, never secrets.
A device whose topics overlap those of a device of another owner is refused: 400 `topic_clash`, naming the
refused filter only (never the other owner's device, filter or topics).

In cluster mode every change is also made on Mosquitto (runtime/cluster/dynsec.py) before the answer: a device
Mosquitto refuses is not created (502 `broker_refused`), and a revocation answers only once Mosquitto has
disconnected the device.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, denied, record
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.devices import (
    DeviceExistsError,
    DeviceNotFoundError,
    DeviceRegistry,
    DeviceValidationError,
    TokenNotFoundError,
    TopicClashError,
)

router = APIRouter(tags=["devices"])

_CREATE_KEYS = {"name", "ontologies", "topics", "enabled", "owner"}
_EXAMPLE = {"name": "s1", "ontologies": {"BasicSensor": "INSERT"}, "topics": ["sensors/{device}/#"]}


def _registry(runtime: Runtime) -> DeviceRegistry:
    registry = runtime.engine.services.get("devices") if runtime.engine is not None else None
    if registry is None:
        raise ApiError(503, "devices_unavailable", "the device registry is not running")
    return registry


@contextmanager
def _answers() -> Iterator[None]:
    """The registry's errors as API answers."""
    try:
        yield
    except TopicClashError as exc:
        raise ApiError(400, "topic_clash", str(exc), field=exc.field) from None
    except DeviceValidationError as exc:
        raise ApiError(400, "invalid_device", str(exc), field=exc.field) from None
    except DeviceExistsError as exc:
        raise ApiError(409, "device_exists", str(exc)) from None
    except (DeviceNotFoundError, TokenNotFoundError) as exc:
        raise ApiError(404, "not_found", str(exc)) from None


async def _broker_agrees(
    runtime: Runtime,
    name: str,
    token: str | None = None,
    after: str = "the registry has the change: the same request again (or the next start) brings Mosquitto in step",
) -> None:
    """Cluster mode: make Mosquitto's dynamic-security client of device `name` match the registry (`token`:
    just issued, its new password) before answering; 502 naming Mosquitto's reason when it does not agree.
    Single-process mode (no external broker): nothing to do."""
    device_sync = runtime.engine.services.get("mosquitto-devices") if runtime.engine is not None else None
    if device_sync is None:
        return
    try:
        await device_sync.sync(name, token)
    except Exception as exc:  # noqa: BLE001 - any failure: the broker did not agree
        raise ApiError(
            502, "broker_refused", f"Mosquitto did not take the change of device {name!r}: {exc}; {after}"
        ) from None


def _restricted(request: Request) -> bool:
    """Developers and users manage only their own devices; administrators (and in-process callers) all."""
    return getattr(request.state, "role", None) not in (None, "administrator")


def _mine(request: Request, runtime: Runtime, name: str) -> None:
    """404 for a device the caller may not see (as if it did not exist)."""
    if not _restricted(request):
        return
    with _answers():
        owner = _registry(runtime).get(name).owner
    if owner != getattr(request.state, "user", None):
        raise ApiError(404, "not_found", f"no device named {name!r}")


def _check_rights(request: Request, runtime: Runtime, ontologies: Any) -> None:
    """A device gets no ontology right its creator does not hold (403, audited)."""
    permissions = runtime.engine.services.get("permissions") if runtime.engine is not None else None
    if permissions is None:
        return
    refusal = permissions.device_rights_refusal(
        getattr(request.state, "user", None), getattr(request.state, "role", None), ontologies
    )
    if refusal is not None:
        raise denied(request, refusal)


def _object(body: Any, allowed: set[str]) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", f"the body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError(
            400,
            "invalid_request",
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
        )
    return body


@router.post(
    "/devices", status_code=201, summary="Create a device; the answer holds its first token (shown once)"
)
async def create_device(
    runtime: RuntimeDep, request: Request, body: Annotated[Any, Body(examples=[_EXAMPLE])] = None
) -> dict:
    data = _object(body, _CREATE_KEYS)
    if "name" not in data:
        raise ApiError(400, "invalid_device", "name: required", field="name")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ApiError(
            400, "invalid_device", f"enabled: must be true or false, got {enabled!r}", field="enabled"
        )
    if "owner" in data and _restricted(request):
        raise denied(request, "only administrators choose a device's owner")
    _check_rights(request, runtime, data.get("ontologies"))
    with _answers():
        device, token = _registry(runtime).create(
            data["name"],
            data.get("ontologies", {}),
            data.get("topics", []),
            enabled,
            data.get("owner", getattr(request.state, "user", None)),
        )
    try:
        await _broker_agrees(runtime, device.name, token, "the device was not registered")
    except ApiError:
        _registry(runtime).delete(device.name)  # not on the broker: not registered either
        raise
    record(request, "device.create", device.name, detail={"ontologies": device.ontologies})
    return {**device.as_dict(), "token_id": token.split(".", 1)[0], "token": token}


@router.get("/devices", summary="Every device (token ids and state, no secrets)")
async def list_devices(request: Request, runtime: RuntimeDep) -> list[dict]:
    user = getattr(request.state, "user", None)
    return [d.as_dict() for d in _registry(runtime).list() if not _restricted(request) or d.owner == user]


@router.get("/devices/{name}", summary="One device")
async def get_device(name: str, request: Request, runtime: RuntimeDep) -> dict:
    _mine(request, runtime, name)
    with _answers():
        return _registry(runtime).get(name).as_dict()


@router.get("/devices/{name}/instances", summary="The device instances (clientPlatformInstance) seen joining")
async def device_instances(name: str, request: Request, runtime: RuntimeDep) -> list[dict]:
    _mine(request, runtime, name)
    with _answers():
        return _registry(runtime).instances(name)


@router.patch("/devices/{name}", summary="Change enabled, topics or ontologies; open sessions are dropped")
async def patch_device(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[Any, Body(examples=[{"enabled": False}])] = None,
) -> dict:
    data = _object(body, _CREATE_KEYS - {"name"})
    _mine(request, runtime, name)
    if "owner" in data and _restricted(request):
        raise denied(request, "only administrators choose a device's owner")
    _check_rights(request, runtime, data.get("ontologies"))
    with _answers():
        device = _registry(runtime).update(
            name,
            enabled=data.get("enabled"),
            topics=data.get("topics"),
            ontologies=data.get("ontologies"),
            owner=data.get("owner", ...),
        )
    await _broker_agrees(runtime, name)
    record(request, "device.change", name, detail=data)
    return device.as_dict()


@router.delete(
    "/devices/{name}", status_code=204, summary="Delete a device and its tokens; its sessions drop"
)
async def delete_device(name: str, request: Request, runtime: RuntimeDep) -> Response:
    _mine(request, runtime, name)
    with _answers():
        _registry(runtime).delete(name)
    await _broker_agrees(runtime, name)
    record(request, "device.delete", name)
    return Response(status_code=204)


@router.post(
    "/devices/{name}/tokens",
    status_code=201,
    summary='A new token (shown once); `{"rotate": true}` revokes the others',
)
async def add_token(
    name: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[Any, Body(examples=[{"rotate": True}])] = None,
) -> dict:
    data = _object(body, {"rotate"})
    _mine(request, runtime, name)
    rotate = data.get("rotate", False)
    if not isinstance(rotate, bool):
        raise ApiError(400, "invalid_request", f"rotate: must be true or false, got {rotate!r}")
    registry = _registry(runtime)
    with _answers():
        token_id, token = registry.add_token(name)
        revoked = registry.revoke_all(name, keep=token_id) if rotate else []
    await _broker_agrees(runtime, name, token)
    record(request, "device.token", name, detail={"token_id": token_id, "revoked": revoked})
    return {"name": name, "token_id": token_id, "token": token, "revoked": revoked}


@router.delete(
    "/devices/{name}/tokens/{token_id}",
    status_code=204,
    summary="Revoke a token; connections using it drop at once",
)
async def revoke_token(name: str, token_id: str, request: Request, runtime: RuntimeDep) -> Response:
    _mine(request, runtime, name)
    with _answers():
        _registry(runtime).revoke(name, token_id)
    await _broker_agrees(runtime, name)
    record(request, "device.revoke", name, detail={"token_id": token_id})
    return Response(status_code=204)
