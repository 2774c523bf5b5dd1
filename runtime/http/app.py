"""The admin HTTP API as a FastAPI app over a `Runtime` (Node-RED's admin API, with bearer tokens).

The app does not start or stop the runtime: the caller owns both lifecycles (see `sofiaflow.runtime.server`).
Every route needs `Authorization: Bearer <token>` except `GET /auth/login` and `POST /auth/token`; the API's
own description (/openapi.json, /docs, /redoc) also opens with the browser's editor session.
"""

from __future__ import annotations

import gc
import logging
import secrets
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.exceptions import HTTPException as StarletteHTTPException

from sofiaflow.runtime.api_manager.routes import consumer_calls, is_consumer_call
from sofiaflow.runtime.api_manager.routes import install as install_api_manager
from sofiaflow.runtime.errors import AuthError, SofiaflowError
from sofiaflow.runtime.http import (
    admin_flows,
    alarm_routes,
    auth_routes,
    cluster_routes,
    comms,
    context_routes,
    device_routes,
    info_routes,
    metrics_routes,
    node_actions,
    ontology_data_routes,
    ontology_routes,
    palette,
    partition_routes,
    user_routes,
)
from sofiaflow.runtime.http.deps import ApiError, require_user
from sofiaflow.runtime.http.error_status import status_of
from sofiaflow.runtime.http.limits import RequestLimits
from sofiaflow.runtime.http.palette import module_version
from sofiaflow.runtime.http.security_headers import FLOW_ENDPOINT, SecurityHeaders
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.security.user_holdings import attach as attach_holdings

log = logging.getLogger("sofiaflow.http")

DESCRIPTION = """Node-RED-compatible admin API of sofiaflow.

Get a token with `POST /auth/token` (form or JSON: `grant_type=password`, `client_id=node-red-admin`,
`username`, `password`) and send it as `Authorization: Bearer <token>`. Errors answer
`{"code", "message", ...}`; refused flow sets list every problem in `problems`."""


