"""tcp in, tcp out and tcp request on real sockets on 127.0.0.1: servers and clients, framing modes, replies
by session, reconnects, the privileged-port rule for developers' flows, and no socket left open on close."""

from __future__ import annotations

import asyncio
import base64
import ssl
import time

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ports import free_port

from sofiaflow.runtime.core.services import FLOW_OWNERS, PERMISSIONS
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.security.ownership import FlowOwnership
from sofiaflow.runtime.security.permissions import Permissions
from sofiaflow.runtime.testing import FlowTester
from tests.test_node_mqtt import make_certificates

TAB = {"id": "t", "type": "tab", "label": "t"}


def node(id_: str, type_: str, wires=None, **props) -> dict:
    return {
        "id": id_,
        "type": type_,
        "z": "t",
        "name": "",
        "wires": wires if wires is not None else [],
        **props,
    }


def tcp_in(port: int, wires=None, **props) -> dict:
    base = {"server": "server", "host": "", "port": str(port), "datamode": "stream", "datatype": "buffer"}
    base |= {"newline": "", "topic": "", "trim": False, "base64": False, "tls": ""}
    return node("in", "tcp in", wires if wires is not None else [[]], **(base | props))


def tcp_out(id_: str = "out", **props) -> dict:
    base = {"host": "", "port": "", "beserver": "reply", "base64": False, "end": False, "tls": ""}
    return node(id_, "tcp out", **(base | props))


def tcp_request(port, **props) -> dict:
    base = {"server": "127.0.0.1", "port": str(port), "out": "time", "splitc": "0", "ret": "buffer"}
    base |= {"newline": "", "trim": False, "tls": ""}
    return node("req", "tcp request", [[]], **(base | props))


def deployed(flows: list[dict], registry, **kwargs) -> FlowTester:
    t = FlowTester([TAB, *flows], registry, **kwargs)
    t.engine.node_settings["networkBindHost"] = "127.0.0.1"
    t.engine.node_settings["socketReconnectTime"] = 50
    return t


async def until(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


async def bounded(awaitable, seconds: float = 10.0):
    return await asyncio.wait_for(awaitable, seconds)


def sockets_on(port: int) -> list:
    """This process's sockets bound to `port` (a listener and the connections it accepted)."""
    return [c for c in psutil.Process().net_connections(kind="tcp") if c.laddr and c.laddr.port == port]


def sockets_to(port: int) -> list:
    """This process's sockets connected to `port`."""
    return [c for c in psutil.Process().net_connections(kind="tcp") if c.raddr and c.raddr.port == port]


class Peer:
    """A plain asyncio TCP server on 127.0.0.1 (over TLS with `tls`) that records what it gets and can answer."""

    def __init__(self, answer=None, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.port = free_port()
        self.received = bytearray()
        self.writers: list[asyncio.StreamWriter] = []
        self.answer = answer
        self.server = None

    async def _handle(self, reader, writer) -> None:
        self.writers.append(writer)
        try:
            while data := await reader.read(65536):
                self.received += data
                if self.answer is not None:
                    writer.write(self.answer(data))
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> Peer:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, ssl=self.tls)
        return self

    async def __aexit__(self, *exc) -> None:
        for w in self.writers:
            w.close()
        self.server.close()
        await self.server.wait_closed()


# ----- tcp in + tcp out (reply) ---------------------------------------------------------------------


async def test_server_splits_lines_and_replies_on_the_same_connection(registry):
    port = free_port()
    flows = [tcp_in(port, [["out"]], datatype="utf8", newline="\\n", topic="tp"), tcp_out()]
    async with deployed(flows, registry) as t:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        other_r, other_w = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"one\ntw")
        await writer.drain()
        writer.write("o\nthr\u00e9e".encode()[:-1])
        await writer.drain()
        writer.write("thr\u00e9e".encode()[-1:] + b"\n")
        assert (
            await bounded(reader.readexactly(len("onetwothr\u00e9e".encode()))) == "onetwothr\u00e9e".encode()
        )
        msgs = t.outputs("in")[0]
        assert [m["payload"] for m in msgs] == ["one", "two", "thr\u00e9e"]
        assert msgs[0]["topic"] == "tp" and msgs[0]["ip"] == "127.0.0.1"
        assert msgs[0]["port"] == writer.get_extra_info("sockname")[1]
        assert msgs[0]["_session"]["type"] == "tcp" and len({m["_session"]["id"] for m in msgs}) == 1
        assert t.node("in").last_status["text"] == "2 connections"
        # the other connection heard nothing; a message without a session goes to every connection
        t.inject("out", {"payload": "all"})
        assert (
            await bounded(other_r.readexactly(3)) == b"all" and await bounded(reader.readexactly(3)) == b"all"
        )
        t.inject("out", {"_session": msgs[0]["_session"]})  # no payload: JavaScript's "" + undefined
        assert await bounded(reader.readexactly(9)) == b"undefined"
        t.inject("out", {"payload": "x", "_session": msgs[0]["_session"], "reset": True})
        assert await bounded(reader.read()) == b""
        writer.close()
        other_w.close()


