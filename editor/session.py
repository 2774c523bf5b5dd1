"""Login state of a browser (NiceGUI's `app.storage.user`), and `editor_page`, a page that needs it."""

from __future__ import annotations

import functools
import inspect
import urllib.parse
from collections.abc import Callable
from typing import Any

from nicegui import app, ui
from starlette.requests import Request
from starlette.responses import RedirectResponse

from .context import get_context

TOKEN_KEY = "sofiaflow_token"


def current_user() -> str | None:
    """The logged-in user of this browser (its session token still valid), or None."""
    from runtime.errors import AuthError

    token = app.storage.user.get(TOKEN_KEY)
    if not token:
        return None
    try:
        user, _scope = get_context().auth.token_info(token)
    except AuthError:
        return None
    return user


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
    """Check the credentials with the runtime's auth service (same throttling as `POST /auth/token`).

    None when accepted (the browser's session then holds a token), else the reason.
    """
    if not username or not password:
        return "enter a username and a password"
    try:
        token, _lifetime = get_context().auth.issue_token(username, password, client="editor")
    except Exception as exc:  # noqa: BLE001 - AuthError, too many attempts: shown to the user
        return str(exc) or type(exc).__name__
    app.storage.user[TOKEN_KEY] = token
    return None


def log_out() -> None:
    """Forget and revoke this browser's session token."""
    token = app.storage.user.pop(TOKEN_KEY, None)
    if token:
        get_context().auth.revoke(token)


def login_redirect(request: Request) -> RedirectResponse:
    """A redirect to the login page that comes back to `request`'s page."""
    root = request.scope.get("root_path", "")
    back = root + request.url.path.removeprefix(root) if request.url.path.startswith(root) else request.url.path
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
        new_params.insert(0, inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request))
        page.__signature__ = sig.replace(parameters=new_params)  # type: ignore[attr-defined]
        return ui.page(path, title=title)(page)

    return decorate
