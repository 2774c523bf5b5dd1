"""api-endpoint: one operation of an API of the API Manager (see the `api` config node).

Method and path (`/`, `/byZone`, `/{id}`), typed parameters (`[{name, in: path|query|header|body, type:
string|integer|number|boolean, required}]`) and what answers: an ontology operation (`query` with the `query`
template, a MongoDB filter whose `"{$param}"` placeholders take the parameters' typed values; `getById`,
`insert`, `update`, `delete`) run with the rights of the calling key's user, or `flow`: the request leaves on the
output as `http in` gives it (msg.payload, msg.req, msg.res, plus msg.api with the typed parameters and the
caller) and an `http response` node answers it.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any
from urllib.parse import parse_qsl

from pydantic import Field
from starlette.responses import Response

from sofiaflow.nodes.network.http_in import HttpRequest, HttpResponseHandle
from sofiaflow.runtime.api import (
    API_MANAGER,
    ONTOLOGIES,
    ApiCall,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    SpecError,
    endpoint_spec,
    new_msgid,
)


class ApiEndpointConfig(NodeConfig):
    api: str = Field(
        "",
        title="API",
        description="The API this operation belongs to (an api config node: name, version, state).",
        json_schema_extra={"x-config": "api"},
    )
    method: str = Field(
        "GET",
        title="Method",
        json_schema_extra={
            "x-choices": [
                ["GET", "GET"],
                ["POST", "POST"],
                ["PUT", "PUT"],
                ["DELETE", "DELETE"],
                ["PATCH", "PATCH"],
            ]
        },
    )
    path: str = Field(
        "/",
        title="Path",
        description="Under the API's base path, with {name} for path parameters: /, /byZone, /{id}.",
    )
    parameters: Any = Field(
        [],
        title="Parameters",
        description="What the caller passes: each named, typed, required or not, and where it comes from.",
        json_schema_extra={
            "x-widget": "rows",
            "x-columns": [
                {"key": "name", "title": "Name"},
                {"key": "type", "title": "Type", "enum": ["string", "integer", "number", "boolean"]},
                {
                    "key": "in",
                    "title": "In",
                    "x-choices": [
                        ["query", "query string"],
                        ["path", "path"],
                        ["header", "header"],
                        ["body", "body"],
                    ],
                    "default": "query",
                },
                {"key": "required", "title": "Required", "type": "boolean"},
            ],
        },
    )
    operation: str = Field(
        "query",
        title="Answered by",
        description="An operation on the ontology with the caller's rights, or the flow (wire an http response node).",
        json_schema_extra={
            "x-choices": [
                ["query", "query the ontology"],
                ["getById", "get one by id"],
                ["insert", "insert"],
                ["update", "update"],
                ["delete", "delete"],
                ["flow", "the flow (output)"],
            ]
        },
    )
    ontology: str = Field(
        "",
        title="Ontology",
        description="The ontology the operation works on.",
        json_schema_extra={
            "x-choices": "ontologies",
            "x-show-if": {"operation": ["query", "getById", "insert", "update", "delete"]},
        },
    )
    query: Any = Field(
        "",
        title="Query",
        description='A MongoDB-style filter; "{$name}" takes the parameter\'s typed value, e.g. {"zone": "{$zone}"}.',
        json_schema_extra={
            "x-widget": "code",
            "x-language": "json",
            "x-show-if": {"operation": ["query", "update", "delete"]},
        },
    )
    sort: Any = Field(
        "",
        title="Sort",
        description='e.g. {"timestamp": -1}; blank: none.',
        json_schema_extra={"x-widget": "code", "x-language": "json", "x-show-if": {"operation": "query"}},
    )
    description: str = Field("", title="Description", description="Shown in the API's documentation.")


class ApiEndpointNode(Node[ApiEndpointConfig]):
    type = "api-endpoint"
    category = "network"
    label = "api endpoint"
    color = "#e2d96e"
    inputs = 0
    outputs = 1
    is_source = True
    Config = ApiEndpointConfig
    help = (
        "An operation of an API (api config node): method, path like /{id}, typed parameters, answered by an "
        "ontology operation (query with {$param} placeholders, getById, insert, update, delete) with the "
        "caller's rights, or by the flow (operation 'flow': wire it to an http response node)."
    )

    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        return 1 if getattr(config, "operation", "query") == "flow" else 0

    @classmethod
    def claims(cls, config: NodeConfig) -> list[str]:
        path = re.sub(r"\{[^}]*\}", "{}", str(getattr(config, "path", "/") or "/").rstrip("/") or "/")
        return [
            f"api-endpoint:{getattr(config, 'api', '')}:{str(getattr(config, 'method', 'GET')).upper()}:{path}"
        ]

    def setup(self) -> None:
        if not (self.config.api or "").strip():
            raise NodeError("api-endpoint: property 'api' must name an api config node")
        try:
            self.spec = endpoint_spec(self.config.model_dump())
        except SpecError as exc:
            raise NodeError(f"api-endpoint: {exc}") from None
        if self.spec.ontology is not None:
            registry = self.service(ONTOLOGIES)
            if not registry.exists(self.spec.ontology):
                raise NodeError(
                    f"api-endpoint: property 'ontology': no ontology named {self.spec.ontology!r}"
                )
        self._manager: Any = None
        self._pending: set[asyncio.Future] = set()

    async def start(self) -> None:
        manager = self.service(API_MANAGER)
        handler = self._flow if self.spec.operation == "flow" else None
        try:
            api = manager.add_endpoint(self.config.api, self.id, self.spec, handler)
        except ValueError as exc:
            self.status("red", "ring", "not published")
            raise NodeError(f"api-endpoint: {exc}") from None
        self._manager = manager
        self.status("green", "dot", f"{self.spec.method} v{api.version}/{api.name}{self.spec.path}")

    async def close(self, removed: bool) -> None:
        if self._manager is not None:
            self._manager.remove_endpoint(self.id)
            self._manager = None
        for (
            future
        ) in self._pending:  # calls still waiting for the flow get an answer, not a dropped connection
            if not future.done():
                future.set_result(
                    Response(
                        b'{"code":"stopping","message":"this operation is being redeployed or '
                        b'stopped; call again"}',
                        503,
                        media_type="application/json",
                    )
                )
        self._pending.clear()

    async def _flow(self, call: ApiCall) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._pending.add(future)
        future.add_done_callback(self._pending.discard)
        req = _request(call)
        msg: Msg = {
            "_msgid": new_msgid(),
            "req": req,
            "res": HttpResponseHandle(future),
            "payload": req["query"]
            if call.body is None and call.request.method in ("GET", "HEAD")
            else call.body,
            "api": {
                "name": call.api.name,
                "version": call.api.version,
                "user": call.user,
                "key": call.key_id,
                "params": dict(call.params),
            },
        }
        await self.send_wait(msg)
        return await future


def _request(call: ApiCall) -> HttpRequest:
    scope = call.request.scope
    headers: dict[str, str] = {}
    for k, v in scope["headers"]:
        name = k.decode("latin-1").lower()
        headers[name] = headers[name] + ", " + v.decode("latin-1") if name in headers else v.decode("latin-1")
    qs = scope.get("query_string", b"").decode("latin-1")
    query: dict[str, Any] = {}
    for key, value in parse_qsl(qs, keep_blank_values=True):
        prev = query.get(key)
        query[key] = value if prev is None else (prev + [value] if isinstance(prev, list) else [prev, value])
    path = scope["path"]
    client = scope.get("client")
    host = headers.get("host", "")
    return HttpRequest(
        method=scope["method"],
        url=path + ("?" + qs if qs else ""),
        originalUrl=path + ("?" + qs if qs else ""),
        path=path,
        params=dict(call.path_params),
        query=query,
        headers=headers,
        cookies={},
        body=call.body,
        ip=client[0] if client else None,
        hostname=host.rsplit(":", 1)[0] if host else "",
        protocol=scope.get("scheme", "http"),
    )