class AdminApp(FastAPI):
    """FastAPI serving the API Manager's consumer calls (`/api-manager/server/api/...`) ahead of its middleware
    stack and router, with the same door checks (see `consumer_calls`): the stack (error and exception
    middleware, sessions, body limits, routing) cost more than the call itself. Every other request is FastAPI's."""

    api_calls: Any = None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.api_calls is not None and scope["type"] == "http" and is_consumer_call(scope):
            scope["app"] = self
            await self.api_calls(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(runtime: Runtime, auth: AuthService | None = None) -> FastAPI:
    """The admin API for `runtime` (already started, or started before the first request)."""
    app = AdminApp(
        title="sofiaflow admin API",
        version=module_version("sofiaflow"),
        description=DESCRIPTION,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.runtime = runtime
    app.state.auth = auth
    if auth is not None:
        attach_holdings(auth, runtime)  # deleting a user releases what they owned and held
    app.include_router(auth_routes.router)
    app.include_router(comms.router)  # authenticates inside the socket, as Node-RED's
    guarded = [Depends(require_user)]
    for module in (
        admin_flows,
        palette,
        info_routes,
        context_routes,
        node_actions,
        device_routes,
        ontology_routes,
        ontology_data_routes,
        alarm_routes,
    ):
        app.include_router(module.router, dependencies=guarded)
    app.include_router(metrics_routes.router)  # its own access check: token, or public by setting
    app.include_router(user_routes.router)  # administrators only
    app.include_router(cluster_routes.router)  # GET /cluster: administrators only
    app.include_router(cluster_routes.health_router)  # GET /cluster/health: no token (load balancers)
    app.include_router(partition_routes.router)  # dead letters: administrators and the flows' owners
    install_api_manager(app)  # API Manager: consumer calls by API key, catalogue, Swagger UI, /api-keys
    app.api_calls = consumer_calls()  # consumer calls: ahead of the middleware below, with its checks
    _install_docs(app)  # /openapi.json, /docs, /redoc: for logged-in callers only
    app.add_middleware(RequestLimits)  # 413 over 5 MiB, 400 for JSON nested deeper than 64 levels
    app.add_middleware(SecurityHeaders)  # no framing, no sniffing, a CSP; not on the flows' own answers
    _install_error_handlers(app)
    app.router.default = _node_endpoints(runtime)  # what no admin route serves goes to the flows
    app.router.on_startup.append(freeze_startup_heap)
    return app


def freeze_startup_heap() -> None:
    """When the server starts: what startup built (imports, the runtime and its flows, this app) is left out of
    every later garbage collection (`gc.freeze`), after one last collection. A full collection walked that heap,
    pausing every answer for 50-150 ms while loaded: the API Manager's p99."""
    gc.collect()
    gc.freeze()


EDITOR_HOME = "/editor/"
"""Where `GET /` sends browsers when the editor is mounted and no flow serves `/`."""


def _to_editor(scope: dict, routes: Any) -> bool:
    """Whether this request is a browser's `GET /` that should land in the editor: the editor is mounted (it
    sets `app.state.session_user`) and no flow's `http in` serves `/`."""
    if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
        return False
    root_path = scope.get("root_path") or ""
    path = (
        scope["path"][len(root_path) :]
        if root_path and scope["path"].startswith(root_path)
        else scope["path"]
    )
    if path != "/":
        return False
    app = scope.get("app")
    if getattr(getattr(app, "state", None), "session_user", None) is None:
        return False
    if routes is None:
        return True
    local = routes._local(scope)  # relative to http_node_root; None: outside it
    return local is None or routes.find("get", local)[0] is None


def _node_endpoints(runtime: Runtime) -> Any:
    """The flows' own endpoints (`http in`, websocket listeners): the runtime's "http" service. `GET /` goes to
    the editor when it is mounted and no flow serves `/`."""

    async def dispatch(scope: dict, receive: Any, send: Any) -> None:
        scope[FLOW_ENDPOINT] = True
        routes = runtime.engine.services.get("http") if runtime.engine is not None else None
        if _to_editor(scope, routes):
            await RedirectResponse((scope.get("root_path") or "") + EDITOR_HOME, 307)(scope, receive, send)
            return
        if routes is None:
            if scope["type"] == "http":
                response = JSONResponse({"code": "not_found", "message": f"no route {scope['path']}"}, 404)
                await response(scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        await routes(scope, receive, send)

    return dispatch


def docs_user(request: Request) -> str:
    """Who may read the API's description: a valid bearer token's user, else the user of the browser's editor
    session (`app.state.session_user(request)`, set by the editor when mounted); 401 otherwise."""
    if request.headers.get("authorization"):
        creds = HTTPAuthorizationCredentials(
            scheme="Bearer", credentials=request.headers["authorization"].partition(" ")[2].strip()
        )
        return require_user(request, creds)
    session_user = getattr(request.app.state, "session_user", None)
    user = session_user(request) if session_user is not None else None
    if not user:
        raise ApiError(
            401,
            "unauthorized",
            "the API description is for logged-in users: send "
            "'Authorization: Bearer <token>' or log in to the editor first",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


def _install_docs(app: FastAPI) -> None:
    """FastAPI's /openapi.json, /docs and /redoc, behind `docs_user` (the API Manager's per-API documents and
    Swagger UI stay public: they are its catalogue)."""
    guard = [Depends(docs_user)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=guard)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=root + "/openapi.json", title=f"{app.title} - Swagger UI")

    @app.get("/redoc", include_in_schema=False, dependencies=guard)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(openapi_url=root + "/openapi.json", title=f"{app.title} - ReDoc")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            {"code": code, "message": str(exc.detail)},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
            for err in exc.errors()
        ]
        text = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse(
            {"code": "invalid_request", "message": f"invalid request: {text}", "problems": problems},
            status_code=400,
        )

    @app.exception_handler(SofiaflowError)
    async def domain_error(request: Request, exc: SofiaflowError) -> JSONResponse:
        """An error the route let escape: answered by its base (error_status), else as unexpected."""
        mapped = status_of(exc)
        if mapped is None:
            return await unexpected(request, exc)
        status, code = mapped
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, AuthError) else None
        return JSONResponse({"code": code, "message": str(exc)}, status_code=status, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the text of an unexpected error may quote SQL, paths or values: it goes to the log, not to the caller
        incident = secrets.token_hex(6)
        log.exception("%s %s failed (incident %s)", request.method, request.url.path, incident)
        return JSONResponse(
            {
                "code": "unexpected_error",
                "incident": incident,
                "message": f"internal error (incident {incident}, details in the server log)",
            },
            status_code=500,
        )
