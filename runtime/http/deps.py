"""Shared pieces of the admin API: the error type, and dependencies for the runtime and the caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sofiaflow.runtime.errors import AuthError, Problem, SofiaflowError
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.security.user_holdings import attach as attach_holdings


class ApiError(SofiaflowError):
    """An answer with a status and a JSON body `{"code", "message", ...extra}`."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


def invalid_flows(problems: list[Problem]) -> ApiError:
    """400 `invalid_flows` listing every problem."""
    return ApiError(
        400, "invalid_flows", f"{len(problems)} problem(s)", problems=[p.as_dict() for p in problems]
    )


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
        attach_holdings(auth, runtime)
    return auth


READ_ONLY_WRITES = frozenset({("POST", "/ontologies/{name}/validate")})
"""(method, route path) of writes that change nothing: a read-scope token and the 'user' role may call them."""
SELF_SERVICE_WRITES = frozenset({("POST", "/auth/revoke")})
"""(method, route path) of writes on the caller's own session: allowed for every scope and role."""


def route_key(request: Request) -> tuple[str, str]:
    """(method, path template of the matched route), e.g. ("POST", "/ontologies/{name}/validate")."""
    route = request.scope.get("route")
    return request.method, getattr(route, "path", None) or request.url.path


def is_write(request: Request) -> bool:
    """Whether the request may change something: not a read method and not one of `READ_ONLY_WRITES`."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return False
    key = route_key(request)
    return key not in READ_ONLY_WRITES and key not in SELF_SERVICE_WRITES


bearer = HTTPBearer(auto_error=False, description="A token from POST /auth/token")


def require_user(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """The user of a valid `Authorization: Bearer` token; 401 otherwise, 403 for writes with scope `read`."""
    unauthorized = {"WWW-Authenticate": "Bearer"}
    if creds is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing 'Authorization: Bearer <token>' header; get a token from POST /auth/token",
            headers=unauthorized,
            error="unauthorized",
        )
    try:
        user, scope, role = get_auth(request).identity(creds.credentials)
    except AuthError as exc:
        raise ApiError(
            401, "unauthorized", f"invalid token: {exc}", headers=unauthorized, error="unauthorized"
        ) from None
    request.state.user, request.state.scope, request.state.role = user, scope, role
    if is_write(request):
        if scope == "read":
            raise denied(request, f"the token of {user!r} has scope 'read'; {request.method} needs scope '*'")
        if role == "user":
            raise denied(
                request,
                f"{user!r} has the role 'user', which only reads; {request.method} "
                f"{request.url.path} needs 'developer' or 'administrator'",
            )
    return user


def record(
    request: Request, action: str, target: str | None = None, outcome: str = "ok", detail: Any = None
) -> None:
    """Add an entry for the caller to the runtime's audit log (when it keeps one)."""
    audit = getattr(request.app.state.runtime, "audit", None)
    if audit is not None:
        audit.record(getattr(request.state, "user", None), action, target, outcome, detail)


def denied(request: Request, message: str) -> ApiError:
    """A 403 answer, recorded in the audit log with who asked for what."""
    record(request, f"{request.method} {request.url.path}", outcome="denied", detail={"message": message})
    return ApiError(403, "forbidden", message)


def require_administrator(request: Request, user: Annotated[str, Depends(require_user)]) -> str:
    """The caller, who must be an administrator (403, audited, otherwise)."""
    if request.state.role != "administrator":
        raise denied(
            request,
            f"{user!r} is a {request.state.role}; {request.method} {request.url.path} is for administrators",
        )
    return user
