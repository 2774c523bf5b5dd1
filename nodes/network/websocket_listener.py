"""websocket-listener: a websocket server endpoint (config node) on the runtime's "http" service.

Each connected client gets an id; frames it sends reach every `websocket in` node using this
listener with `msg._session = {"type": "websocket", "id": <client id>}`. `websocket out` nodes answer
through `reply(id, data)` (one client) or `broadcast(data)` (all). With `wholemsg` the frames are
whole messages as JSON. Sends are queued per client, so a slow client never blocks a flow.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from pydantic import Field

from sofiaflow.runtime.api import HTTP_ROUTES, Msg, Node, NodeConfig, NodeError, NRBool, clone_message

MAX_QUEUED = 10_000
"""Frames waiting for one client; past this the client is too slow and is disconnected."""

_CLOSE = object()


class WebsocketListenerConfig(NodeConfig):
    path: str = Field("", title="Path", description="e.g. /ws/example")
    wholemsg: NRBool = Field(
        False, title="Send/receive the whole message", description="Unchecked: only the payload."
    )


class _Client:
    __slots__ = ("id", "ws", "queue", "sender", "finished")

    def __init__(self, cid: str, ws: Any) -> None:
        self.id = cid
        self.ws = ws
        self.queue: asyncio.Queue = asyncio.Queue()
        self.sender: asyncio.Task | None = None
        self.finished = asyncio.get_running_loop().create_future()

    def put(self, data: Any) -> bool:
        if self.queue.qsize() >= MAX_QUEUED and data is not _CLOSE:
            return False
        self.queue.put_nowait(data)
        return True


class WebsocketListenerNode(Node[WebsocketListenerConfig]):
    type = "websocket-listener"
    category = "config"
    inputs = 0
    outputs = 0
    is_config_node = True
    Config = WebsocketListenerConfig
    help = "A websocket server path (relative to the http node root) that websocket in/out nodes use."

    def setup(self) -> None:
        path = (self.config.path or "").strip()
        if not path:
            raise NodeError("websocket-listener: property 'path' is required (e.g. /ws/data)")
        self.path = path if path.startswith("/") else "/" + path
        self.wholemsg = bool(self.config.wholemsg)
        self._clients: dict[str, _Client] = {}
        self._inputs: list[Node] = []
        self._outputs: list[Node] = []
        self._routes: Any = None

    async def start(self) -> None:
        routes = self.service(HTTP_ROUTES)
        try:
            routes.add_websocket(self.path, self._serve, owner=self.id)
        except ValueError as exc:
            raise NodeError(str(exc)) from None
        self._routes = routes

    async def close(self, removed: bool) -> None:
        if self._routes is not None:
            self._routes.remove_owner(self.id)
            self._routes = None
        clients = list(self._clients.values())
        for client in clients:
            client.put(_CLOSE)
        if clients:
            await asyncio.wait([c.finished for c in clients], timeout=2.0)

    # ----- used by websocket in / out ---------------------------------------------------------------------
    def register_input(self, node: Node) -> None:
        self._inputs.append(node)
        self._show(node, None)

    def remove_input(self, node: Node) -> None:
        if node in self._inputs:
            self._inputs.remove(node)

    def register_output(self, node: Node) -> None:
        self._outputs.append(node)
        self._show(node, None)

    def remove_output(self, node: Node) -> None:
        if node in self._outputs:
            self._outputs.remove(node)

    @property
    def client_count(self) -> int:
        return len(self._clients)

    def reply(self, client_id: Any, data: str | bytes) -> None:
        """Send `data` to one client (ignored when it is gone, as Node-RED)."""
        client = self._clients.get(client_id) if isinstance(client_id, str) else None
        if client is not None and not client.put(data):
            self._too_slow(client)

    def broadcast(self, data: str | bytes) -> None:
        """Send `data` to every connected client."""
        for client in list(self._clients.values()):
            if not client.put(data):
                self._too_slow(client)

    # ----- connections ----------------------------------------------------------------------------------------
    async def _serve(self, ws: Any) -> None:
        await ws.accept()
        cid = os.urandom(8).hex()
        client = _Client(cid, ws)
        client.sender = asyncio.get_running_loop().create_task(self._send_loop(client))
        self._clients[cid] = client
        self._notify(cid, True)
        try:
            receive = ws.receive
            while True:
                message = await receive()
                kind = message["type"]
                if kind == "websocket.receive":
                    text = message.get("text")
                    await self._dispatch(cid, text if text is not None else message.get("bytes") or b"")
                elif kind == "websocket.disconnect":
                    break
        except Exception as exc:  # noqa: BLE001 - a broken connection ends that client only
            self.log(f"websocket client {cid} dropped: {exc}")
        finally:
            self._clients.pop(cid, None)
            if not client.sender.done():
                client.sender.cancel()
            if not client.finished.done():
                client.finished.set_result(None)
            self._notify(cid, False)

    async def _send_loop(self, client: _Client) -> None:
        ws, queue = client.ws, client.queue
        try:
            while True:
                data = await queue.get()
                if data is _CLOSE:
                    await ws.close(1001)
                    return
                if data.__class__ is str:
                    await ws.send({"type": "websocket.send", "text": data})
                else:
                    await ws.send({"type": "websocket.send", "bytes": bytes(data)})
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the peer is gone; the receive side ends the session
            return

    def _too_slow(self, client: _Client) -> None:
        self.warn(f"websocket client {client.id} is too slow ({MAX_QUEUED} frames queued): disconnecting it")
        while not client.queue.empty():
            client.queue.get_nowait()
        client.put(_CLOSE)

    async def _dispatch(self, cid: str, data: str | bytes) -> None:
        inputs = self._inputs
        if not inputs:
            return
        if self.wholemsg:
            try:
                parsed = json.loads(data)
            except ValueError:
                parsed = None
                msg: Msg = {"payload": data}
            else:
                msg = parsed if isinstance(parsed, dict) else {"payload": parsed}
        else:
            msg = {"payload": data}
        msg["_session"] = {"type": "websocket", "id": cid}
        await inputs[0].send_wait(msg)
        for node in inputs[1:]:
            node.send(clone_message(msg))

    def _notify(self, cid: str, opened: bool) -> None:
        for node in self._inputs + self._outputs:
            self._show(
                node,
                {
                    "event": "connect" if opened else "disconnect",
                    "_session": {"type": "websocket", "id": cid},
                },
            )

    def _show(self, node: Node, extra: dict | None) -> None:
        count = len(self._clients)
        if count:
            status = {"fill": "green", "shape": "dot", "text": f"connected {count}"}
        elif extra is None:
            return
        else:
            status = {"fill": "red", "shape": "ring", "text": "disconnected"}
        if extra:
            status.update(extra)
        node.status(status)
