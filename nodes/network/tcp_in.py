"""tcp in: listen on a port (server) or connect to host:port (client) and turn what arrives into messages.

Each connection gets an id; its messages carry `msg._session = {"type": "tcp", "id": id}` so that a
`tcp out` node in reply mode writes back on that connection. In stream mode every chunk is a message (for
utf8 with a split string: every part), in single mode the whole of what a connection sent, when it ends.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
from typing import Any

from pydantic import Field

from sofiaflow.nodes.network.socket_common import (
    POOL,
    Connection,
    bind_host,
    check_listen_port,
    close_writer,
    new_session_id,
    open_connection,
    parse_port,
    pause,
    tls_context,
    unescape,
)
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool

READ_SIZE = 65536


class TcpInConfig(NodeConfig):
    server: str | bool = Field(
        "server",
        title="Type",
        json_schema_extra={"x-choices": [["server", "listen on"], ["client", "connect to"]]},
    )
    host: str = Field("", title="Host", json_schema_extra={"x-show-if": {"server": "client"}})
    port: str | int | None = Field("", title="Port")
    datamode: str = Field(
        "stream",
        title="Output",
        json_schema_extra={"x-choices": [["stream", "a stream of"], ["single", "a single"]]},
    )
    datatype: str = Field(
        "buffer",
        title="Payload",
        json_schema_extra={
            "x-choices": [["buffer", "a Buffer"], ["utf8", "a String"], ["base64", "a Base64 string"]]
        },
    )
    newline: str = Field(
        "", title="Delimited by", description="Split the stream on this string (e.g. \\n); blank: no split."
    )
    topic: str = Field("", title="Topic")
    trim: NRBool = Field(False, title="Remove the delimiter")
    base64: NRBool = Field(False, title="Base64", json_schema_extra={"x-widget": "hidden"})
    tls: str = Field("", title="TLS configuration", json_schema_extra={"x-config": "tls-config"})
    """A tls-config node: serve (server) or connect (client) over TLS."""


class _Decoder:
    """Chunks of one connection to payloads: bytes, utf8 text (multi-byte characters may span chunks) or
    base64 text per chunk."""

    def __init__(self, datatype: str) -> None:
        self.datatype = datatype
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def __call__(self, data: bytes, final: bool = False) -> Any:
        if self.datatype == "utf8":
            return self._utf8.decode(data, final)
        if self.datatype == "base64":
            return base64.b64encode(data).decode("ascii")
        return data


class TcpInNode(Node[TcpInConfig]):
    type = "tcp in"
    category = "network"
    color = "#c0c0c0"
    inputs = 0
    outputs = 1
    is_source = True
    Config = TcpInConfig
    help = """Reads data from a TCP port: as a server listening on `port`, or as a client connected to
`host`:`port` (reconnecting after `socketReconnectTime` ms when the connection is lost).

**Outputs**: `payload` (a Buffer, utf8 text or base64 text: `datatype`), `topic`, `ip` and `port` of the
peer (server mode), and `_session` `{type: "tcp", id}` that a `tcp out` node set to *reply* uses to answer
on the same connection.

**Details**: `datamode` *stream* sends each chunk as it arrives; with utf8 and a split string (`newline`,
e.g. `\\n`) each complete part is a message (`trim` keeps the split string on the end of each part), the
remainder is sent when the connection ends. *single* sends everything a connection sent in one message when
it closes. Flows of non-administrators may only listen on ports above 1024.

