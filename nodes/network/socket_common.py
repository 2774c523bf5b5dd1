"""What the tcp and udp nodes share: ports, payload bytes, the pool of tcp in connections, listen addresses.

Ports come from flow JSON as numbers or numeric strings; a listening node of a developer's flow may only bind
ports above 1024 (privileged ports are the platform's). `tcp in` registers each connection in `POOL` under
its `msg._session.id`, so that `tcp out` in reply mode answers on the right socket; a node only reaches the
connections of nodes it may reach (`Node.may_reach`), never another tenant's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any

from sofiaflow.nodes.jsvalues import js_string
from sofiaflow.runtime.api import Node, NodeError

PRIVILEGED_MAX = 1024
"""Ports up to this one are refused to the listening nodes of non-administrators' flows."""

BIND_SETTING = "networkBindHost"
"""Node setting: the address tcp/udp listeners bind (all interfaces when unset, as Node-RED)."""


def parse_port(node: Node, value: Any, prop: str = "port", *, required: bool = True) -> int | None:
    """A port number from a stored property: an int 1..65535, or None when empty and not required."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise NodeError(f"{node.type}: property '{prop}' is required (a port number 1-65535)")
        return None
    try:
        port = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise NodeError(
            f"{node.type}: property '{prop}' must be a port number 1-65535, got {value!r}"
        ) from None
    if isinstance(value, bool) or not 1 <= port <= 65535:
        raise NodeError(f"{node.type}: property '{prop}' must be a port number 1-65535, got {value!r}")
    return port


def check_listen_port(node: Node, port: int, prop: str = "port") -> None:
    """Refuse a privileged port to a node of a non-administrator's flow."""
    if node.tenant is not None and port <= PRIVILEGED_MAX:
        raise NodeError(
            f"{node.type}: property '{prop}' is {port}; flows of non-administrators may only listen on "
            f"ports above {PRIVILEGED_MAX}"
        )


def tls_context(node: Node, tls_id: str, *, server: bool) -> tuple[ssl.SSLContext | None, str]:
    """(SSL context, server name) from the `tls-config` node `tls_id` as Node-RED's `addTLSOptions` gives them to
    `tls.createServer` / `tls.connect`; (None, "") when `tls_id` is empty.

    A server presents its certificate and key (files `cert`/`key`, or the PEM text `certdata`/`keydata` of the
    node's credentials) and asks clients for none. A client trusts `ca`/`cadata` (the system's CAs without one),
    presents a certificate when one is set and checks the server's unless `verifyservercert` is off; the server
    name (SNI and the name checked) is `servername` when set."""
    if not tls_id:
        return None, ""
    tls = node.config_node(tls_id)
    if tls is None or tls.type != "tls-config":
        raise NodeError(f"{node.type}: property 'tls': tls-config node {tls_id!r} is not running here")
    conf = {k: getattr(tls.config, k, "") for k in ("cert", "key", "ca", "servername", "alpnprotocol")}
    creds = tls.credentials or {}
    passphrase = creds.get("passphrase") or None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    try:
        cert, key = str(conf["cert"] or "").strip(), str(conf["key"] or "").strip()
        if cert:
            ctx.load_cert_chain(cert, key or None, password=passphrase)
        elif creds.get("certdata"):
            _load_chain_from_text(ctx, creds["certdata"], creds.get("keydata") or "", passphrase)
        elif server:
            raise NodeError(
                f"{node.type}: tls-config {tls_id!r} has no certificate and key to serve TLS with"
            )
        if not server:
            ca, cadata = str(conf["ca"] or "").strip(), creds.get("cadata") or ""
            if ca or cadata:
                ctx.load_verify_locations(cafile=ca or None, cadata=None if ca else cadata)
            else:
                ctx.load_default_certs()
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise NodeError(f"{node.type}: tls-config {tls_id!r}: {exc}") from None
    verify = getattr(tls.config, "verifyservercert", True)
    if not server and (verify is False or str(verify).lower() in ("false", "0")):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if conf["alpnprotocol"]:
        ctx.set_alpn_protocols([str(conf["alpnprotocol"]).strip()])
    return ctx, str(conf["servername"] or "").strip()


