"""The API Manager over HTTP, installed into the admin app with `install(app)`:

- `/api-manager/server/api/v{N}/{api}/{path}`: consumer calls (API key in `X-OP-APIKey`), and each API's
  OpenAPI document at `.../v{N}/{api}/openapi.json`;
- `/api-manager/catalog`: the APIs a caller may see (JSON); `/api-manager/swagger`: Swagger UI over them, its
  files served from the swagger-ui-bundle package (no CDN);
- `/api-keys`: a signed-in user creates (shown once), lists and revokes their API keys;
- `/api-manager/stats`: calls per API and key (administrators).

Published and deprecated APIs are visible to everyone; development ones only to their owner and administrators
(by bearer token or API key).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.staticfiles import StaticFiles

from sofiaflow.runtime.api_manager.keys import UnknownKeyError
from sofiaflow.runtime.api_manager.openapi import BASE, base_url, document, document_url
from sofiaflow.runtime.api_manager.responses import json_response
from sofiaflow.runtime.api_manager.service import ApiManager
from sofiaflow.runtime.api_manager.swagger import STATIC_URL, swagger_page, swagger_ui_directory
from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, bearer, denied, get_auth, require_administrator
from sofiaflow.runtime.http.limits import RequestLimits
from sofiaflow.runtime.http.security_headers import SecurityHeaders

log = logging.getLogger("sofiaflow.api_manager.http")

SERVICE = "api-manager"
router = APIRouter(tags=["API Manager"])


def install(app: FastAPI) -> None:
    """Add the API Manager's routes, consumer calls and Swagger UI files to the admin app."""
    app.include_router(router)
    app.mount(BASE, _calls, name="api-manager-calls")
    calls = app.router.routes.pop()
    app.router.routes.insert(0, calls)  # first: consumer calls skip matching every admin route
    app.mount(STATIC_URL, StaticFiles(directory=swagger_ui_directory()), name="api-manager-swagger")


def _manager_of(runtime: Any) -> ApiManager | None:
    return runtime.engine.services.get(SERVICE) if runtime.engine is not None else None


def manager_dep(runtime: RuntimeDep) -> ApiManager:
    manager = _manager_of(runtime)
    if manager is None:
        raise ApiError(503, "unavailable", "the API Manager service is not running")
    return manager


ManagerDep = Annotated[ApiManager, Depends(manager_dep)]


# ----- who is asking -----------------------------------------------------------------------------------------------
def _caller(request: Request, manager: ApiManager) -> tuple[str | None, str | None]:
    """(user, role) from an API key or a bearer token; (None, None) for anonymous or invalid credentials."""
    key = request.headers.get("x-op-apikey") or request.headers.get("x-sofia2-apikey")
    if key:
        try:
            user = manager.keys.user_of(key).user
            return user, manager.role(user)
        except UnknownKeyError:
            return None, None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            user, _scope, role = get_auth(request).identity(token.strip())
            return user, role
        except (AuthError, ApiError):
            return None, None
    return None, None


def _visible(request: Request, manager: ApiManager) -> list[tuple[Any, list[Any]]]:
    user, role = _caller(request, manager)
    return [(spec, eps) for spec, eps in manager.apis() if manager.may_use(spec, user, role)]


# ----- consumer calls (a bare ASGI app: no router or dependency work on the hot path) ---------------------------
def is_consumer_call(scope: dict) -> bool:
    """Whether this HTTP request is a consumer call: its path (past `root_path`) is under `BASE`."""
    path = scope["path"]
    root_path = scope.get("root_path")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path.startswith(BASE) and (len(path) == len(BASE) or path[len(BASE)] == "/")


def consumer_calls() -> Any:
    """The ASGI app an admin app serves consumer calls with ahead of its own middleware and router (see
    `sofiaflow.runtime.http.app.AdminApp`): the admin app's door checks (`RequestLimits`: 413 over 5 MiB, 400 for
    JSON nested too deep; `SecurityHeaders`) around `_calls`, which answers every error itself (500 JSON for an
    unexpected one) and finds the runtime through `scope["app"]`."""
    return SecurityHeaders(RequestLimits(_calls))


