"""Service "http": the endpoints flows serve (`http in` routes, websocket listeners), as one ASGI app.

Nodes add and remove routes while the server runs, so a deploy never restarts it. Paths use
Express's syntax, relative to `root` (settings.http_node_root): `/hello`, `/user/:id`, `/v/:n?`,
`/files/*` (the rest of the path is param "0"). As in Express, matching ignores case and a
trailing slash. Static paths are found with one dict lookup, the others by the regexes compiled
when the route is added, in the order they were added. Unknown paths answer 404 JSON.

Mount it at the app's root, after the admin routes (`app.mount("/", routes)`), or serve it as the
ASGI app itself: it applies `root` on its own.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Mount
from starlette.websockets import WebSocket

from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.flows.route_overlap import claim_key, shared_path

log = logging.getLogger("sofiaflow.http.nodes")

Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]
WsHandler = Callable[[WebSocket], Awaitable[None]]
AuthHook = Callable[[Request], Awaitable[None]]

METHODS = ("get", "post", "put", "delete", "patch", "all")
_ASGI_METHOD = {
    "GET": "get",
    "HEAD": "get",
    "POST": "post",
    "PUT": "put",
    "DELETE": "delete",
    "PATCH": "patch",
}
_TOKEN = re.compile(r":(\w+)(\?)?|\*")
DEVICE_KEY = "sofiaflow.device"
"""Scope key where the device-only check leaves the authenticated device's name."""
LOCAL_PATH_KEY = "sofiaflow.path"
"""Scope key of the request path relative to the root."""
PLATFORM_PREFIXES = ("/iot-broker", "/api-manager")
"""Paths the platform serves besides the admin API's own (those are added from the app: `reserve`)."""


def json_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """The `{"code", "message"}` JSON answer every runtime error uses."""
    body = json.dumps({"code": code, "message": message}, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status, headers=headers, media_type="application/json")


def route_key(path: str) -> str:
    """The form two paths share when they match the same requests: `/User/:id/` -> `/user/:` (a literal
    colon or backslash escaped, so a static path never shares a pattern's key)."""
    return claim_key(path)


def _request_key(path: str) -> str:
    """The static key a request path looks up (its `route_key`, which a request never has tokens in)."""
    key = path.lower()
    if ":" in key or "\\" in key:
        key = key.replace("\\", "\\\\").replace(":", "\\:")
    return key.rstrip("/") or "/"


def compile_path(path: str) -> tuple[re.Pattern[str] | None, list[str]]:
    """(regex, param names) for an Express path; (None, []) when it is static."""
    path = path if path.startswith("/") else "/" + path
    if _TOKEN.search(path) is None:
        return None, []
    names: list[str] = []
    stars = 0
    out = ["^"]
    pos = 0
    for m in _TOKEN.finditer(path):
        literal = path[pos : m.start()]
        if m.group(0) == "*":
            out.append(re.escape(literal) + "(.*)")
            names.append(str(stars))
            stars += 1
        else:
            slash = literal.endswith("/")
            out.append(re.escape(literal[:-1] if slash else literal))
            group = "(?:/([^/]+?))" if slash else "([^/]+?)"
            out.append(group + ("?" if m.group(2) else ""))
            names.append(m.group(1))
        pos = m.end()
    tail = path[pos:]
    out.append(re.escape(tail.rstrip("/")) + r"/?\Z")
    return re.compile("".join(out), re.IGNORECASE | re.DOTALL), names


@dataclass(slots=True)
class _Route:
    method: str
    path: str
    handler: Handler
    owner: str
    auth: AuthHook | None


@dataclass(slots=True)
class _Pattern:
    key: str
    regex: re.Pattern[str]
    names: list[str]
    methods: dict[str, _Route]


