"""`/auth/*`: login prompts, password-grant tokens and revocation (Node-RED's adminAuth flow)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.http.deps import denied, get_auth, require_user
from sofiaflow.runtime.security.auth import TooManyAttemptsError

router = APIRouter(tags=["auth"])

CLIENTS = ("node-red-admin", "node-red-editor")

_TOKEN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            ct: {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "client_id": {"type": "string", "enum": list(CLIENTS)},
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "scope": {"type": "string", "enum": ["*", "read"], "default": "*"},
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            }
            for ct in ("application/x-www-form-urlencoded", "application/json")
        },
    }
}


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description, "message": description},
        status_code=status,
        headers=headers,
    )


async def _body(request: Request) -> dict[str, Any]:
    """A JSON or form body as a dict; ValueError when it is neither."""
    if "application/json" in request.headers.get("content-type", ""):
        try:
            data = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            raise ValueError(f"the body is not valid JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/auth/login", summary="How to log in")
async def login_prompts() -> dict[str, Any]:
    return {
        "type": "credentials",
        "prompts": [
            {"id": "username", "type": "text", "label": "Username"},
            {"id": "password", "type": "password", "label": "Password"},
        ],
    }


@router.post(
    "/auth/token", summary="Exchange username and password for a bearer token", openapi_extra=_TOKEN_BODY
)
async def token(request: Request) -> Any:
    try:
        body = await _body(request)
    except ValueError as exc:
        return _oauth_error(400, "invalid_request", str(exc))
    client_id = body.get("client_id")
    if client_id is not None and client_id not in CLIENTS:
        return _oauth_error(
            401, "invalid_client", f"unknown client_id {client_id!r}; use one of {', '.join(CLIENTS)}"
        )
    grant = body.get("grant_type", "password")
    if grant != "password":
        return _oauth_error(
            400, "unsupported_grant_type", f"grant_type {grant!r} is not supported; use 'password'"
        )
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return _oauth_error(400, "invalid_request", "'username' and 'password' are required")
    scope = body.get("scope") or "*"
    client = request.client.host if request.client else ""
    auth = get_auth(request)
    try:
        access, expires_in = await asyncio.to_thread(auth.issue_token, username, password, scope, client)
    except TooManyAttemptsError as exc:
        _failed_login(request, username, client, "too many attempts")
        return _oauth_error(
            429, "too_many_attempts", str(exc), {"Retry-After": str(int(exc.retry_after) + 1)}
        )
    except AuthError as exc:
        _failed_login(request, username, client, str(exc))
        return _oauth_error(401, "unauthorized", str(exc))
    return {"access_token": access, "expires_in": expires_in, "token_type": "Bearer"}


def _failed_login(request: Request, username: str, client: str, reason: str) -> None:
    """Audit a refused login under the name it tried (at most the throttle's few per address and minute)."""
    audit = getattr(request.app.state.runtime, "audit", None)
    if audit is not None:
        audit.record(username[:200], "auth.login", client or None, "denied", {"reason": reason})


@router.post("/auth/revoke", summary="Revoke a token (the one in the body, else the caller's own)")
async def revoke(request: Request, user: Annotated[str, Depends(require_user)]) -> Response:
    """Any role and scope may revoke its own tokens; another user's token only an administrator with scope '*'."""
    try:
        body = await _body(request)
    except ValueError:
        body = {}
    auth = get_auth(request)
    target = body.get("token")
    if not isinstance(target, str) or not target:
        target = request.headers.get("authorization", "").partition(" ")[2].strip()
    try:
        holder = auth.token_info(target)[0]
    except AuthError:
        return Response(status_code=200)  # unknown or expired: nothing to revoke
    if holder != user and (request.state.role != "administrator" or request.state.scope != "*"):
        raise denied(request, f"{user!r} may revoke only their own tokens")
    auth.revoke(target)
    return Response(status_code=200)