async def test_trim_keeps_the_split_string_and_the_rest_comes_at_the_end(registry):
    port = free_port()
    async with deployed([tcp_in(port, datatype="utf8", newline="\\r\\n", trim=True)], registry) as t:
        _r, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"a\r\nb\r\nrest")
        await writer.drain()
        writer.close()
        await until(lambda: len(t.payloads("in")) == 3)
        assert t.payloads("in") == ["a\r\n", "b\r\n", "rest"]


async def test_single_mode_sends_everything_when_the_connection_closes(registry):
    port = free_port()
    async with deployed([tcp_in(port, datamode="single")], registry) as t:
        for part in (b"\x00\x01", b"\xff"):
            _r, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(part)
            await writer.drain()
            writer.write(b"!")
            writer.close()
        await until(lambda: len(t.payloads("in")) == 2)
        assert sorted(t.payloads("in")) == [b"\x00\x01!", b"\xff!"]
        _r, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()  # nothing sent: no message
        await until(lambda: t.node("in").served == 3)
        assert len(t.payloads("in")) == 2


async def test_base64_and_buffer_chunks(registry):
    port = free_port()
    async with deployed([tcp_in(port, datatype="base64")], registry) as t:
        _r, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\xfe\x10")
        await until(lambda: t.payloads("in"))
        assert base64.b64decode("".join(t.payloads("in"))) == b"\x00\xfe\x10"
        writer.close()


async def test_client_mode_reads_and_reconnects(registry):
    async with Peer() as peer:
        flows = [tcp_in(peer.port, server="client", host="127.0.0.1", datatype="utf8")]
        async with deployed(flows, registry) as t:
            await until(lambda: peer.writers)
            peer.writers[0].write(b"hello")
            await until(lambda: t.payloads("in") == ["hello"])
            assert t.outputs("in")[0][0]["_session"]["type"] == "tcp"
            peer.writers[0].close()
            await until(lambda: len(peer.writers) == 2)  # reconnected after socketReconnectTime
            peer.writers[1].write(b"again")
            await until(lambda: t.payloads("in") == ["hello", "again"])
            assert t.node("in").last_status["text"] == "connected"


async def test_tcp_out_client_writes_and_ends(registry):
    async with Peer() as peer:
        flows = [tcp_out(beserver="client", host="127.0.0.1", port=str(peer.port), base64=True)]
        async with deployed(flows, registry) as t:
            await until(lambda: t.node("out").connected)
            t.inject("out", {"payload": base64.b64encode(b"\x01\x02").decode()})
            t.inject("out", {"payload": b"raw"})
            t.inject("out", {"payload": 12})
            await until(lambda: bytes(peer.received) == b"\x01\x02raw12")
        flows = [tcp_out(beserver="client", host="127.0.0.1", port=str(peer.port), end=True)]
        async with deployed(flows, registry) as t:
            await until(lambda: t.node("out").connected)
            t.inject("out", {"payload": {"a": 1}})
            await until(lambda: t.node("out").connects == 2)  # closed after the write, reconnected at once
            assert bytes(peer.received).endswith(b"[object Object]")


async def test_tcp_out_server_writes_to_every_client(registry):
    port = free_port()
    async with deployed([tcp_out(beserver="server", port=str(port), end=True)], registry) as t:
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        await until(lambda: t.node("out").last_status.get("text") == "2 connections")
        t.inject("out", {"payload": "bye"})
        assert await bounded(r1.read()) == b"bye" and await bounded(r2.read()) == b"bye"
        w1.close()
        w2.close()


# ----- tcp request -------------------------------------------------------------------------------------


def echo(data: bytes) -> bytes:
    return data


