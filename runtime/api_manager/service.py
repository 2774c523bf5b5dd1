"""Runtime service "api-manager": the published APIs, their keys, quotas and call counters, and the call path.

`api` config nodes add APIs (`add_api`), `api-endpoint` nodes add operations to them (`add_endpoint`); both
remove what they added when they close. `handle(scope, receive, rest)` answers one consumer call to
`/api-manager/server/api/v{N}/{api}/{path}` (`rest` is the part after `/api-manager/server/api`).

A call is checked in this order: API known (404), API key (401), quota (429 with Retry-After), state (a
development API only for its owner and administrators: 403), operation (404, or 405 with Allow), parameters
(400), rights on the ontology (403), then answered. Refusals (403) are in the audit log. `stats()` gives calls
per (API, key) by status, `last_used()` when each key last called.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from sofiaflow.runtime.api_manager import operations, params
from sofiaflow.runtime.api_manager.bodies import BodyError, read_body
from sofiaflow.runtime.api_manager.keys import ApiKeys, UnknownKeyError
from sofiaflow.runtime.api_manager.model import ApiSpec, EndpointSpec, FlowHandler
from sofiaflow.runtime.api_manager.operations import CallError
from sofiaflow.runtime.api_manager.reader import Workers
from sofiaflow.runtime.api_manager.responses import json_response
from sofiaflow.runtime.security.permissions import PermissionDenied

log = logging.getLogger("sofiaflow.api_manager")

KEY_HEADERS = (b"x-op-apikey", b"x-sofia2-apikey")
"""Where consumers send their API key (onesait's header, and Sofia2's)."""
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
ROLE_TTL = 5.0
_URL = re.compile(r"^/v([0-9]{1,9})/([^/]+)(/.*)?$", re.DOTALL)


@dataclass(slots=True)
class _Endpoint:
    node_id: str
    spec: EndpointSpec
    handler: FlowHandler | None


@dataclass(slots=True)
class _Api:
    node_id: str
    spec: ApiSpec
    endpoints: dict[str, _Endpoint] = field(default_factory=dict)
    ordered: list[_Endpoint] = field(default_factory=list)

    def reorder(self) -> None:
        """Static paths before parameterised ones, so `/byZone` wins over `/{id}`."""
        self.ordered = sorted(self.endpoints.values(), key=lambda e: len(e.spec.path_names))


@dataclass(slots=True)
class ApiCall:
    """What a `flow` operation's handler receives."""

    request: Request
    api: ApiSpec
    endpoint: EndpointSpec
    user: str
    key_id: str
    params: dict[str, Any]
    path_params: dict[str, str]
    body: Any


