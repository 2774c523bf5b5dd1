"""websocket in: messages from a websocket-listener's clients (or from a websocket-client connection).

Each frame becomes `msg.payload` (text as str, binary as bytes), or the whole message when the config
node's `wholemsg` is on, with `msg._session = {"type": "websocket", "id": <client id>}`.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sofiaflow.runtime.api import Node, NodeConfig, NodeError


class WebsocketInConfig(NodeConfig):
    server: str | None = Field(
        "",
        title="Listen on",
        description="A websocket-listener config node (this server's path).",
        json_schema_extra={"x-config": "websocket-listener"},
    )
    client: str | None = Field(
        "",
        title="Connect to",
        description="A websocket-client config node (a remote URL).",
        json_schema_extra={"x-config": "websocket-client"},
    )


class WebsocketInNode(Node[WebsocketInConfig]):
    type = "websocket in"
    category = "network"
    color = "rgb(215, 215, 160)"
    inputs = 0
    outputs = 1
    is_source = True
    Config = WebsocketInConfig
    help = (
        "Receives the frames websocket clients send to a websocket-listener path (or a websocket-client "
        "connection receives) as msg.payload, with msg._session naming the client for replies."
    )

    def setup(self) -> None:
        # Node-RED: `this.server = (n.client) ? n.client : n.server`
        self._target = self.config.client or self.config.server or ""
        if not self._target:
            raise NodeError(
                "websocket in: missing server configuration: set 'server' (a websocket-listener) "
                "or 'client' (a websocket-client)"
            )
        self._endpoint: Any = None

    async def start(self) -> None:
        endpoint = self.config_node(self._target)
        if endpoint is None:
            raise NodeError(
                f"websocket in: missing server configuration: config node {self._target!r} is not deployed"
            )
        register = getattr(endpoint, "register_input", None)
        if register is not None:
            register(self)
        self._endpoint = endpoint

    async def close(self, removed: bool) -> None:
        endpoint, self._endpoint = self._endpoint, None
        remove = getattr(endpoint, "remove_input", None)
        if remove is not None:
            remove(self)
