"""`/users` (administrators manage users and roles) and `/audit` (administrators read the audit log).

Roles: administrator (everything), developer (builds and deploys), user (reads only). Every change is in
the audit log; so is every refusal.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.http.deps import ApiError, RuntimeDep, get_auth, record, require_administrator
from sofiaflow.runtime.security.auth import ROLES

router = APIRouter(tags=["users"], dependencies=[Depends(require_administrator)])


def _text(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(400, "invalid_user", f"{key}: required, a non-empty string", field=key)
    if len(value) > 200:
        raise ApiError(400, "invalid_user", f"{key}: at most 200 characters", field=key)
    return value


def _object(body: Any, allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_user", "the body must be a JSON object")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            400,
            "invalid_user",
            f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}",
            field=unknown[0],
        )
    return body


def _check_role(body: dict[str, Any], required: bool = False) -> str | None:
    """The body's role; absent means None, null only where the role may be left out (PATCH: unchanged)."""
    if "role" not in body:
        return None
    role = body["role"]
    if role is None and not required:
        return None
    if role not in ROLES:
        raise ApiError(400, "invalid_user", f"role: one of {', '.join(ROLES)}, got {role!r}", field="role")
    return role


@router.get("/users", summary="Every user and role")
async def list_users(request: Request) -> list[dict]:
    return get_auth(request).users()


@router.post("/users", status_code=201, summary="Create a user with a role")
async def create_user(
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[
        Any, Body(examples=[{"username": "ana", "password": "s3cret!", "role": "developer"}])
    ] = None,
) -> dict:
    body = _object(body, ("username", "password", "role"))
    username, password = _text(body, "username"), _text(body, "password")
    role = _check_role(body, required=True) or "developer"
    try:
        get_auth(request).add_user(username, password, role)
    except AuthError as exc:
        raise ApiError(409, "user_exists", str(exc)) from None
    record(request, "user.create", username, detail={"role": role})
    return {"username": username, "role": role}


@router.patch("/users/{username}", summary="Change a user's role or password")
async def change_user(
    username: str,
    request: Request,
    runtime: RuntimeDep,
    body: Annotated[Any, Body(examples=[{"role": "user"}])] = None,
) -> dict:
    body = _object(body, ("role", "password"))
    auth = get_auth(request)
    role, password = _check_role(body), _text(body, "password", required=False)
    try:
        auth.role_of(username)
    except AuthError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    try:
        if role is not None:
            auth.set_role(username, role)
        if password is not None:
            auth.set_password(username, password)
    except AuthError as exc:
        raise ApiError(409, "refused", str(exc)) from None
    permissions = runtime.engine.services.get("permissions")
    if permissions is not None:
        permissions.forget()
    record(request, "user.change", username, detail={"role": role, "password": password is not None})
    return {"username": username, "role": auth.role_of(username)}


@router.delete(
    "/users/{username}",
    status_code=204,
    summary="Delete a user: tokens, grants, shares and API keys go; what they owned passes to the "
    "administrators",
)
async def delete_user(username: str, request: Request, runtime: RuntimeDep) -> Response:
    auth = get_auth(request)
    try:
        auth.role_of(username)
    except AuthError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    try:
        auth.delete_user(username)
    except AuthError as exc:
        raise ApiError(409, "refused", str(exc)) from None
    permissions = runtime.engine.services.get("permissions")
    if permissions is not None:
        permissions.forget()
    record(request, "user.delete", username)
    return Response(status_code=204)


@router.get("/audit", summary="The audit log, newest first")
async def audit(
    runtime: RuntimeDep,
    user: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict]:
    return runtime.audit.entries(user, action, outcome, limit)
