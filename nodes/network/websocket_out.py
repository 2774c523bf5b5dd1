"""websocket out: sends msg.payload (or the whole msg as JSON with `wholemsg`) over a websocket.

With a websocket-listener, the frame goes to the client in `msg._session.id` when the message has a
websocket session, otherwise to every connected client. Bytes go as binary frames, strings as text,
objects as JSON text, other values as their JavaScript text; empty strings are not sent (Node-RED).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_json_stringify, js_string
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError

_MISSING = object()


class WebsocketOutConfig(NodeConfig):
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


class WebsocketOutNode(Node[WebsocketOutConfig]):
    type = "websocket out"
    category = "network"
    color = "rgb(215, 215, 160)"
    inputs = 1
    outputs = 0
    Config = WebsocketOutConfig
    help = (
        "Sends msg.payload to websocket clients: to the client in msg._session (a reply) or to all of a "
        "listener's clients; with 'send/receive entire message' the whole msg goes as JSON."
    )

    def setup(self) -> None:
        self._target = self.config.client or self.config.server or ""
        if not self._target:
            raise NodeError(
                "websocket out: missing server configuration: set 'server' (a websocket-listener) "
                "or 'client' (a websocket-client)"
            )
        self._endpoint: Any = None

    async def start(self) -> None:
        endpoint = self.config_node(self._target)
        if endpoint is None:
            raise NodeError(
                f"websocket out: missing server configuration: config node {self._target!r} is not deployed"
            )
        register = getattr(endpoint, "register_output", None)
        if register is not None:
            register(self)
        self._endpoint = endpoint

    async def close(self, removed: bool) -> None:
        endpoint, self._endpoint = self._endpoint, None
        remove = getattr(endpoint, "remove_output", None)
        if remove is not None:
            remove(self)

    def on_input(self, msg: Msg) -> None:
        endpoint = self._endpoint
        if endpoint is None:
            raise NodeError("websocket out: missing server configuration")
        session = msg.get("_session")
        if getattr(endpoint, "wholemsg", False):
            out = {k: v for k, v in msg.items() if k != "_session"}
            data: Any = js_json_stringify(out)
        else:
            payload = msg.get("payload", _MISSING)
            if payload is _MISSING:
                return
            cls = payload.__class__
            if cls is bytes or cls is bytearray or cls is memoryview:
                data = bytes(payload)
            elif cls is str:
                data = payload
            elif payload is None or isinstance(payload, (dict, list)):
                data = js_json_stringify(payload)
            else:
                data = js_string(payload)
        if data.__class__ is str and not data:
            return
        if isinstance(session, dict) and session.get("type") == "websocket":
            endpoint.reply(session.get("id"), data)
        else:
            endpoint.broadcast(data)