class ApiManager:
    """See the module docstring. `role_of(user)` gives a user's role (None for unknown users); `audit` is the
    runtime's AuditLog (None: refusals are only logged)."""

    def __init__(
        self,
        db: Any,
        permissions: Any,
        data: Any,
        role_of: Callable[[str], str | None],
        audit: Any = None,
        response_timeout: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from sofiaflow.runtime.api_manager.quota import Quota, QuotaCounter

        self.keys = ApiKeys(db)
        self.quota: Quota = QuotaCounter(clock)
        self.totals = operations.Totals(clock)
        self.permissions = permissions
        self.data = data
        self.audit = audit
        self.response_timeout = response_timeout
        self._role_of = role_of
        self._clock = clock
        self._apis: dict[str, _Api] = {}
        self._by_url: dict[tuple[str, int], _Api] = {}
        self._roles: dict[str, tuple[float, str | None]] = {}
        self._stats: dict[tuple[str, int, str | None], Counter] = {}
        self._stat_users: dict[str | None, str | None] = {}
        self._last_used: dict[str, float] = {}
        self._lock = threading.Lock()
        self.workers = Workers()
        """Where calls run their real-time DB work and role look-ups (off the event loop)."""

    def close(self) -> None:
        """End the worker threads (a later call starts them again)."""
        self.workers.close()

    # ----- APIs and operations ---------------------------------------------------------------------------------
    def add_api(self, node_id: str, spec: ApiSpec) -> None:
        """Publish an API; ValueError when another node already publishes the same name and version."""
        other = self._by_url.get((spec.name, spec.version))
        if other is not None and other.node_id != node_id:
            raise ValueError(f"API {spec.label} is already defined by node {other.node_id!r}")
        self.remove_api(node_id)
        api = _Api(node_id, spec)
        self._apis[node_id] = api
        self._by_url[(spec.name, spec.version)] = api

    def remove_api(self, node_id: str) -> None:
        api = self._apis.pop(node_id, None)
        if api is not None:
            self._by_url.pop((api.spec.name, api.spec.version), None)
            self.quota.forget(lambda key: isinstance(key, tuple) and key[0] == node_id)

    def add_endpoint(
        self, api_node_id: str, node_id: str, spec: EndpointSpec, handler: FlowHandler | None = None
    ) -> ApiSpec:
        """Add an operation to the API of node `api_node_id`; ValueError when there is no such API or another
        operation has the same method and path. Returns the API."""
        api = self._apis.get(api_node_id)
        if api is None:
            raise ValueError(f"property 'api': no api config node {api_node_id!r} is running")
        if spec.operation == "flow" and handler is None:
            raise ValueError("a flow operation needs a handler")
        shape = _shape(spec.path)
        for other in api.endpoints.values():
            if (
                other.node_id != node_id
                and other.spec.method == spec.method
                and _shape(other.spec.path) == shape
            ):
                raise ValueError(
                    f"{spec.method} {spec.path} of API {api.spec.label} is already served by node "
                    f"{other.node_id!r}"
                )
        api.endpoints[node_id] = _Endpoint(node_id, spec, handler)
        api.reorder()
        return api.spec

    def remove_endpoint(self, node_id: str) -> None:
        for api in self._apis.values():
            if api.endpoints.pop(node_id, None) is not None:
                api.reorder()

    def apis(self) -> list[tuple[ApiSpec, list[EndpointSpec]]]:
        """Every API with its operations, by name and version."""
        out = [(a.spec, [e.spec for e in a.ordered]) for a in self._apis.values()]
        return sorted(out, key=lambda item: (item[0].name, item[0].version))

    @staticmethod
    def urls(spec: ApiSpec) -> tuple[str, str]:
        """The API's base URL and its OpenAPI document's URL."""
        from sofiaflow.runtime.api_manager.openapi import base_url, document_url

        return base_url(spec), document_url(spec)

    def find(self, name: str, version: int) -> tuple[ApiSpec, list[EndpointSpec]] | None:
        api = self._by_url.get((name, version))
        return None if api is None else (api.spec, [e.spec for e in api.ordered])

    # ----- callers ---------------------------------------------------------------------------------------------
    def role(self, user: str) -> str | None:
        """The user's role, remembered for a few seconds (None: no such user)."""
        now = self._clock()
        hit = self._roles.get(user)
        if hit is not None and now - hit[0] < ROLE_TTL:
            return hit[1]
        role = self._role_of(user)
        if len(self._roles) > 10_000:
            self._roles.clear()
        self._roles[user] = (now, role)
        return role

    @staticmethod
    def may_use(spec: ApiSpec, user: str | None, role: str | None) -> bool:
        """Published and deprecated APIs: every user; development ones: their owner and administrators."""
        return (
            spec.state != "development"
            or role == "administrator"
            or (user is not None and user == spec.owner)
        )

    def stats(self) -> list[dict[str, Any]]:
        """Calls per (API, key): {"api", "version", "key", "user", "calls", "status": {"200": n, ...}}."""
        with self._lock:
            items = [(k, dict(c)) for k, c in self._stats.items()]
        return [
            {
                "api": name,
                "version": version,
                "key": key,
                "user": self._stat_users.get(key),
                "calls": sum(counts.values()),
                "status": {str(s): n for s, n in sorted(counts.items())},
            }
            for (name, version, key), counts in sorted(items, key=lambda i: (i[0][0], i[0][1], i[0][2] or ""))
        ]

    def last_used(self) -> dict[str, float]:
        """When each key last made a call to this worker (epoch seconds), since it started."""
        with self._lock:
            return dict(self._last_used)

    def _count(self, spec: ApiSpec, key_id: str | None, user: str | None, status: int) -> None:
        with self._lock:
            if key_id is not None:
                self._last_used[key_id] = time.time()
            counter = self._stats.get((spec.name, spec.version, key_id))
            if counter is None:
                counter = self._stats[(spec.name, spec.version, key_id)] = Counter()
                self._stat_users[key_id] = user
            counter[status] += 1

    def _deny(self, user: str | None, method: str, path: str, message: str) -> CallError:
        if self.audit is not None:
            try:
                self.audit.record(user, "api.call", f"{method} {path}"[:400], "denied", {"message": message})
            except Exception:  # noqa: BLE001 - a full audit DB must not turn a 403 into a 500
                log.exception("cannot record a refusal in the audit log")
        return CallError(403, "forbidden", message)

    # ----- one call ----------------------------------------------------------------------------------------------
    async def handle(self, scope: dict, receive: Any, rest: str) -> Response:
        """The answer to a consumer call; `rest` is `/v{N}/{api}/{path}`."""
        m = _URL.match(rest)
        api = self._by_url.get((m.group(2), int(m.group(1)))) if m else None
        if api is None:
            return json_response(
                404, {"code": "not_found", "message": f"no API at {scope['path']}; see /api-manager/catalog"}
            )
        spec = api.spec
        key_id = user = None
        try:
            key_id, user = self._identify(scope)
            status, body, headers = await self._call(api, scope, receive, m.group(3) or "/", user, key_id)
        except CallError as exc:
            status, body, headers = exc.status, exc.body(), exc.headers
        if spec.state == "deprecated":
            headers = {**(headers or {}), "Deprecation": "true"}
        self._count(
            spec, key_id, user, status if isinstance(body, (dict, list)) or body is None else body.status_code
        )
        if isinstance(body, Response):
            if headers:
                body.headers.update(headers)
            return body
        return json_response(status, body, headers)

    def _identify(self, scope: dict) -> tuple[str, str]:
        key = None
        for name, value in scope["headers"]:
            if name in KEY_HEADERS:
                key = value.decode("latin-1").strip()
                break
        if not key:
            raise CallError(
                401,
                "unauthorized",
                "missing API key: send it in the X-OP-APIKey header (create one with POST /api-keys)",
                {"WWW-Authenticate": 'ApiKey header="X-OP-APIKey"'},
            )
        try:
            owner = self.keys.user_of(key)
        except UnknownKeyError:
            raise CallError(
                401,
                "unauthorized",
                "invalid or revoked API key",
                {"WWW-Authenticate": 'ApiKey header="X-OP-APIKey"'},
            ) from None
        return owner.key_id, owner.user

    async def _call(
        self, api: _Api, scope: dict, receive: Any, path: str, user: str, key_id: str
    ) -> tuple[int, Any, dict[str, str] | None]:
        spec = api.spec
        hit = self._roles.get(user)
        fresh = hit is not None and self._clock() - hit[0] < ROLE_TTL
        role = hit[1] if fresh else await self.workers.run(self.role, user)  # type: ignore[index]
        if role is None:
            raise CallError(401, "unauthorized", f"the API key's user {user!r} no longer exists")
        retry = await self.quota.acquire((api.node_id, key_id), spec.quota)
        if retry:
            raise CallError(
                429,
                "quota_exceeded",
                f"quota of {spec.quota} calls per minute to {spec.label} used up; "
                f"retry in {math.ceil(retry)} s",
                {"Retry-After": str(math.ceil(retry))},
            )
        method = scope["method"]
        if not self.may_use(spec, user, role):
            raise self._deny(
                user,
                method,
                scope["path"],
                f"API {spec.label} is in development: only its owner and administrators may call it",
            )
        endpoint, path_params = _match(api, "GET" if method == "HEAD" else method, path)
        query = (
            parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            if scope.get("query_string")
            else {}
        )
        ep = endpoint.spec
        with_body = method in ("POST", "PUT", "PATCH", "DELETE")
        headers = (
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            if with_body or ep.operation == "flow" or any(p.location == "header" for p in ep.parameters)
            else {}
        )
        try:
            body = (
                await read_body(Request(scope, receive), headers, json_only=ep.operation != "flow")
                if with_body
                else None
            )
        except BodyError as exc:
            raise CallError(exc.status, exc.code, str(exc)) from None
        try:
            values = params.read(
                ep.parameters,
                path_params,
                query,
                headers,
                body
                if ep.operation not in ("insert", "update", "flow")
                or any(p.location == "body" for p in ep.parameters)
                else None,
            )
            limit, offset = (
                params.paging(query, DEFAULT_LIMIT, MAX_LIMIT) if ep.operation == "query" else (0, 0)
            )
        except params.ParameterError as exc:
            raise CallError(400, "invalid_parameter", str(exc)) from None
        if ep.operation == "flow":
            call = ApiCall(Request(scope, receive), spec, ep, user, key_id, values, path_params, body)
            try:
                response = await asyncio.wait_for(endpoint.handler(call), self.response_timeout)
            except TimeoutError:
                raise CallError(
                    504, "timeout", f"the flow gave no answer within {self.response_timeout:g} s"
                ) from None
            return response.status_code, response, None
        try:
            status, answer = await self.workers.run(
                operations.run,
                self.data,
                self.permissions,
                ep,
                values,
                user,
                body,
                limit,
                offset,
                self.totals,
            )
        except PermissionDenied as exc:
            raise self._deny(user, method, scope["path"], str(exc)) from None
        return status, answer, None


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def _match(api: _Api, method: str, path: str) -> tuple[_Endpoint, dict[str, str]]:
    allowed: list[str] = []
    for endpoint in api.ordered:
        m = endpoint.spec.regex.match(path)
        if m is None:
            continue
        if endpoint.spec.method == method:
            return endpoint, m.groupdict()
        allowed.append(endpoint.spec.method)
    if allowed:
        raise CallError(
            405,
            "method_not_allowed",
            f"{method} is not an operation of {path}; use {', '.join(sorted(set(allowed)))}",
            {"Allow": ", ".join(sorted(set(allowed)))},
        )
    raise CallError(404, "not_found", f"API {api.spec.label} has no operation at {path}")
