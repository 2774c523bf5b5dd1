"""Shared pieces of the admin API: the error type, and dependencies for the runtime and the caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..auth import AuthService
from ..errors import AuthError, Problem
from ..runtime import Runtime


class ApiError(Exception):
    """An answer with a status and a JSON body `{"code", "message", ...extra}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def invalid_flows(problems: list[Problem]) -> ApiError:
    """400 `invalid_flows` listing every problem."""
    return ApiError(400, "invalid_flows", f"{len(problems)} problem(s)", problems=[p.as_dict() for p in problems])


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    if runtime.deployer is None:
        raise ApiError(503, "not_started", "the runtime is not started")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
"""A route parameter that receives the started Runtime (503 when it is not started)."""


def get_auth(request: Request) -> AuthService:
    """The app's AuthService, made from the runtime's config DB on first use."""
    auth = request.app.state.auth
    if auth is None:
        runtime = get_runtime(request)
        auth = request.app.state.auth = AuthService(runtime.db, runtime.settings)
    return auth


bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/token")


def require_user(request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    """The user of a valid `Authorization: Bearer` token; 401 otherwise, 403 for writes with scope `read`."""
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if creds is None:
        raise ApiError(401, "unauthorized", "missing 'Authorization: Bearer <token>' header; "
                       "get a token from POST /auth/token", headers=unauthorized, error="unauthorized")
    try:
        user, scope = get_auth(request).token_info(creds.credentials)
    except AuthError as exc:
        raise ApiError(401, "unauthorized", f"invalid token: {exc}", headers=unauthorized,
                       error="unauthorized") from None
    if scope == "read" and request.method not in ("GET", "HEAD", "OPTIONS"):
        raise ApiError(403, "forbidden", f"the token of {user!r} has scope 'read'; {request.method} needs scope '*'")
    request.state.user, request.state.scope = user, scope
    return user
