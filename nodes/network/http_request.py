"""http request: calls an HTTP(S) URL and sends the response on (Node-RED 4.1, 21-httprequest.js).

Requests run concurrently (one task each, at most 100 in flight per node; more wait in the node's
queue), so outputs follow the order of the answers, as in Node-RED. Each request has its own cookie
jar and follows up to 21 redirects (303 turns into GET; credentials are dropped when the host
changes), as got does. A non-2xx answer is an ordinary response, as in Node-RED's code (got runs
with throwHttpErrors off, whatever `senderr` says); only transport failures (refused, timeout, TLS,
too many redirects) are errors: they go to catch nodes and, unless `senderr` is set, also out with
the error text in `msg.payload` and Node's error code in `msg.statusCode`. Bodies come as received
(no decompression). With `persist` the node keeps connections alive between requests.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from typing import Any, NamedTuple

import httpx
from pydantic import Field

from sofiaflow.nodes.jsvalues import js_json_parse, js_string
from sofiaflow.nodes.network import http_util as hu
from sofiaflow.runtime.api import UNDEFINED, Msg, Node, NodeConfig, NodeError, NRBool

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "USE")
REDIRECTS = frozenset((301, 302, 303, 307, 308))
MAX_REDIRECTS = 21
MAX_IN_FLIGHT = 100
SHARDS = 8
SHARD_SIZE = MAX_IN_FLIGHT // SHARDS
HASH_HEADER = "x-node-red-request-node"
_BAD_PERCENT = re.compile(r"%(?![0-9a-fA-F]{2})")


class HttpRequestConfig(NodeConfig):
    method: str | None = Field(
        "GET",
        title="Method",
        json_schema_extra={
            "x-choices": [
                ["GET", "GET"],
                ["POST", "POST"],
                ["PUT", "PUT"],
                ["DELETE", "DELETE"],
                ["PATCH", "PATCH"],
                ["HEAD", "HEAD"],
                ["use", "- set by msg.method -"],
            ]
        },
    )
    ret: str | None = Field(
        "txt",
        title="Return",
        json_schema_extra={
            "x-choices": [
                ["txt", "a UTF-8 string"],
                ["bin", "a binary buffer"],
                ["obj", "a parsed JSON object"],
            ]
        },
    )
    paytoqs: Any = Field(
        False,
        title="Payload",
        description="For GET and DELETE: what msg.payload becomes.",
        json_schema_extra={
            "x-choices": [
                ["ignore", "ignore"],
                ["query", "append to query-string parameters"],
                ["body", "send as request body"],
            ]
        },
    )
    url: str | None = Field(
        "", title="URL", description="e.g. http://example.com/api/{{{topic}}}; blank: msg.url."
    )
    tls: str | None = Field(
        "",
        title="TLS configuration",
        description="Certificates for https (a tls-config config node).",
        json_schema_extra={"x-config": "tls-config"},
    )
    persist: NRBool = Field(False, title="Enable connection keep-alive")
    proxy: str | None = Field(
        "",
        title="Proxy",
        description="An http proxy config node.",
        json_schema_extra={"x-config": "http proxy"},
    )
    insecureHTTPParser: NRBool = Field(False, title="Disable strict HTTP parsing")
    authType: str | None = Field(
        "",
        title="Authentication",
        json_schema_extra={
            "x-choices": [
                ["", "none"],
                ["basic", "basic authentication"],
                ["digest", "digest authentication"],
                ["bearer", "bearer authentication"],
            ]
        },
    )
    senderr: NRBool = Field(False, title="Only send non-2xx responses to the Catch node")
    headers: Any = Field(
        [],
        title="Headers",
        description="Request headers to set.",
        json_schema_extra=hu.HEADER_ROWS,
    )


class Plan(NamedTuple):
    method: str
    url: httpx.URL
    text: str
    headers: dict[str, str]
    content: Any
    files: list | None
    cookies: dict[str, str]
    auth: httpx.Auth | None
    seconds: float
    follow: bool
    verify: Any


class HttpRequestNode(Node[HttpRequestConfig]):
    type = "http request"
    category = "network"
    color = "rgb(231, 231, 174)"
    Config = HttpRequestConfig
    credentials_spec = {"user": "text", "password": "password"}
    auto_done = False
    help = (
        "Sends an HTTP request to `url` (a Mustache template on the message, or `msg.url`) and sends the "
        "response on: `payload` (text, bytes or parsed JSON), `statusCode`, `headers`, `responseUrl`, "
        "`redirectList`, `responseCookies`. Input `msg.headers`, `msg.cookies`, `msg.requestTimeout` (ms), "
        "`msg.followRedirects`, `msg.rejectUnauthorized`, and `msg.method` when method is `use`."
    )

    def setup(self) -> None:
        cfg = self.config
        self._method = (cfg.method or "GET").upper()
        if self._method not in METHODS:
            raise NodeError(f"method must be GET, POST, PUT, DELETE, PATCH, HEAD or use, not {cfg.method!r}")
        self._ret = cfg.ret or "txt"
        if self._ret not in ("txt", "bin", "obj"):
            raise NodeError(f"ret must be txt, bin or obj, not {cfg.ret!r}")
        self._paytoqs = {True: "query", "true": "query", "query": "query", "body": "body"}.get(
            cfg.paytoqs, ""
        )
        self._auth_type = cfg.authType or "basic"
        if self._auth_type not in ("basic", "digest", "bearer"):
            raise NodeError(f"authType must be basic, digest or bearer, not {cfg.authType!r}")
        self._url = cfg.url or ""
        self._url_tree = hu.compile_url(self._url) if "{{" in self._url else None
        self._headers = hu.header_pairs(self, cfg.headers or [])
        timeout = self.setting("httpRequestTimeout", 120000)
        try:
            self._timeout = float(timeout) / 1000 if float(timeout) > 0 else 120.0
        except (TypeError, ValueError):
            self._timeout = 120.0
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._transports: dict[tuple, list[httpx.AsyncHTTPTransport]] = {}
        self._busy: dict[int, int] = {}  # requests in flight per pool
        self._proxies: dict[tuple[str, str], str | None] = {}  # (scheme, host) -> proxy URL
        self._active = 0
        self._ssl: ssl.SSLContext | None = None
        self._tls_node = False
        self._proxy_node: Node | None = None

    async def start(self) -> None:
        cfg = self.config
        self._tls_node = bool(cfg.tls) and self.config_node(cfg.tls) is not None
        self._ssl = hu.tls_context(self, cfg.tls)
        if cfg.proxy:
            self._proxy_node = self.config_node(cfg.proxy)
            if self._proxy_node is None:
                self.warn(
                    f"proxy: http proxy node {cfg.proxy!r} is not running here; using the environment's"
                )

    async def close(self, removed: bool) -> None:
        shards, self._transports = list(self._transports.values()), {}
        for transport in (t for shard in shards for t in shard):
            await transport.aclose()
        self.status({})

    # ----- input ------------------------------------------------------------------------------------------
    async def on_input(self, msg: Msg) -> None:
        await self._slots.acquire()
        self._active += 1
        self.status("blue", "dot", "requesting")
        try:
            plan = self._prepare(msg)
        except Exception as exc:  # noqa: BLE001 - reported as Node-RED does, then the message is done
            self._finish()
            self.error(exc, msg)
            self.done(msg)
            return
        if plan is None:
            self._finish()
            self.done(msg)
            return
        self.spawn(self._run(msg, plan))

    def _finish(self) -> None:
        self._active -= 1
        self._slots.release()

    def _prepare(self, msg: Msg) -> Plan | None:
        """Everything Node-RED decides before the request leaves; None when it sends nothing."""
        msg_url = msg.get("url")
        if msg_url and self._url and msg_url != self._url:
            self.warn(hu.NOOVERRIDE)
        url = hu.render_url(self._url_tree, [msg]) if self._url_tree is not None else (self._url or msg_url)
        if not url:
            raise NodeError("No url specified")
        url = js_string(url)
        if "://" in url and not url.startswith("http"):
            self.warn("non-http transport requested")
            self.status("red", "ring", "non-http transport requested")
            return None
        if not url.startswith(("http://", "https://")):
            url = ("https://" if self._tls_node else "http://") + url
        if "?" in url:  # got refuses a lone %, Node-RED escapes it
            base, _, query = url.partition("?")
            url = base + "?" + _BAD_PERCENT.sub("%25", query)

        method = self._method
        msg_method = msg.get("method")
        if msg_method and self.config.method != "use":
            self.warn(hu.NOOVERRIDE)
        if method == "USE":
            method = js_string(msg_method).upper() if msg_method else "GET"

        seconds = self._timeout
        if "requestTimeout" in msg and msg["requestTimeout"] is not UNDEFINED:
            raw = msg["requestTimeout"]
            try:
                value = 0.0 if raw is None else float(raw)
                if value != value:
                    raise ValueError
            except (TypeError, ValueError):
                self.warn("Timeout value is not a valid number, ignoring")
            else:
                if value < 1:
                    self.warn("Timeout value is negative, ignoring")
                else:
                    seconds = value / 1000

        headers: dict[str, str] = {}
        msg_headers = msg.get("headers")
        if isinstance(msg_headers, dict):
            if HASH_HEADER in msg_headers:  # the response headers of an earlier request: not sent again
                mark = msg_headers.pop(HASH_HEADER)
                if hu.headers_hash(msg_headers) == mark:
                    del msg["headers"]
                    msg_headers = None
            for name, value in (msg_headers or {}).items():
                hu.set_header(headers, str(name), value)
        for name_of, value_of in self._headers:
            name = name_of(msg)
            if name:
                hu.set_header(headers, js_string(name), value_of(msg))

        cookies: dict[str, str] = {}
        for name in [k for k in headers if k.lower() == "cookie"]:
            cookies.update(hu.parse_cookie(headers.pop(name)))
        if isinstance(msg.get("cookies"), dict):
            for name, c in msg["cookies"].items():
                if c is None or (isinstance(c, dict) and c.get("value") is None):
                    continue  # clears a cookie for http in/response; ignored here
                value = js_string(c.get("value") if isinstance(c, dict) else c)
                raw = isinstance(c, dict) and c.get("encode") is False
                cookies[name] = value if raw else hu.encode_uri_component(value)

        content, fields, query = hu.request_body(method, msg, headers, self._paytoqs)
        if query:
            url += ("" if url.endswith(("?", "&")) else "&") + query if "?" in url else "?" + query
        try:
            parsed = httpx.URL(url)
            if parsed.scheme not in ("http", "https") or not parsed.host:
                raise httpx.InvalidURL(url)
        except (httpx.InvalidURL, ValueError, TypeError):
            raise NodeError("Invalid URL") from None

        creds = {k: v for k, v in (self.credentials or {}).items() if v is not None}
        if parsed.username and not creds.get("user"):
            creds["user"] = parsed.username
        if parsed.password and not creds.get("password"):
            creds["password"] = parsed.password
        parsed = parsed.copy_with(username=None, password=None)
        auth = None
        if creds:
            user, password = creds.get("user") or "", creds.get("password") or ""
            if self._auth_type == "basic" and (user or password):
                headers["Authorization"] = hu.basic_auth(user, password)
            elif self._auth_type == "digest":
                auth = httpx.DigestAuth(user, password)
            elif self._auth_type == "bearer":
                headers["Authorization"] = f"Bearer {password}"

        if self._ssl is not None:
            verify: Any = self._ssl
        elif "rejectUnauthorized" in msg:
            verify = bool(msg["rejectUnauthorized"])
        else:
            verify = True
        follow = bool(msg["followRedirects"]) if "followRedirects" in msg else True
        return Plan(
            method,
            parsed,
            url,
            headers,
            content,
            hu.multipart(fields) if fields else None,
            cookies,
            auth,
            seconds,
            follow,
            verify,
        )

    # ----- the exchange -----------------------------------------------------------------------------------
    async def _run(self, msg: Msg, plan: Plan) -> None:
        try:
            try:
                async with asyncio.timeout(plan.seconds):
                    response, body, final_url, redirects = await self._fetch(plan)
            except Exception as exc:  # noqa: BLE001 - every transport hu.failure is reported the Node-RED way
                self._failed(msg, hu.failure(exc, plan.url, plan.seconds), plan.text)
                return
            self._answer(msg, response, body, final_url, redirects)
        finally:
            self._finish()

    def _failed(self, msg: Msg, err: hu.RequestFailed, url: str) -> None:
        if err.code == "ETIMEDOUT":
            self.error(NodeError("no response from server"), msg)
            self.status("red", "ring", "no response from server")
        else:
            self.error(NodeError(str(err)), msg)
            self.status("red", "ring", err.code)
        msg["payload"] = f"{err.name}: {err} : {url}"
        msg["statusCode"] = err.code
        if not self.config.senderr:
            self.send(msg)
        self.done(msg)

    def _answer(
        self, msg: Msg, response: httpx.Response, body: bytes, url: httpx.URL, redirects: list
    ) -> None:
        headers = hu.response_headers(response)
        msg["statusCode"] = response.status_code
        msg["headers"] = headers
        msg["responseUrl"] = str(url)
        msg["redirectList"] = redirects
        msg["retry"] = 0
        if "set-cookie" in headers:
            msg["responseCookies"] = hu.extract_cookies(headers["set-cookie"])
        headers[HASH_HEADER] = hu.headers_hash(headers)
        payload: Any = body
        if self._ret != "bin":
            payload = body.decode("utf-8", "replace")
            if self._ret == "obj":
                try:
                    payload = js_json_parse("{}" if response.status_code == 204 else payload)
                except NodeError:
                    self.warn("JSON parse error")
        msg["payload"] = payload
        if self._active == 1:
            self.status({})
        self.send(msg)
        self.done(msg)

    async def _fetch(self, plan: Plan) -> tuple[httpx.Response, bytes, httpx.URL, list]:
        method, url, content, files, auth = plan.method, plan.url, plan.content, plan.files, plan.auth
        headers = dict(plan.headers)
        jar = httpx.Cookies()
        first_host = url.host
        timeout = {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), plan.seconds)}
        redirects: list[dict] = []
        for hop in range(MAX_REDIRECTS + 1):
            request = httpx.Request(
                method, url, headers=headers, content=content, files=files, extensions=timeout
            )
            jar.set_cookie_header(request)
            pairs = [f"{k}={v}" for k, v in plan.cookies.items()] if url.host == first_host else []
            if pairs:
                request.headers["Cookie"] = "; ".join([*pairs, *request.headers.get_list("cookie")])
            transport = self._transport(url, plan.verify)
            busy = self._busy
            busy[id(transport)] = busy.get(id(transport), 0) + 1
            try:
                response, body = await self._exchange(transport, request, auth)
            finally:
                busy[id(transport)] -= 1
            jar.extract_cookies(response)
            location = response.headers.get("location")
            if not (plan.follow and response.status_code in REDIRECTS and location):
                return response, body, url, redirects
            if hop == MAX_REDIRECTS:
                raise hu.RequestFailed(
                    "ERR_TOO_MANY_REDIRECTS", "Redirected 21 times. Aborting.", "MaxRedirectsError"
                )
            info: dict[str, Any] = {"location": location}
            if "set-cookie" in response.headers:
                info["cookies"] = hu.extract_cookies(response.headers.get_list("set-cookie"))
            redirects.append(info)
            target = url.join(location)
            if response.status_code == 303 and method not in ("GET", "HEAD"):
                method, content, files = "GET", None, None
                for name in [k for k in headers if k.lower() in ("content-type", "content-length")]:
                    del headers[name]
            if (target.host, target.port) != (url.host, url.port):
                for name in [k for k in headers if k.lower() in ("authorization", "cookie", "host")]:
                    del headers[name]
                auth = None
            url = target
        raise AssertionError("unreachable")

    async def _exchange(
        self, transport: httpx.AsyncHTTPTransport, request: httpx.Request, auth: httpx.Auth | None
    ) -> tuple[httpx.Response, bytes]:
        if auth is None:
            return await _send(transport, request)
        flow = auth.async_auth_flow(request)
        response, body = await _send(transport, await flow.__anext__())
        try:
            retry = await flow.asend(response)
        except StopAsyncIteration:
            return response, body
        return await _send(transport, retry)

    def _transport(self, url: httpx.URL, verify: Any) -> httpx.AsyncHTTPTransport:
        """A connection pool for `url`'s proxy and TLS settings: the least busy of up to SHARDS small ones.

        httpcore's pool spends (connections x waiting requests) steps on every request, so one pool of 100
        busy connections is slow; a new pool is added only when every pool has SHARD_SIZE requests in flight.
        """
        where = (url.scheme, url.host)
        proxy = self._proxies.get(where, False)
        if proxy is False:
            if len(self._proxies) > 256:
                self._proxies.clear()
            proxy = self._proxies[where] = hu.proxy_for(url, self._proxy_node)
        key = (proxy, id(verify) if isinstance(verify, ssl.SSLContext) else verify)
        pools = self._transports.setdefault(key, [])
        busy = self._busy
        best = min(pools, key=lambda t: busy.get(id(t), 0), default=None)
        if best is not None and (busy.get(id(best), 0) < SHARD_SIZE or len(pools) >= SHARDS):
            return best
        keep = SHARD_SIZE if self.config.persist else 0
        limits = httpx.Limits(
            max_connections=None, max_keepalive_connections=keep, keepalive_expiry=30.0 if keep else 0.0
        )
        creds = (self._proxy_node.credentials or {}) if self._proxy_node is not None else {}
        proxy_auth = (creds.get("username") or "", creds.get("password") or "") if creds else None
        transport = httpx.AsyncHTTPTransport(
            verify=hu.ssl_context(verify),
            limits=limits,
            proxy=httpx.Proxy(proxy, auth=proxy_auth) if proxy else None,
        )
        pools.append(transport)
        return transport


async def _send(transport: httpx.AsyncHTTPTransport, request: httpx.Request) -> tuple[httpx.Response, bytes]:
    response = await transport.handle_async_request(request)
    response.request = request
    try:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    finally:
        await response.aclose()
    return response, body