async def _calls(scope: dict, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        return
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    manager = _manager_of(runtime) if runtime is not None else None
    if manager is None:
        response = json_response(
            503, {"code": "unavailable", "message": "the API Manager service is not running"}
        )
    else:
        path = scope["path"]
        at = path.find(BASE)
        rest = path[at + len(BASE) :] if at >= 0 else path
        try:
            if scope["method"] in ("GET", "HEAD") and rest.endswith("/openapi.json"):
                response = _document(Request(scope, receive), manager, rest)
            else:
                response = await manager.handle(scope, receive, rest)
        except Exception as exc:  # noqa: BLE001 - one failed call must not break the server
            log.exception("%s %s failed", scope["method"], path)
            response = json_response(
                500, {"code": "unexpected_error", "message": f"{type(exc).__name__}: {exc}"}
            )
    await response(scope, receive, send)


def _document(request: Request, manager: ApiManager, rest: str) -> Response:
    parts = rest.strip("/").split("/")
    found = None
    if len(parts) == 3 and parts[0][:1] == "v" and parts[0][1:].isascii() and parts[0][1:].isdigit():
        found = manager.find(parts[1], int(parts[0][1:]))
    if found is not None:
        user, role = _caller(request, manager)
        if not manager.may_use(found[0], user, role):
            found = None
    if found is None:
        return json_response(
            404,
            {
                "code": "not_found",
                "message": f"no API document at {request.url.path}; see /api-manager/catalog",
            },
        )
    return json_response(200, document(*found))


# ----- catalogue, Swagger UI, stats -----------------------------------------------------------------------------
@router.get(
    "/api-manager/catalog", summary="The APIs you may see: name, version, state, operations, document"
)
async def catalog(request: Request, manager: ManagerDep) -> list[dict]:
    return [
        {
            "name": spec.name,
            "version": spec.version,
            "description": spec.description,
            "state": spec.state,
            "owner": spec.owner,
            "quota": spec.quota,
            "url": base_url(spec),
            "openapi": document_url(spec),
            "operations": [
                {"method": e.method, "path": e.path, "operation": e.operation, "ontology": e.ontology}
                for e in eps
            ],
        }
        for spec, eps in _visible(request, manager)
    ]


@router.get("/api-manager/swagger", response_class=HTMLResponse, summary="Swagger UI over every visible API")
async def swagger(request: Request, manager: ManagerDep) -> HTMLResponse:
    urls = [{"url": document_url(spec), "name": spec.label} for spec, _ in _visible(request, manager)]
    return HTMLResponse(swagger_page(urls))


@router.get(
    "/api-manager/stats",
    summary="Calls per API and key, by status (administrators)",
    dependencies=[Depends(require_administrator)],
)
async def stats(manager: ManagerDep) -> list[dict]:
    return manager.stats()


# ----- API keys ---------------------------------------------------------------------------------------------------
def key_holder(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """The signed-in caller (any role: consumers hold the role 'user'); a read-only token may only list."""
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if creds is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing 'Authorization: Bearer <token>' header; get a token from POST /auth/token",
            headers=unauthorized,
        )
    try:
        user, scope, role = get_auth(request).identity(creds.credentials)
    except AuthError as exc:
        raise ApiError(401, "unauthorized", f"invalid token: {exc}", headers=unauthorized) from None
    request.state.user, request.state.scope, request.state.role = user, scope, role
    if request.method != "GET" and scope == "read":
        raise denied(request, f"the token of {user!r} has scope 'read'; {request.method} needs scope '*'")
    return user


KeyHolder = Annotated[str, Depends(key_holder)]


@router.post(
    "/api-keys",
    status_code=201,
    tags=["API keys"],
    summary="Create an API key for yourself (the key is shown only in this answer)",
)
async def create_key(
    user: KeyHolder,
    runtime: RuntimeDep,
    manager: ManagerDep,
    body: Annotated[Any, Body(examples=[{"label": "dashboard"}])] = None,
) -> dict:
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - {"label"}:
        raise ApiError(400, "invalid_key", 'the body must be {"label": "<what the key is for>"} or empty')
    label = body.get("label", "")
    try:
        created = manager.keys.create(user, label)
    except ValueError as exc:
        raise ApiError(400, "invalid_key", str(exc), field="label") from None
    runtime.audit.record(user, "api-key.create", created["id"], detail={"label": label})
    return created


@router.get(
    "/api-keys", tags=["API keys"], summary="Your API keys (administrators: everyone's with all=true)"
)
async def list_keys(request: Request, user: KeyHolder, manager: ManagerDep, all: bool = False) -> list[dict]:
    if all and request.state.role != "administrator":
        raise denied(request, f"{user!r} is a {request.state.role}; only administrators list every key")
    return manager.keys.list(None if all else user)


@router.delete(
    "/api-keys/{key_id}",
    status_code=204,
    tags=["API keys"],
    summary="Revoke one of your keys (administrators: anyone's)",
)
async def revoke_key(
    key_id: str, request: Request, user: KeyHolder, runtime: RuntimeDep, manager: ManagerDep
) -> Response:
    owner = manager.keys.owner_of_id(key_id)
    if owner is None:
        raise ApiError(404, "not_found", f"no API key {key_id!r}")
    if owner != user and request.state.role != "administrator":
        raise denied(request, f"API key {key_id!r} belongs to another user")
    if not manager.keys.revoke(key_id):
        raise ApiError(404, "not_found", f"API key {key_id!r} is already revoked")
    runtime.audit.record(user, "api-key.revoke", key_id, detail={"owner": owner})
    return Response(status_code=204)