class NodeRoutes:
    """The runtime's "http" service; see the module docstring."""

    def __init__(self, root: str = "/", response_timeout: float = 120.0) -> None:
        root = "/" + (root or "").strip("/")
        self.root = "" if root == "/" else root
        self.response_timeout = response_timeout  # seconds an `http in` request waits for its answer
        self._static: dict[str, dict[str, _Route]] = {}
        self._patterns: list[_Pattern] = []
        self._ws: dict[str, tuple[WsHandler, str, str]] = {}
        self._owners: dict[str, list[tuple[str, str, str]]] = {}
        self._waiting: set[asyncio.Future] = set()
        self._reserved: set[str] = set(PLATFORM_PREFIXES)

    # ----- platform paths ------------------------------------------------------------------------------------
    def reserve(self, prefixes: Any) -> None:
        """Add path prefixes (from the server's root, e.g. `/flows`) that only administrators' flows may serve."""
        for prefix in prefixes:
            prefix = "/" + str(prefix).strip("/")
            if prefix != "/":
                self._reserved.add(prefix.lower())

    @property
    def reserved(self) -> list[str]:
        """The reserved path prefixes, sorted."""
        return sorted(self._reserved)

    def reserved_prefix(self, path: str) -> str | None:
        """The reserved prefix some request to `path` (Express syntax, relative to the root) would fall under."""
        path = path if path.startswith("/") else "/" + path
        key = claim_key(self.root + path)
        for prefix in self.reserved:
            if shared_path(key, claim_key(prefix)) or shared_path(key, claim_key(prefix + "/*")):
                return prefix
        return None

    @property
    def response_timeout(self) -> float:
        return self._response_timeout

    @response_timeout.setter
    def response_timeout(self, seconds: float) -> None:
        self._response_timeout = seconds
        self._timeout = json_error(504, "timeout", f"no http response node answered within {seconds:g} s")

    # ----- adding and removing ---------------------------------------------------------------------------
    def add_route(
        self, method: str, path: str, handler: Handler, owner: str, auth: AuthHook | None = None
    ) -> None:
        """Serve `method path` (Express syntax) with `handler(request, params)`; ValueError on a clash."""
        method = method.lower()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        key = route_key(path)
        regex, names = compile_path(path)
        found = None if regex is None else next((p for p in self._patterns if p.key == key), None)
        methods = self._static.get(key, {}) if regex is None else (found.methods if found else {})
        for other in methods.values():
            clash = other.method == method or "all" in (method, other.method)
            if clash and other.owner != owner:
                raise ValueError(
                    f"{method.upper()} {path} is already served by {other.owner!r} "
                    f"({other.method.upper()} {other.path})"
                )
        methods[method] = _Route(method, path, handler, owner, auth)
        if regex is None:
            self._static[key] = methods
        elif found is None:
            self._patterns.append(_Pattern(key, regex, names, methods))
        self._owners.setdefault(owner, []).append(("static" if regex is None else "pattern", key, method))

    def add_websocket(self, path: str, handler: WsHandler, owner: str) -> None:
        """Accept websocket connections on `path` (static) with `handler(websocket)`; ValueError on a clash."""
        key = route_key(path)
        other = self._ws.get(key)
        if other is not None and other[1] != owner:
            raise ValueError(f"websocket path {path} is already served by {other[1]!r}")
        self._ws[key] = (handler, owner, path)
        self._owners.setdefault(owner, []).append(("ws", key, ""))

    def remove_owner(self, owner: str) -> None:
        """Remove every route and websocket path `owner` added."""
        for kind, key, method in self._owners.pop(owner, ()):
            if kind == "ws":
                if key in self._ws and self._ws[key][1] == owner:
                    del self._ws[key]
                continue
            pattern = None
            if kind == "static":
                methods = self._static.get(key, {})
            else:
                pattern = next((p for p in self._patterns if p.key == key), None)
                methods = pattern.methods if pattern is not None else {}
            route = methods.get(method)
            if route is not None and route.owner == owner:
                del methods[method]
            if not methods:
                if pattern is not None:
                    self._patterns.remove(pattern)
                else:
                    self._static.pop(key, None)

    def routes(self) -> list[tuple[str, str, str]]:
        """(method, path, owner) of every route, and ("ws", path, owner) of websocket paths."""
        out = [(r.method, r.path, r.owner) for m in self._static.values() for r in m.values()]
        out += [(r.method, r.path, r.owner) for p in self._patterns for r in p.methods.values()]
        out += [("ws", path, owner) for _h, owner, path in self._ws.values()]
        return out

    # ----- helpers for nodes -------------------------------------------------------------------------------
    async def wait(self, future: asyncio.Future[Response]) -> Response:
        """The response a flow gives through `future`, or 504 JSON after `response_timeout` seconds."""
        handle = asyncio.get_running_loop().call_later(self.response_timeout, _expire, future, self._timeout)
        waiting = self._waiting
        waiting.add(future)
        try:
            return await future
        finally:
            handle.cancel()
            waiting.discard(future)

    def shutdown(self) -> int:
        """Answer every request still waiting for its flow with 503 JSON (the runtime is stopping); how many."""
        pending = [f for f in self._waiting if not f.done()]
        for future in pending:
            future.set_result(json_error(503, "shutting_down", "the runtime is stopping"))
        return len(pending)

    @staticmethod
    def device_auth(devices: Any) -> AuthHook:
        """An `auth` hook admitting requests with `Authorization: Bearer <device token>` (service "devices")."""
        return device_auth(devices)

    # ----- serving ---------------------------------------------------------------------------------------------
    def _local(self, scope: dict) -> str | None:
        path = scope["path"]
        root_path = scope.get("root_path")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        root = self.root
        if root:
            if not path.startswith(root) or (len(path) > len(root) and path[len(root)] != "/"):
                return None
            path = path[len(root) :] or "/"
        return path

    def find(self, method: str, path: str) -> tuple[_Route | None, dict[str, str]]:
        """The route serving `method` (lowercase) on `path` (relative to root), and its params."""
        methods = self._static.get(_request_key(path))
        if methods is not None:
            route = methods.get(method) or methods.get("all")
            if route is not None:
                return route, {}
        for pattern in self._patterns:
            m = pattern.regex.match(path)
            if m is not None:
                route = pattern.methods.get(method) or pattern.methods.get("all")
                if route is not None:
                    return route, {
                        n: v for n, v in zip(pattern.names, m.groups(), strict=True) if v is not None
                    }
        return None, {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            response = await self._http(scope, receive)
            await response(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    def in_front_of(self, app: Any) -> Callable[[dict, Any, Any], Awaitable[None]]:
        """`in_front(app, ...)` for this NodeRoutes: node routes served first, the rest by `app`."""
        return in_front(app, lambda: self)

    async def _serve_first(
        self, scope: dict, receive: Any, send: Any, shadowed: Callable[[dict], bool]
    ) -> bool:
        """Serve `scope` if a node route or websocket path takes it and `shadowed(scope)` is false."""
        path = self._local(scope)
        if path is None:
            return False
        if scope["type"] == "http":
            method = scope["method"]
            route, params = self.find(_ASGI_METHOD.get(method) or method.lower(), path)
            if route is None or shadowed(scope):
                return False
            response = await self._answer(route, params, path, scope, receive)
            await response(scope, receive, send)
            return True
        if _request_key(path) not in self._ws or shadowed(scope):
            return False
        await self._websocket(scope, receive, send)
        return True

    async def _http(self, scope: dict, receive: Any) -> Response:
        method = scope["method"]
        path = self._local(scope)
        route, params = (
            (None, {}) if path is None else self.find(_ASGI_METHOD.get(method) or method.lower(), path)
        )
        if route is None:
            return json_error(404, "not_found", f"no flow serves {method} {scope['path']}")
        return await self._answer(route, params, path, scope, receive)

    async def _answer(
        self, route: _Route, params: dict[str, str], path: str, scope: dict, receive: Any
    ) -> Response:
        scope[LOCAL_PATH_KEY] = path
        request = Request(scope, receive)
        try:
            if route.auth is not None:
                await route.auth(request)
            return await route.handler(request, params)
        except AuthError as exc:
            return json_error(401, "unauthorized", str(exc) or "unauthorized", {"WWW-Authenticate": "Bearer"})
        except Exception as exc:  # noqa: BLE001 - one failed request must not break the server
            log.exception("%s %s (route of %s) failed", scope["method"], scope["path"], route.owner)
            return json_error(500, "unexpected_error", f"{type(exc).__name__}: {exc}")

    async def _websocket(self, scope: dict, receive: Any, send: Any) -> None:
        path = self._local(scope)
        entry = self._ws.get(_request_key(path)) if path is not None else None
        if entry is None:
            await send({"type": "websocket.close", "code": 1008, "reason": "no flow serves this path"})
            return
        try:
            await entry[0](WebSocket(scope, receive, send))
        except Exception:  # noqa: BLE001
            log.exception("websocket %s (listener %s) failed", scope["path"], entry[1])


def in_front(
    app: Any, routes_of: Callable[[], NodeRoutes | None]
) -> Callable[[dict, Any, Any], Awaitable[None]]:
    """An ASGI app serving the node routes `routes_of()` gives (None: none yet) first, the rest with `app`.

    Same answers as mounting the routes as `app`'s fallback, without `app`'s routing and middleware on every
    node request (FastAPI's router costs more than the flow itself: ~2.8x the req/s): a request one of
    `app`'s own routes fully matches still goes to `app` (decisions cached by method and path). Keep the
    fallback mount too, so unknown paths still get the node routes' 404.
    """
    decided: dict[tuple[str, str | None, str], bool] = {}

    def shadowed(scope: dict) -> bool:
        key = (scope["type"], scope.get("method"), scope["path"])
        hit = decided.get(key)
        if hit is None:
            hit = _app_serves(app, scope)
            if len(decided) >= 4096:
                decided.clear()
            decided[key] = hit
        return hit

    async def front(scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            routes = routes_of()
            if routes is not None and await routes._serve_first(scope, receive, send, shadowed):
                return
        await app(scope, receive, send)

    return front


def app_prefixes(app: Any) -> list[str]:
    """The first path segment of each of `app`'s routes and mounts (`/flows`, `/auth`, `/editor`...)."""
    found: set[str] = set()
    for path in _route_paths(getattr(getattr(app, "router", app), "routes", ()), "", 0):
        first = path.strip("/").split("/", 1)[0]
        if first and "{" not in first:
            found.add("/" + first.lower())
    return sorted(found)


def _route_paths(routes: Any, prefix: str, depth: int) -> list[str]:
    """Every route's full path, routers included by FastAPI (kept apart until first served) opened up."""
    out: list[str] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None and depth < 8:
            context = getattr(route, "include_context", None)
            out += _route_paths(
                included.routes, prefix + str(getattr(context, "prefix", "") or ""), depth + 1
            )
        elif getattr(route, "path", None) is not None:
            out.append(prefix + str(route.path))
    return out


def _app_serves(app: Any, scope: dict) -> bool:
    """Whether one of `app`'s routes (mounts at its root aside) fully matches this request."""
    for route in getattr(getattr(app, "router", app), "routes", ()):
        if isinstance(route, Mount) and route.path in ("", "/"):
            continue
        if route.matches(dict(scope))[0] == Match.FULL:
            return True
    return False


def _expire(future: asyncio.Future, response: Response) -> None:
    if not future.done():
        future.set_result(response)


def device_auth(devices: Any) -> AuthHook:
    """An `auth` hook: `Authorization: Bearer <token>` checked by `devices.authenticate_token` (AuthError -> 401)."""

    async def check(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError("this endpoint is for devices: send 'Authorization: Bearer <device token>'")
        device = devices.authenticate_token(token)
        if inspect.isawaitable(device):
            device = await device
        request.scope[DEVICE_KEY] = getattr(device, "name", None)

    return check
