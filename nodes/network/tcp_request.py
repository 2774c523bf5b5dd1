"""tcp request: connect to host:port, send msg.payload and send on what comes back: after a time, a number
of bytes or a given byte, every chunk while the connection stays open, or nothing (send and close)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_string
from sofiaflow.nodes.network.socket_common import (
    close_writer,
    open_connection,
    parse_port,
    tls_context,
    to_bytes,
    unescape,
)
from sofiaflow.runtime.api import UNDEFINED, Msg, Node, NodeConfig, NodeError, NRBool, clone_message

QUEUE_SIZE = 1000
"""Messages waiting for one connection; past this the oldest are dropped (Node-RED's tcpMsgQueueSize)."""

_ESCAPES = {"\\n": 0x0A, "\\r": 0x0D, "\\t": 0x09, "\\e": 0x1B, "\\f": 0x0C, "\\0": 0x00}


class TcpRequestConfig(NodeConfig):
    server: str = Field("", title="Server", description="Blank: msg.host.")
    port: str | int | None = Field("", title="Port", description="Blank: msg.port.")
    out: str = Field(
        "time",
        title="Return",
        json_schema_extra={
            "x-choices": [
                ["time", "after a fixed timeout (ms)"],
                ["char", "when a character is received"],
                ["count", "a fixed number of characters"],
                ["sit", "never - keep the connection open"],
                ["immed", "immediately - do not wait for a reply"],
            ]
        },
    )
    splitc: str | int | float | None = Field(
        "0",
        title="Wait for",
        description="The timeout in ms, the character, or the count.",
        json_schema_extra={"x-widget": "text"},
    )
    ret: str = Field(
        "buffer",
        title="Output",
        json_schema_extra={"x-choices": [["buffer", "a Buffer"], ["string", "a String"]]},
    )
    newline: str = Field("", title="Split the stream on", description="Blank: no split.")
    trim: NRBool = Field(False, title="Remove the delimiter")
    tls: str = Field("", title="TLS configuration", json_schema_extra={"x-config": "tls-config"})


class _Link:
    """One connection (host:port) and what waits for it."""

    def __init__(self) -> None:
        self.queue: deque[Msg] = deque()
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task | None = None
        self.last: Msg = {}
        self.buf = bytearray()
        self.text = ""
        self.timer: Any = None
        self.closed = False


class TcpRequestNode(Node[TcpRequestConfig]):
    type = "tcp request"
    category = "network"
    color = "#c0c0c0"
    inputs = 1
    outputs = 1
    auto_done = False
    Config = TcpRequestConfig
    help = """Connects to `server`:`port` (or `msg.host`:`msg.port` when they are not set), writes
`msg.payload` (a Buffer as is, anything else as its text) and sends on the answer as a copy of the last
message sent to that connection with `payload` replaced.

**Return** (`out`): *time*: everything received within `splitc` ms of the first byte, then the connection
is closed; *count*: the first `splitc` bytes; *char*: up to and including the byte `splitc` (a character,
`\\n`-style escape or `0x..` code); *sit*: every chunk while the connection stays open (`msg.reset = true`
closes every connection, `msg.reset = "host:port"` one); *immed*: write and close, send nothing.

**Outputs**: `payload` as a Buffer, or a string when `ret` is *string* (in *sit* mode split on `newline`,
which `trim` keeps on the end of each part).

**TLS**: with a `tls-config` node (`tls`) every connection is made over TLS, trusting the node's CA (the
system's without one), presenting its certificate when it has one and checking the server's certificate
unless told not to; a failed handshake is reported as a failed connect."""

    def setup(self) -> None:
        cfg = self.config
        self.port = parse_port(self, cfg.port, required=False)
        self.mode = cfg.out
        if self.mode not in ("time", "count", "char", "sit", "immed"):
            raise NodeError(
                f"tcp request: property 'out' must be time, count, char, sit or immed, got {cfg.out!r}"
            )
        if cfg.ret not in ("buffer", "string"):
            raise NodeError(f"tcp request: property 'ret' must be 'buffer' or 'string', got {cfg.ret!r}")
        self.splitc = self._split_value(cfg.splitc)
        self.newline = unescape(cfg.newline or "")
        self._links: dict[str, _Link] = {}
        self._tls: Any = None
        self._servername = ""

    async def start(self) -> None:
        self._tls, self._servername = tls_context(self, self.config.tls, server=False)

    def _split_value(self, value: Any) -> float:
        if self.mode == "immed":
            return -1
        if self.mode == "char":
            text = js_string(value if value is not None else "")
            if text in _ESCAPES:
                return _ESCAPES[text]
            if text.startswith("0x"):
                try:
                    return int(text, 16)
                except ValueError:
                    raise NodeError(
                        f"tcp request: property 'splitc' is not a character code: {text!r}"
                    ) from None
            if not text:
                raise NodeError("tcp request: property 'splitc' needs the character to wait for")
            return ord(unescape(text)[0].encode("utf-8")[:1])
        try:
            number = float(js_string(value).strip() or 0) if value is not None else 0.0
        except ValueError:
            raise NodeError(f"tcp request: property 'splitc' must be a number, got {value!r}") from None
        if self.mode == "count" and (number < 0 or number != int(number)):
            raise NodeError(f"tcp request: property 'splitc' must be a whole number of bytes, got {value!r}")
        return number

    # ----- input ----------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        payload = msg.get("payload", UNDEFINED)
        if payload is not UNDEFINED and not isinstance(payload, (bytes, bytearray, str)):
            msg["payload"] = js_string(payload)
        host = self.config.server or msg.get("host")
        port = self.port or msg.get("port")
        if self.mode == "sit" and msg.get("reset"):
            self._reset(msg["reset"])
            if "payload" not in msg:
                self.done(msg)
                return
        if not host or not port:
            self.warn("Host and/or port not set")
            self.done(msg)
            return
        try:
            port = parse_port(self, port, "msg.port")
        except NodeError as exc:
            self.done(msg, exc)
            return
        key = f"{host}:{port}"
        link = self._links.get(key)
        if link is None or (link.task is not None and link.task.done()):
            link = self._links[key] = _Link()
        if len(link.queue) >= QUEUE_SIZE:
            self.done(link.queue.popleft())
        link.queue.append(msg)
        link.last = msg
        if link.task is None:
            link.task = self.spawn(self._run(key, link, str(host), port))
        elif link.writer is not None:
            self._flush(link)

    def _reset(self, reset: Any) -> None:
        keys = list(self._links) if reset is True else [reset] if isinstance(reset, str) else []
        for key in keys:
            link = self._links.get(key)
            if link is not None:
                self._drop(key, link)
        n = len(self._links)
        self.status("green", "ring" if n == 0 else "dot", f"{n} connection{'s' if n != 1 else ''}")

    # ----- connection -----------------------------------------------------------------
    async def _run(self, key: str, link: _Link, host: str, port: int) -> None:
        try:
            reader, writer = await open_connection(host, port, self._tls, self._servername)
        except OSError as exc:
            self.status("red", "ring", "error")
            waiting = list(link.queue)
            link.queue.clear()
            self._forget(key, link)
            for msg in waiting:
                self.done(msg, NodeError(f"connect failed {key}: {exc}"))
            return
        if link.closed:
            await close_writer(writer, abort=True)
            return
        link.writer = writer
        n = len(self._links)
        self.status("green", "dot", f"{n} connection{'s' if n != 1 else ''}")
        self._flush(link)
        if self.mode == "immed":
            self._forget(key, link)
            self.status({})
            await close_writer(writer)
            return
        try:
            while data := await reader.read(65536):
                if link.closed:
                    break
                self._received(key, link, data)
        except (OSError, ConnectionError):
            pass
        finally:
            link.writer = None
            if not link.closed:
                self.status("grey", "ring", "disconnected")
            if self.mode != "time" or link.timer is None:
                self._forget(key, link)
            await close_writer(writer)

    def _flush(self, link: _Link) -> None:
        writer = link.writer
        while link.queue and writer is not None:
            msg = link.queue.popleft()
            payload = msg.get("payload", UNDEFINED)
            if payload is not UNDEFINED:
                writer.write(to_bytes(payload))
            self.done(msg)

    def _forget(self, key: str, link: _Link) -> None:
        link.closed = True
        if self._links.get(key) is link:
            del self._links[key]
        for msg in link.queue:
            self.done(msg)
        link.queue.clear()

    def _drop(self, key: str, link: _Link) -> None:
        """Close a connection now (its reader sees the end)."""
        self._forget(key, link)
        if link.timer is not None:
            link.timer.cancel()
            link.timer = None
        if link.writer is not None:
            link.writer.transport.abort()

    # ----- answers --------------------------------------------------------------------
    def _received(self, key: str, link: _Link, data: bytes) -> None:
        if self.mode == "sit":
            self._sit(link, data)
        elif self.mode == "time":
            link.buf += data
            if link.timer is None:
                link.timer = self.call_later(max(self.splitc, 0) / 1000, lambda: self._timed_out(key, link))
        else:
            for byte in data:
                link.buf.append(byte)
                full = len(link.buf) >= self.splitc if self.mode == "count" else byte == self.splitc
                if full:
                    self._answer(link, bytes(link.buf))
                    link.buf.clear()
                    self._drop(key, link)
                    return

    def _timed_out(self, key: str, link: _Link) -> None:
        link.timer = None
        self._answer(link, bytes(link.buf))
        link.buf.clear()
        self.status({})
        self._drop(key, link)

    def _sit(self, link: _Link, data: bytes) -> None:
        if self.config.ret != "string":
            self._answer(link, data)
            return
        text = data.decode("utf-8", "replace")
        if not self.newline:
            self._answer(link, text)
            return
        link.text += text
        parts = link.text.split(self.newline)
        link.text = parts.pop()
        for part in parts:
            self._answer(link, part + self.newline if self.config.trim else part, raw=True)

    def _answer(self, link: _Link, payload: Any, raw: bool = False) -> None:
        out = clone_message(link.last)
        if not raw and self.config.ret == "string" and isinstance(payload, bytes):
            payload = payload.decode("utf-8", "replace")
        out["payload"] = payload
        self.send(out)

    async def close(self, removed: bool) -> None:
        links = list(self._links.items())
        for key, link in links:
            self._drop(key, link)
        tasks = [link.task for _key, link in links if link.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.status({})
