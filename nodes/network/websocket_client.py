"""websocket-client: an outbound websocket connection (config node) for websocket in/out nodes.

Connects to `path` (ws:// or wss://, with the `tls` config node, the upgrade `headers` and the
comma-separated `subprotocol`), pings every `hb` seconds when set (no pong by the next ping closes the
connection), and reconnects after a drop: first after `websocketReconnectTime` (setting, ms, default
3000, Node-RED's fixed delay), doubling on each failed attempt up to 60 s. Each connection is a new
session id. Frames reach the `websocket in` nodes as `msg.payload` (text as str, binary as bytes),
or whole messages with `wholemsg`, with `msg._session = {"type": "websocket", "id": <session>}`;
`websocket out` nodes send with `broadcast(data)` (or `reply(session, data)`). Users show
connected / disconnected / error. Frames sent while disconnected are dropped with a warning.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import Field
from websockets.asyncio.client import ClientConnection, connect

from sofiaflow.nodes.network.http_util import HEADER_ROWS, tls_context
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, clone_message, new_msgid

MAX_QUEUED = 10_000
MAX_BACKOFF = 60.0
MAX_FRAME = 100 * 2**20  # the ws package's default maxPayload


class WebsocketClientConfig(NodeConfig):
    path: str = Field("", title="URL", description="e.g. ws://example.com/ws or wss://...")
    tls: str | None = Field("", title="TLS configuration", json_schema_extra={"x-config": "tls-config"})
    wholemsg: Any = Field(
        "false",
        title="Send/receive the whole message",
        description="Unchecked: only the payload.",
        json_schema_extra={"x-widget": "checkbox"},
    )
    hb: Any = Field(
        "",
        title="Heartbeat (seconds)",
        description="Send a ping this often; blank or 0: none.",
        json_schema_extra={"x-widget": "text"},
    )
    subprotocol: str | None = Field("", title="Subprotocol")
    headers: list[Any] = Field(
        [],
        title="Headers",
        description="Headers sent with the connection request.",
        json_schema_extra=HEADER_ROWS,
    )


class WebsocketClientNode(Node[WebsocketClientConfig]):
    type = "websocket-client"
    category = "config"
    inputs = 0
    outputs = 0
    is_config_node = True
    Config = WebsocketClientConfig
    help = "An outbound websocket connection (ws:// or wss:// URL) that websocket in/out nodes use; it reconnects."

    def setup(self) -> None:
        cfg = self.config
        self.path = (cfg.path or "").strip()
        if not self.path.lower().startswith(("ws://", "wss://")):
            raise NodeError(
                f"websocket-client: property 'path' must be a ws:// or wss:// URL, not {cfg.path!r}"
            )
        self.wholemsg = cfg.wholemsg is True or str(cfg.wholemsg).lower() == "true"
        try:
            hb = int(float(str(cfg.hb).strip() or 0))
        except ValueError:
            raise NodeError(
                f"websocket-client: property 'hb' must be a number of seconds, not {cfg.hb!r}"
            ) from None
        self.heartbeat: float | None = float(hb) if hb > 0 else None
        self.subprotocols = [p.strip() for p in (cfg.subprotocol or "").split(",") if p.strip()]
        self._headers: list[tuple[str, Any, str]] = []
        for row in cfg.headers or []:
            if not isinstance(row, dict):
                raise NodeError(f"websocket-client: each row of 'headers' must be an object, not {row!r}")
            name = row.get("keyValue") if row.get("keyType") == "other" else row.get("keyType")
            self._headers.append((name or "", row.get("valueValue"), row.get("valueType") or ""))
        try:
            base = float(self.setting("websocketReconnectTime", 3000)) / 1000
        except (TypeError, ValueError):
            base = 3.0
        self.reconnect_delay = base if base > 0 else 3.0
        self._inputs: list[Node] = []
        self._outputs: list[Node] = []
        self._ws: ClientConnection | None = None
        self._session: str | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._last_event = ""
        self.connects = 0

    async def start(self) -> None:
        headers = {}
        for name, value, kind in self._headers:
            if kind == "other":
                text = value
            elif kind == "env":
                text = self.evaluate(value, "env", None)
            else:
                text = kind
            if name and text:
                headers[name] = str(text)
        ssl = tls_context(self, self.config.tls) if self.path.lower().startswith("wss://") else None
        options = {
            "subprotocols": self.subprotocols or None,
            "additional_headers": headers or None,
            "ping_interval": self.heartbeat,
            "ping_timeout": self.heartbeat,
            "close_timeout": 1.0,
            "max_size": MAX_FRAME,
            "max_queue": 64,
        }
        if ssl is not None:
            options["ssl"] = ssl
        self._task = self.spawn(self._run(options))

    async def close(self, removed: bool) -> None:
        self._closing = True
        ws, task = self._ws, self._task
        if ws is not None:
            try:
                async with asyncio.timeout(1.0):
                    await ws.close()
            except (TimeoutError, OSError):
                pass
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=2.0)

    # ----- used by websocket in / out --------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def session(self) -> str | None:
        """The id of the current connection (`msg._session.id`), or None while disconnected."""
        return self._session

    def register_input(self, node: Node) -> None:
        self._inputs.append(node)
        if self._last_event:
            self._show(node, self._last_event)

    def remove_input(self, node: Node) -> None:
        if node in self._inputs:
            self._inputs.remove(node)

    unregister_input = remove_input

    def register_output(self, node: Node) -> None:
        self._outputs.append(node)
        if self._last_event:
            self._show(node, self._last_event)

    def remove_output(self, node: Node) -> None:
        if node in self._outputs:
            self._outputs.remove(node)

    def broadcast(self, data: str | bytes) -> bool:
        """Send one frame (str = text, bytes = binary) on the connection; False (and a warning) when down."""
        if self._ws is None:
            self.warn("An error occurred while sending: Error: WebSocket is not open")
            return False
        if self._queue.qsize() >= MAX_QUEUED:
            self.warn(f"An error occurred while sending: {MAX_QUEUED} frames already wait; frame dropped")
            return False
        self._queue.put_nowait((self._session, data))
        return True

    def reply(self, session_id: Any, data: str | bytes) -> bool:
        """Send to the connection `session_id` names, if it is still the current one (else dropped)."""
        if session_id != self._session or self._ws is None:
            return False
        return self.broadcast(data)

    # ----- the connection ----------------------------------------------------------------------------------------
    async def _run(self, options: dict) -> None:
        failures = 0
        while not self._closing:
            opened = False
            try:
                async with connect(self.path, **options) as ws:
                    opened, failures = True, 0
                    self.connects += 1
                    self._ws, self._session = ws, new_msgid()
                    self._notify("connect")
                    writer = asyncio.get_running_loop().create_task(self._write(ws, self._session))
                    try:
                        async for data in ws:
                            await self._dispatch(self._session, data)
                    finally:
                        writer.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure ends this connection; we retry
                if not self._closing:
                    self.log(f"websocket-client {self.path}: {type(exc).__name__}: {exc}")
                    self._notify("error")
            finally:
                self._ws = None
                while not self._queue.empty():
                    self._queue.get_nowait()
                if opened or not self._closing:
                    self._notify("disconnect")  # as ws's 'close' event, which follows 'error' too
            if self._closing:
                return
            delay = min(self.reconnect_delay * 2 ** min(failures, 16), max(MAX_BACKOFF, self.reconnect_delay))
            failures += 1
            await self._sleep(delay)

    async def _write(self, ws: ClientConnection, session: str) -> None:
        while True:
            owner, data = await self._queue.get()
            if owner == session:
                await ws.send(data if data.__class__ is str else bytes(data))

    def _sleep(self, seconds: float) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.call_later(seconds, lambda: None if fut.done() else fut.set_result(None))
        return fut

    async def _dispatch(self, session: str, data: str | bytes) -> None:
        inputs = self._inputs
        if not inputs:
            return
        msg: Msg
        if self.wholemsg:
            try:
                parsed = json.loads(data)
            except ValueError:
                msg = {"payload": data}
            else:
                msg = parsed if isinstance(parsed, dict) else {"payload": parsed}
        else:
            msg = {"payload": data}
        msg["_session"] = {"type": "websocket", "id": session}
        await inputs[0].send_wait(msg)
        for node in inputs[1:]:
            node.send(clone_message(msg))

    def _notify(self, event: str) -> None:
        self._last_event = event
        for node in self._inputs + self._outputs:
            self._show(node, event)

    def _show(self, node: Node, event: str) -> None:
        fill, shape, text = {
            "connect": ("green", "dot", "connected"),
            "error": ("red", "ring", "error"),
            "disconnect": ("red", "ring", "disconnected"),
        }[event]
        node.status(
            {
                "fill": fill,
                "shape": shape,
                "text": text,
                "event": event,
                "_session": {"type": "websocket", "id": self._session},
            }
        )
