"""tcp out: write msg.payload to a TCP connection: as a client of host:port, to every client of a port it
listens on, or back on the `tcp in` connection named by `msg._session` (reply)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from sofiaflow.nodes.network.socket_common import (
    bind_host,
    check_listen_port,
    close_writer,
    open_connection,
    parse_port,
    pause,
    reachable,
    tls_context,
    to_bytes,
)
from sofiaflow.runtime.api import UNDEFINED, Msg, Node, NodeConfig, NodeError, NRBool


class TcpOutConfig(NodeConfig):
    beserver: str = Field(
        "client",
        title="Type",
        json_schema_extra={
            "x-choices": [["client", "connect to"], ["server", "listen on"], ["reply", "reply to TCP"]]
        },
    )
    host: str = Field("", title="Host", json_schema_extra={"x-show-if": {"beserver": "client"}})
    port: str | int | None = Field(
        "", title="Port", json_schema_extra={"x-show-if": {"beserver": ["client", "server"]}}
    )
    base64: NRBool = Field(False, title="Decode a Base64 payload")
    end: NRBool = Field(False, title="Close the connection after each message")
    tls: str = Field("", title="TLS configuration", json_schema_extra={"x-config": "tls-config"})


class TcpOutNode(Node[TcpOutConfig]):
    type = "tcp out"
    category = "network"
    color = "#c0c0c0"
    inputs = 1
    outputs = 0
    Config = TcpOutConfig
    help = """Writes `msg.payload` to TCP: a Buffer as is, a string as UTF-8 (or decoded from base64 when
`base64` is set), anything else as its text.

**Modes** (`beserver`): *client* connects to `host`:`port` and keeps the connection (reconnecting after
`socketReconnectTime` ms); messages that arrive while it is not connected are dropped. *server* listens on
`port` and writes to every connected client. *reply* writes on the `tcp in` connection named by
`msg._session.id`, or on every `tcp in` connection when the message has no tcp session; `msg.reset = true`
closes the connection instead.

**Details**: with `end` the connection is closed after each write (the client reconnects at once). Flows of
non-administrators may only listen on ports above 1024.

**TLS**: with a `tls-config` node (`tls`) the server serves TLS with its certificate and key and the client
connects over TLS, trusting its CA and checking the server's certificate unless told not to (a reply goes
back on the `tcp in` connection as it is)."""

    def setup(self) -> None:
        cfg = self.config
        self.mode = cfg.beserver or "client"
        if self.mode not in ("client", "server", "reply"):
            raise NodeError(
                f"tcp out: property 'beserver' must be 'client', 'server' or 'reply', got {cfg.beserver!r}"
            )
        self.port: int | None = None
        if self.mode != "reply":
            self.port = parse_port(self, cfg.port)
        if self.mode == "server":
            assert self.port is not None
            check_listen_port(self, self.port)
        if self.mode == "client" and not (cfg.host or "").strip():
            raise NodeError("tcp out: property 'host' is required in client mode")
        self._server: asyncio.base_events.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._quick = asyncio.Event()
        self.connects = 0

    async def start(self) -> None:
        tls_id = self.config.tls if self.mode != "reply" else ""  # a reply goes back the way it came
        self._tls, self._servername = tls_context(self, tls_id, server=self.mode == "server")
        if self.mode == "server":
            try:
                self._server = await asyncio.start_server(
                    self._serve, bind_host(self), self.port, ssl=self._tls
                )
            except OSError as exc:
                raise NodeError(f"tcp out: unable to listen on port {self.port}, error: {exc}") from None
            self.status({"text": "0 connections"})
        elif self.mode == "client":
            self._task = self.spawn(self._client_loop())

    @property
    def connected(self) -> bool:
        return self._writer is not None

    # ----- server ---------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        self._count()
        try:
            while await reader.read(65536):
                pass  # what clients send is not read by tcp out
        except (OSError, ConnectionError):
            pass
        finally:
            self._clients.discard(writer)
            if not self._stopping:
                self._count()
            await close_writer(writer)

    def _count(self) -> None:
        n = len(self._clients)
        self.status({"text": f"{n} connection{'s' if n != 1 else ''}"})

    # ----- client ---------------------------------------------------------------------
    async def _client_loop(self) -> None:
        host = self.config.host.strip()
        while not self._stopping:
            self.status("grey", "dot", "connecting")
            try:
                reader, writer = await open_connection(host, self.port, self._tls, self._servername)
            except OSError as exc:
                self.log(f"connection lost to {host}:{self.port} ({exc})")
            else:
                self._writer = writer
                self.connects += 1
                self._quick.clear()
                self.status("green", "dot", "connected")
                try:
                    while await reader.read(65536):
                        pass
                except (OSError, ConnectionError):
                    pass
                self._writer = None
                await close_writer(writer)
                if not self._stopping:
                    self.status("red", "ring", "disconnected")
            if self._stopping:
                return
            quick = self._quick.is_set()
            delay = 0.02 if quick else float(self.setting("socketReconnectTime", 10000)) / 1000
            await pause(self, delay)

    # ----- input ----------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        if self.mode == "reply":
            self._reply(msg)
            return
        payload = msg.get("payload")
        if payload is None:
            return
        data = to_bytes(payload, self.config.base64)
        if self.mode == "server":
            for writer in list(self._clients):
                writer.write(data)
                if self.config.end:
                    writer.write_eof() if writer.can_write_eof() else writer.close()
            return
        writer = self._writer
        if writer is None:
            return
        writer.write(data)
        if self.config.end:
            self._quick.set()
            self.status({})
            writer.close()

    def _reply(self, msg: Msg) -> None:
        session: Any = msg.get("_session")
        pool = reachable(self)
        if isinstance(session, dict) and session.get("type") == "tcp":
            conn = pool.get(session.get("id"))  # type: ignore[arg-type]
            targets = [conn] if conn is not None else []
        else:
            targets = list(pool.values())
        for conn in targets:
            if msg.get("reset") is True:
                conn.writer.transport.abort()
            else:
                conn.writer.write(to_bytes(msg.get("payload", UNDEFINED), self.config.base64))

    async def close(self, removed: bool) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients):
            await close_writer(writer, abort=True)
        if self._writer is not None:
            await close_writer(self._writer, abort=True)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.status({})
