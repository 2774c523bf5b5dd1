"""udp in: receive UDP datagrams on a port (unicast, or joined to a multicast group) as messages."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import struct
from typing import Any

from pydantic import Field

from sofiaflow.nodes.network.socket_common import DatagramEndpoint, bind_host, check_listen_port, parse_port
from sofiaflow.runtime.api import Node, NodeConfig, NodeError


class UdpInConfig(NodeConfig):
    port: str | int | None = Field("", title="Port", description="The UDP port to listen on.")
    ipv: str = Field(
        "udp4", title="Using", json_schema_extra={"x-choices": [["udp4", "IPv4"], ["udp6", "IPv6"]]}
    )
    multicast: str | bool = Field(
        "false",
        title="Listen for",
        json_schema_extra={"x-choices": [["false", "udp messages"], ["true", "multicast messages"]]},
    )
    group: str = Field(
        "",
        title="Group",
        description="The multicast group address.",
        json_schema_extra={"x-show-if": {"multicast": "true"}},
    )
    iface: str = Field(
        "",
        title="Local interface",
        description="Blank: all.",
        json_schema_extra={"x-show-if": {"multicast": "true"}},
    )
    datatype: str = Field(
        "buffer",
        title="Output",
        json_schema_extra={
            "x-choices": [["buffer", "a Buffer"], ["utf8", "a String"], ["base64", "a Base64 encoded string"]]
        },
    )


class _Receiver(DatagramEndpoint):
    def __init__(self, node: UdpInNode) -> None:
        super().__init__()
        self.node = node

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.node.received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self.node.log(f"error: {exc}")


def multicast_group(group: str, ipv6: bool) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The multicast group address of the `group` property, or NodeError naming it."""
    try:
        addr = ipaddress.ip_address(group)
    except ValueError:
        addr = None
    if addr is None or not addr.is_multicast or (addr.version == 6) != ipv6:
        raise NodeError(
            f"udp in: property 'group' is not an IPv{6 if ipv6 else 4} multicast address: {group!r}"
        )
    return addr


def _join(sock: socket.socket, group: str, iface: str, ipv6: bool) -> None:
    """Join `group` on the interface with address `iface` (any interface when empty)."""
    addr = multicast_group(group, ipv6)
    try:
        if ipv6:
            index = socket.if_nametoindex(iface) if iface else 0
            sock.setsockopt(
                socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, addr.packed + struct.pack("@I", index)
            )
        else:
            local = socket.inet_aton(iface) if iface else struct.pack("!I", socket.INADDR_ANY)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, addr.packed + local)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    except OSError as exc:
        raise NodeError(
            f"udp in: cannot join multicast group {group} on {iface or 'any interface'}: {exc}"
        ) from None


class UdpInNode(Node[UdpInConfig]):
    type = "udp in"
    category = "network"
    color = "#c0c0c0"
    inputs = 0
    outputs = 1
    is_source = True
    Config = UdpInConfig
    help = """Receives UDP datagrams on `port` (IPv4 or IPv6: `ipv` *udp4* / *udp6*). With `multicast` the
node joins `group` (on the interface whose address is `iface`, or any).

**Outputs**: `payload` (a Buffer, utf8 text or base64 text: `datatype`), `fromip` (`"address:port"`),
`ip` and `port` of the sender.

**Details**: flows of non-administrators may only listen on ports above 1024. Two `udp in` nodes cannot
share one port."""

    def setup(self) -> None:
        cfg = self.config
        self.port = parse_port(self, cfg.port)
        assert self.port is not None
        check_listen_port(self, self.port)
        if cfg.ipv not in ("udp4", "udp6"):
            raise NodeError(f"udp in: property 'ipv' must be 'udp4' or 'udp6', got {cfg.ipv!r}")
        if cfg.datatype not in ("buffer", "utf8", "base64"):
            raise NodeError(
                f"udp in: property 'datatype' must be 'buffer', 'utf8' or 'base64', got {cfg.datatype!r}"
            )
        self.multicast = cfg.multicast is True or cfg.multicast == "true"
        if self.multicast and not cfg.group.strip():
            raise NodeError("udp in: property 'group' is required for multicast")
        if self.multicast:
            multicast_group(cfg.group.strip(), cfg.ipv == "udp6")
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Receiver | None = None

    async def start(self) -> None:
        ipv6 = self.config.ipv == "udp6"
        family = socket.AF_INET6 if ipv6 else socket.AF_INET
        host = bind_host(self) or ("::" if ipv6 else "0.0.0.0")
        if self.multicast:
            host = "::" if ipv6 else "0.0.0.0"
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1) if self.multicast else None
            sock.bind((host, self.port))
            if self.multicast:
                _join(sock, self.config.group.strip(), self.config.iface.strip(), ipv6)
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            self._transport, self._protocol = await loop.create_datagram_endpoint(
                lambda: _Receiver(self), sock=sock
            )
        except OSError as exc:
            sock.close()
            raise NodeError(f"udp in: cannot listen on port {self.port}: {exc}") from None
        except BaseException:
            sock.close()
            raise
        if self.config.iface:
            self.status({"text": f"{self.config.iface}"})

    def received(self, data: bytes, addr: Any) -> None:
        ip, port = addr[0], addr[1]
        kind = self.config.datatype
        payload: Any = data
        if kind == "utf8":
            payload = data.decode("utf-8", "replace")
        elif kind == "base64":
            payload = base64.b64encode(data).decode("ascii")
        self.send({"payload": payload, "fromip": f"{ip}:{port}", "ip": ip, "port": port})

    async def close(self, removed: bool) -> None:
        if self._transport is not None and self._protocol is not None:
            await self._protocol.close(self._transport)
            self._transport = self._protocol = None
        self.status({})