async def test_request_until_a_character(registry):
    async with Peer(echo) as peer:
        flows = [tcp_request(peer.port, out="char", splitc="\\n", ret="string")]
        async with deployed(flows, registry) as t:
            t.inject("req", {"payload": "ping\nrest", "topic": "kept"})
            await until(lambda: t.outputs("req")[0])
            assert t.outputs("req")[0][0]["payload"] == "ping\n"
            assert t.outputs("req")[0][0]["topic"] == "kept"
            t.inject("req", {"payload": "x;y"})
            await until(lambda: len(t.outputs("req")[0]) == 1 and len(peer.writers) == 2)


async def test_request_count_and_hex_char(registry):
    async with Peer(echo) as peer:
        async with deployed([tcp_request(peer.port, out="count", splitc="3")], registry) as t:
            t.inject("req", {"payload": b"abcdef"})
            await until(lambda: t.payloads("req"))
            assert t.payloads("req") == [b"abc"]
        async with deployed([tcp_request(peer.port, out="char", splitc="0x3b")], registry) as t:
            t.inject("req", {"payload": "ab;cd"})
            await until(lambda: t.payloads("req"))
            assert t.payloads("req") == [b"ab;"]


async def test_request_waits_a_fixed_time_on_the_virtual_clock(registry):
    async with Peer(echo) as peer:
        t = deployed([tcp_request(peer.port, out="time", splitc="500")], registry, virtual_time=True)
        async with t:
            t.inject("req", {"payload": "one"})
            t.inject("req", {"payload": "two"})
            await until(lambda: bytes(peer.received) == b"onetwo")
            await t.advance(0.4)
            assert t.payloads("req") == []
            await t.advance(0.2)
            assert t.payloads("req") in ([b"onetwo"], [b"one"])


async def test_request_host_and_port_from_the_message_and_immediate_mode(registry):
    async with Peer(echo) as peer:
        flows = [tcp_request("", server="", out="immed")]
        async with deployed(flows, registry) as t:
            t.inject("req", {"payload": "fire", "host": "127.0.0.1", "port": peer.port})
            await until(lambda: bytes(peer.received) == b"fire")
            await t.idle()
            assert t.payloads("req") == []
            t.inject("req", {"payload": "lost"})
            await until(lambda: any("Host and/or port not set" in str(e["msg"]) for e in t.logs))


async def test_request_stays_connected_and_resets(registry):
    async with Peer(echo) as peer:
        flows = [tcp_request(peer.port, out="sit", ret="string", newline="\\n")]
        async with deployed(flows, registry) as t:
            t.inject("req", {"payload": "a\nb"})
            t.inject("req", {"payload": "c\n"})
            await until(lambda: t.payloads("req") == ["a", "bc"])
            assert len(peer.writers) == 1
            t.inject("req", {"reset": True})
            await until(lambda: t.node("req").last_status.get("text") == "0 connections")


async def test_request_connect_failure_goes_to_catch(registry):
    port = free_port()
    flows = [tcp_request(port), node("c", "catch", [[]], scope=None, uncaught=False)]
    async with deployed(flows, registry) as t:
        t.inject("req", {"payload": "x", "topic": "mine"})
        await until(lambda: t.outputs("c") and t.outputs("c")[0])
        caught = t.outputs("c")[0][0]
        assert caught["topic"] == "mine" and "connect failed 127.0.0.1:" in caught["error"]["message"]


# ----- TLS (the shipped tls-config node, certificates made here) ----------------------------------------


@pytest.fixture
def pki(tmp_path):
    """A CA and a server certificate for 127.0.0.1 it signed, and a second CA that signed nothing here."""
    ca, cert, key = make_certificates(tmp_path, "good")
    other_ca = make_certificates(tmp_path, "other")[0]
    return {"ca": ca, "cert": cert, "key": key, "other_ca": other_ca}


def tls_node(**props) -> dict:
    return {"id": "tls", "type": "tls-config", "name": "", "cert": "", "key": "", "ca": "", **props}


def server_context(pki, client_ca=None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki["cert"], pki["key"])
    if client_ca is not None:  # ask for a client certificate signed by this CA
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(client_ca)
    return ctx


def client_context(pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki["ca"]))