**TLS**: with a `tls-config` node (`tls`) a server serves TLS with its certificate and key, and a client
connects over TLS, trusting its CA and checking the server's certificate unless told not to."""

    def setup(self) -> None:
        cfg = self.config
        self.is_server = cfg.server is True or cfg.server == "server"
        if not self.is_server and cfg.server not in ("client", False):
            raise NodeError(f"tcp in: property 'server' must be 'server' or 'client', got {cfg.server!r}")
        if cfg.datamode not in ("stream", "single", ""):
            raise NodeError(f"tcp in: property 'datamode' must be 'stream' or 'single', got {cfg.datamode!r}")
        if cfg.datatype not in ("buffer", "utf8", "base64", ""):
            raise NodeError(
                f"tcp in: property 'datatype' must be 'buffer', 'utf8' or 'base64', got {cfg.datatype!r}"
            )
        self.port = parse_port(self, cfg.port)
        assert self.port is not None
        if self.is_server:
            check_listen_port(self, self.port)
        elif not (cfg.host or "").strip():
            raise NodeError("tcp in: property 'host' is required in client mode")
        self.stream = cfg.datamode != "single"
        self.datatype = cfg.datatype or "buffer"
        self.newline = unescape(cfg.newline or "")
        self._server: asyncio.base_events.Server | None = None
        self._writers: dict[str, asyncio.StreamWriter] = {}
        self._client_task: asyncio.Task | None = None
        self._stopping = False
        self.connections = 0
        self.connects = 0
        self.served = 0
        """Connections that ended (server mode)."""

    async def start(self) -> None:
        self._tls, self._servername = tls_context(self, self.config.tls, server=self.is_server)
        if self.is_server:
            try:
                self._server = await asyncio.start_server(
                    self._serve, bind_host(self), self.port, ssl=self._tls
                )
            except OSError as exc:
                raise NodeError(f"tcp in: unable to listen on port {self.port}, error: {exc}") from None
            self.status({"text": "0 connections"})
        else:
            self._client_task = self.spawn(self._client_loop())

    # ----- server ---------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        self.connections += 1
        self.status({"text": f"{self.connections} connection{'s' if self.connections != 1 else ''}"})
        try:
            await self._read(reader, writer, {"ip": peer[0], "port": peer[1]})
        finally:
            self.connections -= 1
            self.served += 1
            if not self._stopping:
                self.status({"text": f"{self.connections} connection{'s' if self.connections != 1 else ''}"})

    # ----- client ---------------------------------------------------------------------
    async def _client_loop(self) -> None:
        host = self.config.host.strip()
        while not self._stopping:
            self.status("grey", "dot", "connecting")
            quick = False
            try:
                reader, writer = await open_connection(host, self.port, self._tls, self._servername)
            except OSError as exc:
                self.log(f"connection lost to {host}:{self.port} ({exc})")
            else:
                self.connects += 1
                self.status("green", "dot", "connected")
                quick = await self._read(reader, writer, {})
                if not self._stopping:
                    self.status("red", "ring", "disconnected")
            if self._stopping:
                return
            delay = 0.02 if quick else float(self.setting("socketReconnectTime", 10000)) / 1000
            await pause(self, delay)

    # ----- both -----------------------------------------------------------------------
    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: dict) -> bool:
        """Read one connection to its end; True when it sent something in single (or split) mode."""
        sid = new_session_id()
        POOL[sid] = Connection(self, writer)
        self._writers[sid] = writer
        decode = _Decoder(self.datatype)
        pending: Any = b"" if self.datatype == "buffer" else ""
        split = self.stream and self.datatype == "utf8" and self.newline != ""
        try:
            while True:
                try:
                    data = await reader.read(READ_SIZE)
                except (OSError, ConnectionError) as exc:
                    self.log(f"socket error from {peer.get('ip', self.config.host)}: {exc}")
                    data = b""
                if not data:
                    break
                chunk = decode(data)
                if not self.stream:
                    pending += chunk
                elif split:
                    pending += chunk
                    parts = pending.split(self.newline)
                    pending = parts.pop()
                    for part in parts:
                        self._emit(part + self.newline if self.config.trim else part, peer, sid)
                else:
                    self._emit(chunk, peer, sid)
            if self.datatype == "utf8" and (split or not self.stream):
                pending += decode(b"", final=True)
            if (not self.stream or split) and len(pending) > 0:
                self._emit(pending, peer, sid)
                return True
            return False
        finally:
            POOL.pop(sid, None)
            self._writers.pop(sid, None)
            await close_writer(writer)

    def _emit(self, payload: Any, peer: dict, sid: str) -> None:
        msg: Msg = {
            "topic": self.config.topic,
            "payload": payload,
            **peer,
            "_session": {"type": "tcp", "id": sid},
        }
        self.send(msg)

    async def close(self, removed: bool) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for sid, writer in list(self._writers.items()):
            POOL.pop(sid, None)
            await close_writer(writer, abort=True)
        if self._client_task is not None:
            self._client_task.cancel()
            await asyncio.gather(self._client_task, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        self.status({})
