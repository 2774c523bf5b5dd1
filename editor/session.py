"""Login state of a browser, and `editor_page`, a page that needs it.

A browser's session token is kept in this process's memory only, keyed by the id in NiceGUI's signed session
cookie: nothing is written to disk (NiceGUI's `app.storage.user` files would be), so a restart asks browsers to
log in again. The token is an ordinary auth token: a password change or a user's deletion ends the session.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from nicegui import app, ui
from starlette.requests import Request
from starlette.responses import RedirectResponse

from sofiaflow.editor.context import get_context

MAX_SESSIONS = 10_000
"""Past this many remembered browsers, those whose token is no longer valid are forgotten."""

_tokens: dict[str, str] = {}
_lock = threading.Lock()


def _browser_id() -> str:
    """The id NiceGUI keeps in this browser's signed session cookie."""
    return str(app.storage.browser["id"])


def _remember(browser: str, token: str) -> None:
    with _lock:
        _tokens[browser] = token
        crowded = len(_tokens) > MAX_SESSIONS
    if crowded:
        for other, held in list(_tokens.items()):
            if _user_of_token(held) is None:
                with _lock:
                    _tokens.pop(other, None)


def _user_of_token(token: str | None) -> str | None:
    from sofiaflow.runtime.errors import AuthError

    if not token:
        return None
    try:
        user, _scope = get_context().auth.token_info(token)
    except AuthError:
        return None
    return user


def current_user() -> str | None:
    """The logged-in user of this browser (its session token still valid), or None."""
    with _lock:
        token = _tokens.get(_browser_id())
    return _user_of_token(token)


def session_user(request: Request) -> str | None:
    """The editor user of the browser that sent `request` (any route of the app: the session cookie is
    signed with NiceGUI's storage secret), or None."""
    import itsdangerous
    from nicegui.storage import Storage

    cookie = request.cookies.get("session")
    if not cookie or Storage.secret is None:
        return None
    try:
        data = itsdangerous.TimestampSigner(str(Storage.secret)).unsign(cookie.encode("utf-8"))
        browser = json.loads(base64.b64decode(data)).get("id")
    except (itsdangerous.BadSignature, ValueError, AttributeError):
        return None
    with _lock:
        token = _tokens.get(str(browser))
    return _user_of_token(token)


def _client_address() -> str:
    """The address of the browser behind the current UI event ("" when unknown)."""
    try:
        return ui.context.client.ip or ""
    except Exception:  # noqa: BLE001 - no client in this context
        return ""


def current_role() -> str:
    """The role of the logged-in user (administrator, developer, user); "user" (read only) when unknown."""
    user = current_user()
    if not user:
        return "user"
    try:
        return get_context().auth.role_of(user)
    except Exception:  # noqa: BLE001 - no role recorded: read only
        return "user"


def log_in(username: str, password: str) -> str | None:
    """Check the credentials with the runtime's auth service: the same throttling as `POST /auth/token`, per
    (browser address, user name) and per address, so failures elsewhere do not lock this browser out.

    None when accepted (the browser's session then holds a token), else the reason.
    """
    if not username or not password:
        return "enter a username and a password"
    try:
        token, _lifetime = get_context().auth.issue_token(username, password, client=_client_address())
    except Exception as exc:  # noqa: BLE001 - AuthError, too many attempts: shown to the user
        return str(exc) or type(exc).__name__
    _remember(_browser_id(), token)
    return None


def log_out() -> None:
    """Forget and revoke this browser's session token."""
    with _lock:
        token = _tokens.pop(_browser_id(), None)
    if token:
        get_context().auth.revoke(token)


def login_redirect(request: Request) -> RedirectResponse:
    """A redirect to the login page that comes back to `request`'s page."""
    root = request.scope.get("root_path", "")
    back = (
        root + request.url.path.removeprefix(root) if request.url.path.startswith(root) else request.url.path
    )
    if request.url.query:
        back += "?" + request.url.query
    return RedirectResponse(f"{root}/login?redirect_to={urllib.parse.quote(back)}")


def editor_page(path: str, title: str = "sofiaflow") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`@ui.page(path)` that first sends browsers without a login to the login page.

    The page function may take `request: Request` and any of NiceGUI's page parameters.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        params = inspect.signature(func).parameters
        wants_request = "request" in params

        @functools.wraps(func)
        async def page(request: Request, **kwargs: Any) -> Any:
            if not current_user():
                return login_redirect(request)
            if wants_request:
                kwargs["request"] = request
            result = func(**kwargs)
            if inspect.isawaitable(result):
                result = await result
            return result

        sig = inspect.signature(func)
        new_params = [p for p in sig.parameters.values() if p.name != "request"]
        new_params.insert(
            0, inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
        )
        page.__signature__ = sig.replace(parameters=new_params)  # type: ignore[attr-defined]
        return ui.page(path, title=title)(page)

    return decorate