async def test_tls_server_in_and_reply_out(registry, pki):
    port = free_port()
    flows = [
        tcp_in(port, [["out"]], datatype="utf8", newline="\\n", tls="tls"),
        tcp_out(),
        tls_node(cert=str(pki["cert"]), key=str(pki["key"])),
    ]
    async with deployed(flows, registry) as t:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki))
        assert writer.get_extra_info("ssl_object").version().startswith("TLS")
        writer.write("secret line\nsecond \u00e9\n".encode())
        assert await bounded(reader.readexactly(len("secret linesecond \u00e9".encode()))) == (
            "secret linesecond \u00e9".encode()
        )
        assert t.payloads("in") == ["secret line", "second \u00e9"]
        writer.close()
        # a plain client gets no message through: the handshake fails
        plain_r, plain_w = await asyncio.open_connection("127.0.0.1", port)
        plain_w.write(b"not tls\n")
        try:
            answer = await bounded(plain_r.read())
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"not tls")  # the server closed the connection (maybe with a TLS alert)
        plain_w.close()
        await until(lambda: t.node("in").served == 1)  # the TLS connection; the plain one never became one
        assert t.payloads("in") == ["secret line", "second \u00e9"] and t.node("in").connections == 0


async def test_tls_client_in_reads_from_a_tls_server(registry, pki):
    async with Peer(tls=server_context(pki)) as peer:
        flows = [
            tcp_in(peer.port, server="client", host="127.0.0.1", datatype="utf8", tls="tls"),
            tls_node(ca=str(pki["ca"]), verifyservercert=True),
        ]
        async with deployed(flows, registry) as t:
            await until(lambda: peer.writers)
            peer.writers[0].write(b"over tls")
            await until(lambda: t.payloads("in") == ["over tls"])


async def test_tls_out_client_and_server(registry, pki):
    async with Peer(tls=server_context(pki)) as peer:
        flows = [
            tcp_out(beserver="client", host="127.0.0.1", port=str(peer.port), tls="tls"),
            tls_node(verifyservercert="true"),
        ]
        async with deployed(flows, registry, credentials={"tls": {"cadata": pki["ca"].read_text()}}) as t:
            await until(lambda: t.node("out").connected)
            t.inject("out", {"payload": "to a tls server"})
            await until(lambda: bytes(peer.received) == b"to a tls server")
    port = free_port()
    certdata = {"certdata": pki["cert"].read_text(), "keydata": pki["key"].read_text()}
    flows = [tcp_out(beserver="server", port=str(port), tls="tls"), tls_node()]
    async with deployed(flows, registry, credentials={"tls": certdata}) as t:  # PEM text, not files
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context(pki))
        await until(lambda: t.node("out").last_status.get("text") == "1 connection")
        t.inject("out", {"payload": "from a tls server"})
        assert await bounded(reader.readexactly(17)) == b"from a tls server"
        writer.close()


async def test_tls_request_verifies_the_server_and_presents_a_client_certificate(registry, pki):
    async with Peer(echo, tls=server_context(pki, client_ca=pki["ca"])) as peer:
        good = tls_node(ca=str(pki["ca"]), cert=str(pki["cert"]), key=str(pki["key"]), verifyservercert=True)
        flows = [tcp_request(peer.port, out="char", splitc="\\n", ret="string", tls="tls"), good]
        async with deployed(flows, registry) as t:
            t.inject("req", {"payload": "ping over tls\n", "topic": "kept"})
            await until(lambda: t.outputs("req")[0])
            assert t.outputs("req")[0][0]["payload"] == "ping over tls\n"
            assert t.outputs("req")[0][0]["topic"] == "kept"
        assert peer.received == b"ping over tls\n"


async def test_tls_request_refuses_a_server_its_ca_did_not_sign_unless_told_not_to_verify(registry, pki):
    async with Peer(echo, tls=server_context(pki)) as peer:
        catch = node("c", "catch", [[]], scope=None, uncaught=False)
        for verify in (True, False):
            wrong = tls_node(ca=str(pki["other_ca"]), verifyservercert=verify)
            flows = [tcp_request(peer.port, out="count", splitc="2", tls="tls"), wrong, catch]
            async with deployed(flows, registry) as t:
                t.inject("req", {"payload": "hi"})
                if verify:
                    await until(lambda t=t: t.outputs("c")[0])
                    message = t.outputs("c")[0][0]["error"]["message"]
                    assert "connect failed 127.0.0.1:" in message and "CERTIFICATE_VERIFY_FAILED" in message
                    assert t.payloads("req") == []
                else:
                    await until(lambda t=t: t.payloads("req"))
                    assert t.payloads("req") == [b"hi"]