def _load_chain_from_text(ctx: ssl.SSLContext, cert: str, key: str, passphrase: str | None) -> None:
    """ssl loads certificate chains from files only: the PEM text goes to private temporary files."""
    with tempfile.TemporaryDirectory(prefix="sofiaflow-tls-") as tmp:
        paths = [os.path.join(tmp, name) for name in ("cert.pem", "key.pem")]
        for path, text in zip(paths, (cert, key), strict=True):
            with open(
                os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8"
            ) as fh:
                fh.write(text)
        ctx.load_cert_chain(paths[0], paths[1] if key else None, password=passphrase)


async def open_connection(
    host: str, port: int, tls: ssl.SSLContext | None = None, servername: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection, over TLS when `tls` is set (the server's name: `servername`, else `host`)."""
    if tls is None:
        return await asyncio.open_connection(host, port)
    return await asyncio.open_connection(host, port, ssl=tls, server_hostname=servername or host)


def bind_host(node: Node) -> str | None:
    """The address listeners bind: the `networkBindHost` node setting, else every interface (None)."""
    host = node.setting(BIND_SETTING)
    return str(host) if host else None


def to_bytes(payload: Any, b64: bool = False) -> bytes:
    """What Node-RED writes for `msg.payload`: a Buffer as is, a string decoded from base64 when asked, else
    the payload's JavaScript string (`"" + payload`) in UTF-8."""
    if isinstance(payload, (bytes, bytearray)):
        return bytes(payload)
    if b64 and isinstance(payload, str):
        try:
            return base64.b64decode(payload + "=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            return base64.b64decode("".join(c for c in payload if c.isalnum() or c in "+/"), validate=False)
    return js_string(payload).encode("utf-8")


def unescape(text: str) -> str:
    """A split string as the editor stores it: the two characters `\\n`, `\\r`, `\\t` stand for the control
    characters."""
    return text.replace("\\n", "\n").replace("\\r", "\r").replace("\\t", "\t")


def new_session_id() -> str:
    return secrets.token_hex(8)


@dataclass
class Connection:
    """A tcp in connection: the node that owns it and its stream writer."""

    owner: Node
    writer: asyncio.StreamWriter


POOL: dict[str, Connection] = {}
"""msg._session.id -> the tcp in connection it came from."""


def reachable(node: Node) -> dict[str, Connection]:
    """The pooled connections `node` may write to."""
    return {sid: c for sid, c in POOL.items() if node.may_reach(c.owner)}


async def pause(node: Node, seconds: float) -> None:
    """Wait `seconds` on the node's clock (virtual in tests)."""
    woken = asyncio.get_running_loop().create_future()
    handle = node.call_later(seconds, lambda: woken.done() or woken.set_result(None))
    try:
        await woken
    finally:
        handle.cancel()


async def close_writer(writer: asyncio.StreamWriter, *, abort: bool = False) -> None:
    """Close a stream (abort: without flushing) and wait for it, ignoring a peer that is already gone."""
    try:
        if abort:
            writer.transport.abort()
        else:
            writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (TimeoutError, OSError, ConnectionError):
        pass


class DatagramEndpoint(asyncio.DatagramProtocol):
    """A UDP endpoint's protocol whose `lost` future resolves once the loop has closed its socket."""

    def __init__(self) -> None:
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    async def close(self, transport: asyncio.BaseTransport) -> None:
        """Close `transport` and wait (2 s at most) until its socket is really closed."""
        transport.close()  # the socket is closed once the loop has run connection_lost
        await asyncio.wait_for(asyncio.shield(self.lost), 2.0)
