"""The admin HTTP API as a FastAPI app over a `Runtime` (Node-RED's admin API, with bearer tokens).

The app does not start or stop the runtime: the caller owns both lifecycles (see `runtime.server`).
Every route needs `Authorization: Bearer <token>` except `GET /auth/login` and `POST /auth/token`.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..api_manager.routes import install as install_api_manager
from ..auth import AuthService
from ..runtime import Runtime
from . import (
    admin_flows,
    auth_routes,
    comms,
    context_routes,
    device_routes,
    info_routes,
    metrics_routes,
    node_actions,
    ontology_data_routes,
    ontology_routes,
    palette,
    user_routes,
)
from .deps import ApiError, require_user
from .limits import RequestLimits
from .palette import module_version

log = logging.getLogger("sofiaflow.http")

DESCRIPTION = """Node-RED-compatible admin API of sofiaflow.

Get a token with `POST /auth/token` (form or JSON: `grant_type=password`, `client_id=node-red-admin`,
`username`, `password`) and send it as `Authorization: Bearer <token>`. Errors answer
`{"code", "message", ...}`; refused flow sets list every problem in `problems`."""


def create_app(runtime: Runtime, auth: AuthService | None = None) -> FastAPI:
    """The admin API for `runtime` (already started, or started before the first request)."""
    app = FastAPI(title="sofiaflow admin API", version=module_version("sofiaflow"), description=DESCRIPTION)
    app.state.runtime = runtime
    app.state.auth = auth
    app.include_router(auth_routes.router)
    app.include_router(comms.router)  # authenticates inside the socket, as Node-RED's
    guarded = [Depends(require_user)]
    for module in (admin_flows, palette, info_routes, context_routes, node_actions, device_routes, ontology_routes,
                   ontology_data_routes):
        app.include_router(module.router, dependencies=guarded)
    app.include_router(metrics_routes.router)  # its own access check: token, or public by setting
    app.include_router(user_routes.router)  # administrators only
    install_api_manager(app)  # API Manager: consumer calls by API key, catalogue, Swagger UI, /api-keys
    app.add_middleware(RequestLimits)  # 413 over 5 MiB, 400 for JSON nested deeper than 64 levels
    _install_error_handlers(app)
    app.router.default = _node_endpoints(runtime)  # what no admin route serves goes to the flows
    return app


def _node_endpoints(runtime: Runtime) -> Any:
    """The flows' own endpoints (`http in`, websocket listeners): the runtime's "http" service."""

    async def dispatch(scope: dict, receive: Any, send: Any) -> None:
        routes = runtime.engine.services.get("http") if runtime.engine is not None else None
        if routes is None:
            if scope["type"] == "http":
                response = JSONResponse({"code": "not_found", "message": f"no route {scope['path']}"}, 404)
                await response(scope, receive, send)
            elif scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        await routes(scope, receive, send)

    return dispatch


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {400: "bad_request", 404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"code": code, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"field": ".".join(str(p) for p in err.get("loc", ())), "message": err.get("msg", "")}
                    for err in exc.errors()]
        text = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse({"code": "invalid_request", "message": f"invalid request: {text}", "problems": problems},
                            status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"code": "unexpected_error", "message": f"{type(exc).__name__}: {exc}"}, status_code=500)
