"""http in: an HTTP endpoint served by the runtime's "http" service; each request becomes a message.

`msg.req` is an `HttpRequest` (a dict: params, query, headers, cookies, body, method, url, path, ip,
...), `msg.res` the handle an `http response` node answers through. Both are shared, never cloned,
when a message fans out. The client gets 504 if no `http response` answers in time.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qsl, unquote

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response

from sofiaflow.runtime.api import (
    DEVICES,
    HTTP_ROUTES,
    MAX_ROUTE_KEY_LENGTH,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    ValidationError,
    new_msgid,
    route_claim_key,
)

METHODS = ("get", "post", "put", "delete", "patch", "all")
MAX_BODY = 5 * 1024 * 1024  # Node-RED's default apiMaxLength (5mb)
_BINARY_APP = frozenset(("octet-stream", "cbor", "x-protobuf"))


class HttpRequest(dict):
    """msg.req: the request with Express's field names; keys also read as attributes (`req.params`)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def wire_view(self) -> dict[str, Any]:
        """What a python function in a sandbox worker reads of it (a plain copy; the request stays here)."""
        return dict(self)


class HttpResponseHandle:
    """msg.res: answers the waiting client once (an `http response` node calls `send`)."""

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future) -> None:
        self._future = future

    @property
    def answered(self) -> bool:
        return self._future.done()

    def send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """Answer with `status`, raw `headers` (lowercase names) and `body`; NodeError if already answered."""
        if self._future.done():
            raise NodeError("the response was already sent (or the request timed out)")
        self._future.set_result(_RawResponse(status, headers, body))

    def __repr__(self) -> str:
        return "<http response>"

    def __deepcopy__(self, memo: dict) -> HttpResponseHandle:
        return self