async def test_tls_names_a_tls_config_node_that_is_not_there(registry):
    flows = [tcp_request(2000, tls="nowhere")]
    async with deployed(flows, registry) as t:
        await t.idle()
        failures = [e for e in t.errors() if "nowhere" in str(e["msg"])]
        assert failures and "tls-config node 'nowhere' is not running here" in str(failures[0]["msg"])
    flows = [tcp_in(free_port(), tls="tls"), tls_node()]  # a server needs a certificate to serve with
    async with deployed(flows, registry) as t:
        await t.idle()
        assert any("has no certificate and key to serve TLS with" in str(e["msg"]) for e in t.errors())


# ----- lifecycle, refusals --------------------------------------------------------------------------


async def test_no_socket_is_left_open_on_close(registry):
    async with Peer(echo) as peer:
        port_in, port_out = free_port(), free_port()
        flows = [
            tcp_in(port_in, [["out"]]),
            tcp_out(),
            tcp_out("srv", beserver="server", port=str(port_out)),
            tcp_out("cli", beserver="client", host="127.0.0.1", port=str(peer.port)),
            tcp_request(peer.port, out="sit"),
        ]
        fds = psutil.Process().num_fds()
        async with deployed(flows, registry) as t:
            conns = [await asyncio.open_connection("127.0.0.1", p) for p in (port_in, port_out)]
            t.inject("req", {"payload": "keep"})
            await until(lambda: t.payloads("req") and t.node("cli").connected)
            assert len(sockets_on(port_in)) == 2 and len(sockets_on(port_out)) == 2
            assert len(sockets_to(peer.port)) == 2  # tcp out (client) and tcp request
        assert not sockets_on(port_in) and not sockets_on(port_out) and not sockets_to(peer.port)
        for r, w in conns:
            assert await bounded(r.read()) == b""
            w.close()
            await w.wait_closed()
        await until(lambda: len(peer.writers) == 2 and all(w.is_closing() for w in peer.writers))
    await asyncio.sleep(0)
    assert psutil.Process().num_fds() <= fds


def owned(flows: list[dict], registry) -> FlowTester:
    db = connect("sqlite://")
    owners = FlowOwnership(db)
    owners.share("t", owner="dev1")
    t = deployed(flows, registry)
    t.engine.services[FLOW_OWNERS] = owners
    t.engine.services[PERMISSIONS] = Permissions(db, {"dev1": "developer"}.get, lambda _name: None)
    return t


async def test_developers_may_not_listen_on_privileged_ports(registry):
    for flows in ([tcp_in(1024)], [tcp_out(beserver="server", port="80")]):
        with pytest.raises(FlowValidationError, match="above 1024"):
            async with owned(flows, registry):
                pass
    port = free_port()
    async with owned([tcp_in(port)], registry) as t:
        assert t.node("in").tenant == "dev1" and sockets_on(port)


@pytest.mark.parametrize(
    "flows",
    [
        [tcp_in("")],
        [tcp_in(70000)],
        [tcp_in("http")],
        [tcp_in(2000, server="client")],
        [tcp_in(2000, datatype="hex")],
        [tcp_out(beserver="bridge")],
        [tcp_request(2000, out="later")],
        [tcp_request(2000, out="count", splitc="many")],
    ],
)
async def test_bad_config_refuses_the_deploy(registry, flows):
    with pytest.raises(FlowValidationError):
        async with deployed(flows, registry):
            pass


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(st.characters(blacklist_categories=["Cs"]), max_size=40).map(lambda s: s.replace("\r", "")),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
)
def test_split_parts_do_not_depend_on_chunking(registry, text, cuts):
    """However the bytes are cut into writes, the parts are the text split on the newline (the remainder
    comes when the connection ends), and multi-byte characters are never broken."""
    data = text.encode()
    bounds = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True)]
    expected = [p for p in text.split("\n")]
    if expected[-1] == "":
        expected.pop()

    async def scenario() -> list:
        port = free_port()
        async with deployed([tcp_in(port, datatype="utf8", newline="\\n")], registry) as t:
            _r, writer = await asyncio.open_connection("127.0.0.1", port)
            for chunk in chunks:
                writer.write(chunk)
                await writer.drain()
            writer.close()
            await writer.wait_closed()
            await until(lambda: t.node("in").served == 1)
            await t.idle()
            return t.payloads("in")

    assert asyncio.run(scenario()) == expected
