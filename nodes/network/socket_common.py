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
import secrets
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


def refuse_tls(node: Node, tls: Any) -> None:
    if tls:
        raise NodeError(f"{node.type}: property 'tls' is set, but tcp nodes here run without TLS")


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
