"""udp in and udp out on real sockets on 127.0.0.1 (and ::1): round trips, payload types, addresses from the
message, broadcast off by default, multicast membership, privileged ports, and no socket left open."""

from __future__ import annotations

import asyncio
import base64
import socket
import time

import psutil
import pytest

from sofiaflow.runtime.core.services import FLOW_OWNERS, PERMISSIONS
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.security.ownership import FlowOwnership
from sofiaflow.runtime.security.permissions import Permissions
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t", "type": "tab", "label": "t"}


def free_udp_port(family: int = socket.AF_INET) -> int:
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        return s.getsockname()[1]


def udp_in(port, **props) -> dict:
    base = {
        "port": str(port),
        "ipv": "udp4",
        "multicast": "false",
        "group": "",
        "iface": "",
        "datatype": "utf8",
    }
    return {"id": "in", "type": "udp in", "z": "t", "name": "", "wires": [[]], **(base | props)}


def udp_out(port="", addr="127.0.0.1", **props) -> dict:
    base = {
        "addr": addr,
        "port": str(port),
        "outport": "",
        "ipv": "udp4",
        "base64": False,
        "multicast": "false",
    }
    return {"id": "out", "type": "udp out", "z": "t", "name": "", "wires": [], "iface": "", **(base | props)}


def deployed(flows: list[dict], registry, bind: str = "127.0.0.1") -> FlowTester:
    t = FlowTester([TAB, *flows], registry)
    t.engine.node_settings["networkBindHost"] = bind
    return t


async def until(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def udp_sockets(port: int) -> list:
    return [c for c in psutil.Process().net_connections(kind="udp") if c.laddr and c.laddr.port == port]


async def test_round_trip_through_udp_out_and_udp_in(registry):
    port = free_udp_port()
    async with deployed([udp_in(port), udp_out(port)], registry) as t:
        t.inject("out", {"payload": "h\u00e9llo"})
        t.inject("out", {"payload": 42})
        t.inject("out", {"payload": b"\x41\x42"})
        await until(lambda: len(t.payloads("in")) == 3)
        assert sorted(t.payloads("in")) == ["42", "AB", "h\u00e9llo"]
        msg = t.outputs("in")[0][0]
        assert msg["ip"] == "127.0.0.1" and msg["fromip"] == f"127.0.0.1:{msg['port']}"


async def test_datatypes_and_base64_out(registry):
    port = free_udp_port()
    flows = [udp_in(port, datatype="buffer"), udp_out(port, base64=True)]
    async with deployed(flows, registry) as t:
        t.inject("out", {"payload": base64.b64encode(b"\x00\xff").decode()})
        await until(lambda: t.payloads("in"))
        assert t.payloads("in") == [b"\x00\xff"]
    async with deployed([udp_in(port, datatype="base64")], registry) as t:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"\x01\x02\x03", ("127.0.0.1", port))
        await until(lambda: t.payloads("in"))
        assert t.payloads("in") == ["AQID"]


async def test_address_from_the_message_and_warnings(registry):
    port = free_udp_port()
    flows = [udp_in(port), udp_out("", addr="", outport=str(free_udp_port()))]
    async with deployed(flows, registry) as t:
        t.inject("out", {"payload": "to-msg", "ip": "127.0.0.1", "port": port})
        await until(lambda: t.payloads("in"))
        assert t.payloads("in") == ["to-msg"]
        assert t.outputs("in")[0][0]["port"] == int(flows[1]["outport"])
        t.inject("out", {"payload": "x"})
        t.inject("out", {"payload": "x", "ip": "127.0.0.1"})
        t.inject("out", {"payload": "x", "ip": "127.0.0.1", "port": 70000})
        t.inject("out", {"ip": "127.0.0.1", "port": port})  # no payload: ignored
        await t.idle()
        warnings = [e["msg"] for e in t.logs if e["level"] == "warn"]
        assert warnings == ["udp: ip address not set", "udp: port not set", "udp: port number not valid"]


async def test_broadcast_is_off_unless_asked(registry):
    async with deployed([udp_out(9999, addr="255.255.255.255")], registry) as t:
        t.inject("out", {"payload": "everyone"})
        await until(lambda: t.errors())
        assert "Permission denied" in str(t.errors()[0]["msg"])
    async with deployed([udp_out(9999, addr="255.255.255.255", multicast="broad")], registry) as t:
        t.inject("out", {"payload": "everyone"})
        await t.idle()
        await asyncio.sleep(0.05)
        assert not t.errors()


async def test_ipv6(registry):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    port = free_udp_port(socket.AF_INET6)
    flows = [udp_in(port, ipv="udp6"), udp_out(port, addr="::1", ipv="udp6")]
    async with deployed(flows, registry, bind="::1") as t:
        t.inject("out", {"payload": "six"})
        await until(lambda: t.payloads("in"))
        assert t.payloads("in") == ["six"] and t.outputs("in")[0][0]["ip"] == "::1"


async def test_multicast_membership(registry):
    port = free_udp_port()
    flows = [udp_in(port, multicast="true", group="239.255.10.20", iface="127.0.0.1")]
    async with deployed(flows, registry) as t:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            s.sendto(b"group", ("239.255.10.20", port))
        await until(lambda: t.payloads("in"))
        assert t.payloads("in") == ["group"] and t.node("in").last_status["text"] == "127.0.0.1"
    for bad in ("10.0.0.1", "not-an-address"):
        with pytest.raises(FlowValidationError, match="is not an IPv4 multicast address"):
            async with deployed([udp_in(port, multicast="true", group=bad)], registry):
                pass


async def test_sockets_are_closed(registry):
    port, outport = free_udp_port(), free_udp_port()
    fds = psutil.Process().num_fds()
    async with deployed([udp_in(port), udp_out(port, outport=str(outport))], registry):
        assert udp_sockets(port) and udp_sockets(outport)
    assert not udp_sockets(port) and not udp_sockets(outport)
    assert psutil.Process().num_fds() <= fds


async def test_a_port_in_use_refuses_the_deploy(registry):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        async with deployed([udp_in(s.getsockname()[1])], registry) as t:
            assert "udp in: cannot listen on port" in str(t.errors()[0]["msg"])


async def test_developers_may_not_listen_on_privileged_ports(registry):
    db = connect("sqlite://")
    owners = FlowOwnership(db)
    owners.share("t", owner="dev1")
    for flows in ([udp_in(53)], [udp_out(9999, outport="123")]):
        t = deployed(flows, registry)
        t.engine.services[FLOW_OWNERS] = owners
        t.engine.services[PERMISSIONS] = Permissions(db, {"dev1": "developer"}.get, lambda _name: None)
        with pytest.raises(FlowValidationError, match="above 1024"):
            async with t:
                pass


@pytest.mark.parametrize(
    "flows",
    [
        [udp_in("")],
        [udp_in(0)],
        [udp_in(2000, ipv="udp5")],
        [udp_in(2000, datatype="hex")],
        [udp_in(2000, multicast="true")],
        [udp_out(2000, multicast="yes")],
        [udp_out(2000, outport="x")],
        [udp_out(2000, addr="", multicast="multi")],
    ],
)
async def test_bad_config_refuses_the_deploy(registry, flows):
    with pytest.raises(FlowValidationError):
        async with deployed(flows, registry):
            pass
