"""udp out: send msg.payload as a UDP datagram to host:port (or msg.ip / msg.port), broadcast or multicast."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from pydantic import Field

from sofiaflow.nodes.network.socket_common import DatagramEndpoint, check_listen_port, parse_port, to_bytes
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool


class UdpOutConfig(NodeConfig):
    addr: str = Field("", title="Address", description="Blank: msg.ip.")
    port: str | int | None = Field("", title="Port", description="Blank: msg.port.")
    outport: str | int | None = Field("", title="Bind to local port", description="Blank: a random one.")
    ipv: str = Field(
        "udp4", title="Using", json_schema_extra={"x-choices": [["udp4", "IPv4"], ["udp6", "IPv6"]]}
    )
    base64: NRBool = Field(False, title="Decode a Base64 payload")
    multicast: str = Field(
        "false",
        title="Send a",
        json_schema_extra={
            "x-choices": [
                ["false", "udp message"],
                ["broad", "broadcast message"],
                ["multi", "multicast message"],
            ]
        },
    )
    iface: str = Field(
        "", title="Local interface", json_schema_extra={"x-show-if": {"multicast": ["broad", "multi"]}}
    )


class _Sender(DatagramEndpoint):
    def __init__(self, node: UdpOutNode) -> None:
        super().__init__()
        self.node = node

    def error_received(self, exc: Exception) -> None:
        self.node.error(f"udp : {exc}")


class UdpOutNode(Node[UdpOutConfig]):
    type = "udp out"
    category = "network"
    color = "#c0c0c0"
    inputs = 1
    outputs = 0
    Config = UdpOutConfig
    help = """Sends `msg.payload` as one UDP datagram to `addr`:`port`, or to `msg.ip`:`msg.port` when they
are not set. A Buffer is sent as is, a string as UTF-8 (decoded from base64 when `base64` is set), anything
else as its text.

**Details**: `multicast` is *false* (unicast; broadcast addresses are refused), *broad* (broadcast
allowed) or *multi* (send to the multicast group `addr`, through the interface whose address is `iface`).
`outport` binds the local port datagrams leave from (flows of non-administrators: above 1024); otherwise
the system picks one. A message without `payload` is ignored; a missing or invalid address or port is a
warning."""

    def setup(self) -> None:
        cfg = self.config
        if cfg.ipv not in ("udp4", "udp6"):
            raise NodeError(f"udp out: property 'ipv' must be 'udp4' or 'udp6', got {cfg.ipv!r}")
        if cfg.multicast not in ("false", "broad", "multi"):
            raise NodeError(
                f"udp out: property 'multicast' must be false, broad or multi, got {cfg.multicast!r}"
            )
        self.port = parse_port(self, cfg.port, required=False)
        self.outport = parse_port(self, cfg.outport, "outport", required=False)
        if self.outport is not None:
            check_listen_port(self, self.outport, "outport")
        if cfg.multicast == "multi" and not cfg.addr.strip():
            raise NodeError("udp out: property 'addr' (the multicast group) is required for multicast")
        self._transport: asyncio.DatagramTransport | None = None
        self._protocol: _Sender | None = None

    async def start(self) -> None:
        ipv6 = self.config.ipv == "udp6"
        sock = socket.socket(socket.AF_INET6 if ipv6 else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if self.config.multicast != "false":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            if self.config.multicast == "multi":
                self._multicast_options(sock, ipv6)
            if self.outport is not None:
                sock.bind(("::" if ipv6 else "0.0.0.0", self.outport))
            sock.setblocking(False)
            loop = asyncio.get_running_loop()
            self._transport, self._protocol = await loop.create_datagram_endpoint(
                lambda: _Sender(self), sock=sock
            )
        except OSError as exc:
            sock.close()
            raise NodeError(f"udp out: cannot open a UDP socket (outport {self.outport}): {exc}") from None
        except BaseException:
            sock.close()
            raise

    def _multicast_options(self, sock: socket.socket, ipv6: bool) -> None:
        iface = self.config.iface.strip()
        if ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 128)
            if iface:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, socket.if_nametoindex(iface))
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 128)
            if iface:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(iface))

    def on_input(self, msg: Msg) -> None:
        if "payload" not in msg:
            return
        addr: Any = self.config.addr or msg.get("ip") or ""
        port: Any = self.port or msg.get("port") or 0
        if addr == "":
            self.warn("udp: ip address not set")
            return
        if port == 0 or port == "":
            self.warn("udp: port not set")
            return
        try:
            number = int(str(port))
        except ValueError:
            number = 0
        if not 1 <= number <= 65535:
            self.warn("udp: port number not valid")
            return
        if self._transport is None:
            raise NodeError("udp out: the socket is not open")
        data = to_bytes(msg["payload"], self.config.base64)
        self._transport.sendto(data, (str(addr), number))

    async def close(self, removed: bool) -> None:
        if self._transport is not None and self._protocol is not None:
            await self._protocol.close(self._transport)
            self._transport = self._protocol = None
        self.status({})
