"""`SecurityHeaders`: an ASGI middleware adding anti-framing, no-sniff, referrer and content-security headers to
what the admin app answers (API, editor, docs), but not to the flows' own `http in` responses.

The editor's policy allows what NiceGUI needs (its inline start-up script, Vue's runtime template compiler,
inline styles, its websocket); nothing may load from elsewhere or frame the pages.
"""

from __future__ import annotations

from typing import Any

FLOW_ENDPOINT = "sofiaflow.flow_endpoint"
"""Scope key set by the app when a request is handed to the flows' endpoints: their answers are left alone."""

PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self' ws: wss:; media-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
"""The Content-Security-Policy of every admin answer (editor pages, JSON, Swagger UI)."""

DOCS_POLICY = (
    PAGE_POLICY.replace("script-src 'self'", "script-src 'self' https://cdn.jsdelivr.net")
    .replace("style-src 'self'", "style-src 'self' https://cdn.jsdelivr.net")
    .replace("img-src 'self'", "img-src 'self' https://fastapi.tiangolo.com")
)
"""`/docs` and `/redoc` load FastAPI's Swagger UI and ReDoc from their CDN."""

DOCS_PATHS = ("/docs", "/redoc")

HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


class SecurityHeaders:
    """See the module docstring."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = (DOCS_POLICY if scope.get("path") in DOCS_PATHS else PAGE_POLICY).encode()

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start" and not scope.get(FLOW_ENDPOINT):
                present = {name.lower() for name, _ in message.get("headers", [])}
                added = [
                    (n, v) for n, v in (*HEADERS, (b"content-security-policy", policy)) if n not in present
                ]
                message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