class _RawResponse(Response):
    """A starlette Response from ready raw headers (no header rebuilding)."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status_code = status
        self.raw_headers = headers
        self.body = body
        self.background = None


class HttpInConfig(NodeConfig):
    url: str = Field("", title="URL", description="The path served, e.g. /hello or /user/:id.")
    method: str = Field(
        "get",
        title="Method",
        json_schema_extra={
            "x-choices": [
                ["get", "GET"],
                ["post", "POST"],
                ["put", "PUT"],
                ["delete", "DELETE"],
                ["patch", "PATCH"],
            ]
        },
    )
    upload: NRBool = Field(
        False,
        title="Accept file uploads",
        json_schema_extra={"x-show-if": {"method": ["post", "put", "patch"]}},
    )
    skipBodyParsing: NRBool = Field(
        False,
        title="Do not parse the body",
        description="msg.payload keeps the raw body.",
        json_schema_extra={"x-show-if": {"method": ["post", "put", "patch", "delete"]}},
    )
    swaggerDoc: Any = Field("", title="Swagger doc", json_schema_extra={"x-widget": "hidden"})
    deviceOnly: NRBool = Field(
        False, title="Devices only", description="Only registered devices (with their token) may call it."
    )


def normalise_url(url: str) -> str:
    url = (url or "").strip()
    return url if url.startswith("/") else "/" + url


def claim_key(url: str) -> str:
    """`/User/:id/` -> `/user/:` (two paths with the same key serve the same requests; as NodeRoutes keys them)."""
    return route_claim_key(normalise_url(url))


def refuse_platform_paths(node: Node, paths: list[str], what: str) -> None:
    """NodeError when the flow of `node` belongs to a non-administrator and one of `paths` (Express syntax,
    relative to the http root) could serve a request under a path the platform reserves."""
    try:
        routes = node.service(HTTP_ROUTES)
    except NodeError:
        return
    if not hasattr(routes, "reserved_prefix") or node.tenant is None:
        return  # the platform's flows, and administrators' (who act for the platform), may serve any path
    for path in paths:
        prefix = routes.reserved_prefix(path)
        if prefix is not None:
            raise NodeError(
                f"{what}: path {path!r} can serve requests under {prefix}, which the platform "
                f"reserves; only flows of administrators may (the flow's owner {node.owner!r} is not one)"
            )


class HttpInNode(Node[HttpInConfig]):
    type = "http in"
    category = "network"
    color = "rgb(231, 231, 174)"
    inputs = 0
    outputs = 1
    is_source = True
    Config = HttpInConfig
    help = (
        "Serves an HTTP endpoint (`/hello`, `/user/:id`) under the runtime's http node root; each request "
        "becomes msg.req (params, query, headers, cookies, body) and msg.payload (query for GET, parsed "
        "body otherwise). Answer it with an http response node."
    )

    @classmethod
    def claims(cls, config: NodeConfig) -> list[str]:
        method = str(getattr(config, "method", "get") or "get").lower()
        key = claim_key(getattr(config, "url", "") or "")
        methods = METHODS[:-1] if method == "all" else (method,)
        return [f"http:{m}:{key}" for m in methods]

    def setup(self) -> None:
        cfg = self.config
        if not (cfg.url or "").strip():
            raise NodeError("http in: property 'url' is required (e.g. /hello)")
        self._url = normalise_url(cfg.url)
        if len(self._url) > MAX_ROUTE_KEY_LENGTH:
            raise NodeError(f"http in: property 'url' is longer than {MAX_ROUTE_KEY_LENGTH} characters")
        self._method = (cfg.method or "get").lower()
        if self._method not in METHODS:
            raise NodeError(
                f"http in: property 'method' must be one of {', '.join(METHODS)}, not {cfg.method!r}"
            )
        self._parse_body = self._method != "get"
        self._payload = self._method != "all"  # Node-RED sends no payload for "all"
        self._routes: Any = None
        refuse_platform_paths(self, [self._url], "http in")

    async def start(self) -> None:
        routes = self.service(HTTP_ROUTES)
        auth = routes.device_auth(self.service(DEVICES)) if self.config.deviceOnly else None
        try:
            routes.add_route(self._method, self._url, self._handle, owner=self.id, auth=auth)
        except ValueError as exc:
            raise NodeError(str(exc)) from None
        self._routes = routes

    async def close(self, removed: bool) -> None:
        if self._routes is not None:
            self._routes.remove_owner(self.id)
            self._routes = None

    async def _handle(self, request: Request, params: dict[str, str]) -> Response:
        routes = self._routes
        if routes is None:
            return _error(503, "stopped", "this endpoint's flow is stopping")
        req = _request(request, params)
        if self._parse_body:
            try:
                body = await self._body(request, req)
            except _BodyError as exc:
                return _error(exc.status, exc.code, str(exc))
            req["body"] = body
        else:
            body = req["query"]
        future = asyncio.get_running_loop().create_future()
        msg: Msg = {"_msgid": new_msgid(), "req": req, "res": HttpResponseHandle(future)}
        if self._payload:
            msg["payload"] = body
        await self.send_wait(msg)
        return await routes.wait(future)

    async def _body(self, request: Request, req: HttpRequest) -> Any:
        headers = req["headers"]
        ctype = headers.get("content-type", "")
        mime = ctype.partition(";")[0].strip().lower()
        if self.config.upload and mime == "multipart/form-data" and not self.config.skipBodyParsing:
            try:
                return await _multipart(request, req)
            except Exception as exc:  # noqa: BLE001 - starlette's parser errors vary by version
                raise _BodyError(400, "bad_request", f"invalid multipart body: {exc}") from None
        raw = await _read(request, headers)
        if self.config.skipBodyParsing:
            return raw
        return _parse(mime, raw, headers)


class _BodyError(ValidationError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _error(status: int, code: str, message: str) -> Response:
    return Response(
        json.dumps({"code": code, "message": message}, separators=(",", ":")),
        status,
        media_type="application/json",
    )


def _request(request: Request, params: dict[str, str]) -> HttpRequest:
    scope = request.scope
    headers: dict[str, str] = {}
    for k, v in scope["headers"]:
        name = k.decode("latin-1").lower()
        value = v.decode("latin-1")
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ", ") + value
        headers[name] = value
    raw_qs = scope.get("query_string", b"")
    qs = raw_qs.decode("latin-1") if raw_qs else ""
    query = _pairs(qs) if qs else {}
    full = scope["path"]
    path = scope.get("sofiaflow.path", full)  # relative to the http node root
    suffix = "?" + qs if qs else ""
    client = scope.get("client")
    host = headers.get("host", "")
    req = HttpRequest(
        method=scope["method"],
        url=path + suffix,
        originalUrl=full + suffix,
        path=path,
        params=params,
        query=query,
        headers=headers,
        cookies=_cookies(headers["cookie"]) if "cookie" in headers else {},
        body=None,
        ip=client[0] if client else None,
        hostname=host.rsplit(":", 1)[0] if host and not host.endswith("]") else host,
        protocol=scope.get("scheme", "http"),
    )
    device = scope.get("sofiaflow.device")
    if device is not None:
        req["device"] = device
    return req


def _pairs(text: str) -> dict[str, Any]:
    """`a=1&a=2&b=x` -> {"a": ["1", "2"], "b": "x"} (repeated keys become lists, as Express's query parser)."""
    out: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key in out:
            prev = out[key]
            if isinstance(prev, list):
                prev.append(value)
            else:
                out[key] = [prev, value]
        else:
            out[key] = value
    return out


def _cookies(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or not name or name in out:
            continue
        value = value.strip()
        if len(value) > 1 and value[0] == value[-1] == '"':
            value = value[1:-1]
        out[name] = unquote(value) if "%" in value else value
    return out


async def _read(request: Request, headers: dict[str, str]) -> bytes:
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise _BodyError(413, "too_large", f"request body over {MAX_BODY} bytes")
    if length == "0":
        return b""
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _BodyError(413, "too_large", f"request body over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks) if len(chunks) != 1 else chunks[0]


def _parse(mime: str, raw: bytes, headers: dict[str, str]) -> Any:
    """The body as Node-RED's parsers give it: JSON, urlencoded dict, text, or raw bytes."""
    if mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json")):
        if not raw:
            return {} if "content-length" in headers or "transfer-encoding" in headers else ""
        text = raw.decode("utf-8", "replace")
        first = text.lstrip()[:1]
        if first not in ("{", "["):
            raise _BodyError(400, "bad_request", "JSON body must be an object or an array (strict mode)")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise _BodyError(400, "bad_request", f"invalid JSON body: {exc}") from None
    if mime == "application/x-www-form-urlencoded":
        if not raw:
            return {} if "content-length" in headers or "transfer-encoding" in headers else ""
        return _pairs(raw.decode("latin-1"))
    if _is_text(mime):
        return raw.decode("utf-8", "replace")
    return raw


def _is_text(mime: str) -> bool:
    if not mime:
        return True
    kind, _, sub = mime.partition("/")
    if kind == "text" or sub == "xml" or sub.endswith("+xml"):
        return True
    if kind != "application":
        return False
    return sub not in _BINARY_APP


async def _multipart(request: Request, req: HttpRequest) -> dict[str, Any]:
    """Fields into req.body (returned), files into req.files as multer gives them."""
    form = await request.form(max_part_size=MAX_BODY)
    files = []
    fields: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, str):
            prev = fields.get(name)
            fields[name] = (
                value if prev is None else (prev + [value] if isinstance(prev, list) else [prev, value])
            )
            continue
        data = await value.read()
        files.append(
            {
                "fieldname": name,
                "originalname": value.filename or "",
                "encoding": "7bit",
                "mimetype": value.content_type or "application/octet-stream",
                "buffer": data,
                "size": len(data),
            }
        )
    req["files"] = files
    return fields
