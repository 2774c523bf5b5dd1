"""ssap-rest in: onesait's IoT Broker REST API (`/iot-broker/rest/...`); each call becomes an SSAP request."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from sofiaflow.nodes.network.http_in import refuse_platform_paths
from sofiaflow.nodes.onesait.platform_only import refuse_in_tenant_flow
from sofiaflow.runtime.api import (
    HTTP_ROUTES,
    SSAP_REST_ROUTES,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    RestReply,
    SsapError,
    decode_ssap_body,
    new_msgid,
    route_claim_key,
    ssap,
    to_ssap,
)

MAX_BODY = 16 * 1024 * 1024
DEFAULT_URL = "/iot-broker/rest"


class SsapRestInConfig(NodeConfig):
    url: str = Field(DEFAULT_URL, title="URL", description="The path devices POST their SSAP messages to.")


class SsapRestInNode(Node[SsapRestInConfig]):
    type = "ssap-rest in"
    category = "onesait"
    color = "#8fbce6"
    inputs = 0
    outputs = 1
    is_source = True
    Config = SsapRestInConfig
    help = (
        "Serves onesait's IoT Broker REST API under url (default /iot-broker/rest): client/join, "
        "client/leave, ontology insert, query (GET and POST), update and delete by id or query, subscribe. "
        "Each call leaves as an SSAP request in msg.payload; answer it with ssap process and ssap response."
    )

    @classmethod
    def claims(cls, config: NodeConfig) -> list[str]:
        base = _base(getattr(config, "url", "") or DEFAULT_URL)
        return [f"http:{method}:{route_claim_key(base + path)}" for method, path, _op in SSAP_REST_ROUTES]

    def setup(self) -> None:
        refuse_in_tenant_flow(self)
        url = (self.config.url or "").strip()
        if not url.startswith("/"):
            raise NodeError(f"ssap-rest in: property 'url' must start with '/', got {self.config.url!r}")
        self._base = _base(url)
        self._routes: Any = None
        refuse_platform_paths(self, [self._base + path for _m, path, _op in SSAP_REST_ROUTES], "ssap-rest in")

    async def start(self) -> None:
        routes = self.service(HTTP_ROUTES)
        try:
            for method, path, operation in SSAP_REST_ROUTES:
                routes.add_route(method, self._base + path, self._route_handler(operation), owner=self.id)
        except ValueError as exc:
            routes.remove_owner(self.id)
            raise NodeError(str(exc)) from None
        self._routes = routes

    async def close(self, removed: bool) -> None:
        if self._routes is not None:
            self._routes.remove_owner(self.id)
            self._routes = None

    def _route_handler(self, operation: str):
        async def handle(request: Any, params: dict[str, str]) -> Any:
            routes = self._routes
            future = asyncio.get_running_loop().create_future()
            reply = RestReply(future)
            if routes is None:
                reply.send(ssap.error({}, ssap.PROCESSOR, "the IoT Broker flow is stopping"))
                return await future
            raw = await request.body()
            if len(raw) > MAX_BODY:
                reply.send(ssap.error({}, ssap.PROCESSOR, f"the body is larger than {MAX_BODY} bytes"))
                return await future
            headers = {k.lower(): v for k, v in request.headers.items()}
            try:
                envelope = to_ssap(
                    operation, params, dict(request.query_params), headers, decode_ssap_body(raw)
                )
            except SsapError as exc:
                reply.send(ssap.error({}, exc.code, str(exc)))
                return await future
            msg: Msg = {
                "_msgid": new_msgid(),
                "payload": envelope,
                "ssap": {"transport": "http", "operation": operation, "reply": reply},
            }
            await self.send_wait(msg)
            return await routes.wait(future)

        return handle


def _base(url: str) -> str:
    return "/" + url.strip().strip("/") if url.strip().strip("/") else ""
