"""mqtt-broker / mqtt in / mqtt out against real brokers: Debian's mosquitto (started here on a free
127.0.0.1 port, stopped by pid) and amqtt in-process; paho-mqtt test clients publish and collect.

Flows are `mqtt in -> python function -> mqtt out`; also Node-RED's own exported mqtt nodes. The helpers
(Mosquitto, Client, wait_status, until, ...) are imported by tests/test_node_mqtt_resilience.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ports import free_port

from sofiaflow.nodes.mqtt.mqtt_payload import decode, encode
from sofiaflow.runtime.api import strip_share, valid_publish, valid_subscription
from sofiaflow.runtime.api import subscription_matches as matches
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester
from tests.conftest import require_binary

FIXTURE = Path(__file__).parent / "fixtures" / "nodered" / "nodered-export.json"
TAB = {"id": "t1", "type": "tab", "label": "mqtt"}
TRANSFORM = (
    "msg['payload'] = {'got': msg['payload'], 'topic': msg['topic']}\n"
    "msg['topic'] = 'out/' + msg['topic']\nreturn msg"
)


# ----- helpers (also used by test_node_mqtt_resilience.py) ---------------------------------------------------------


def wait_port(port: int, timeout: float = 5.0) -> None:
    """Block until 127.0.0.1:port accepts a connection (a just-started server has no other signal)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepts on 127.0.0.1:{port}") from None
            time.sleep(0.02)


class Mosquitto:
    """Debian's mosquitto on 127.0.0.1:port with a tiny config; `stop()` ends it by pid."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        persistence: bool = False,
        password_file: Path | None = None,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        self.exe = require_binary("mosquitto")
        self.port = port or free_port()
        self.workdir = workdir
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "max_queued_messages 100000",
            "user root",
            f"persistence {'true' if persistence else 'false'}",
        ]
        if persistence:
            lines += [f"persistence_location {workdir}/", "autosave_interval 0"]
        if tls is not None:
            lines += [f"cafile {tls[0]}", f"certfile {tls[1]}", f"keyfile {tls[2]}"]
        if password_file is not None:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Mosquitto:
        self.proc = subprocess.Popen(
            [self.exe, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


@pytest.fixture
def mosquitto(tmp_path):
    broker = Mosquitto(tmp_path).start()
    yield broker
    broker.stop()


class Client:
    """A paho-mqtt test client (network loop in its own thread) that collects what it receives."""

    def __init__(
        self,
        port: int,
        client_id: str = "",
        clean: bool = True,
        protocol: int = 4,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        version = {4: paho.MQTTv311, 5: paho.MQTTv5}[protocol]
        kwargs: dict[str, Any] = {"client_id": client_id, "protocol": version}
        if protocol != 5:
            kwargs["clean_session"] = clean
        self.c = paho.Client(paho.CallbackAPIVersion.VERSION2, **kwargs)
        if username:
            self.c.username_pw_set(username, password)
        self.c.reconnect_delay_set(1, 1)
        self.port, self.protocol, self.clean = port, protocol, clean
        self.messages: list[paho.MQTTMessage] = []
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._subacks: dict[int, asyncio.Future] = {}
        self._connected = asyncio.Event()
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_connect = lambda *a: self._loop.call_soon_threadsafe(self._connected.set)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(message)
        self._loop.call_soon_threadsafe(self._changed.set)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, *_: Any) -> None:
        def done() -> None:
            fut = self._subacks.pop(mid, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

        self._loop.call_soon_threadsafe(done)

    async def connect(self) -> Client:
        if self.protocol == 5:
            await asyncio.to_thread(self.c.connect, "127.0.0.1", self.port, 30, clean_start=self.clean)
        else:
            await asyncio.to_thread(self.c.connect, "127.0.0.1", self.port, 30)
        self.c.loop_start()
        await asyncio.wait_for(self._connected.wait(), 5)
        return self

    async def subscribe(self, topic: str, qos: int = 1, **kwargs: Any) -> None:
        fut = self._loop.create_future()
        rc, mid = self.c.subscribe(topic, qos, **kwargs)
        assert rc == paho.MQTT_ERR_SUCCESS
        self._subacks[mid] = fut
        await asyncio.wait_for(fut, 5)

    async def publish(
        self, topic: str, payload: Any, qos: int = 1, retain: bool = False, **kwargs: Any
    ) -> None:
        info = self.c.publish(topic, payload, qos, retain, **kwargs)
        await asyncio.to_thread(info.wait_for_publish, 5)

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[paho.MQTTMessage]:
        """At least `count` messages received (raises TimeoutError after `timeout`)."""
        async with asyncio.timeout(timeout):
            while True:
                with self._lock:
                    if len(self.messages) >= count:
                        return list(self.messages)
                self._changed.clear()
                await self._changed.wait()

    def payloads(self) -> list[Any]:
        with self._lock:
            return [m.payload for m in self.messages]

    def close(self) -> None:
        self.c.disconnect()  # first: it wakes the network thread, which then ends at once
        self.c.loop_stop()


@contextlib.asynccontextmanager
async def client(port: int, *subscriptions: str, qos: int = 1, **kwargs: Any):
    c = await Client(port, **kwargs).connect()
    try:
        for topic in subscriptions:
            await c.subscribe(topic, qos)
        yield c
    finally:
        c.close()


async def wait_status(t: FlowTester, node_id: str, text: str, timeout: float = 5.0) -> None:
    """Wait for `node_id`'s status text to become `text`."""
    node = t.node(node_id)
    if node.last_status.get("text") == text:
        return
    event = asyncio.Event()
    unsubscribe = t.events.subscribe(f"status/{node_id}", lambda _t, d: d.get("text") == text and event.set())
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    finally:
        unsubscribe()


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Wait (bounded) for a condition on flow outputs, which have no event of their own."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def broker_node(port: int | str, id_: str = "b", **props: Any) -> dict:
    return {
        "id": id_,
        "type": "mqtt-broker",
        "name": "",
        "broker": "127.0.0.1",
        "port": str(port),
        "clientid": "",
        "autoConnect": True,
        "usetls": False,
        "protocolVersion": "4",
        "keepalive": "60",
        "cleansession": True,
        **props,
    }


def mqtt_in(topic: str, wires: list, id_: str = "in", **props: Any) -> dict:
    return {
        "id": id_,
        "type": "mqtt in",
        "z": "t1",
        "x": 100,
        "y": 100,
        "topic": topic,
        "qos": "1",
        "datatype": "auto-detect",
        "broker": "b",
        "nl": False,
        "rap": True,
        "rh": 0,
        "inputs": 0,
        "wires": [wires],
        **props,
    }


def mqtt_out(id_: str = "out", **props: Any) -> dict:
    return {
        "id": id_,
        "type": "mqtt out",
        "z": "t1",
        "x": 300,
        "y": 100,
        "topic": "",
        "qos": "",
        "retain": "",
        "broker": "b",
        "wires": [],
        **props,
    }


def function(body: str, wires: list, id_: str = "fn") -> dict:
    return {
        "id": id_,
        "type": "python function",
        "z": "t1",
        "x": 200,
        "y": 100,
        "func": body,
        "outputs": 1,
        "wires": [wires],
    }


def catch(wires: list) -> dict:
    return {"id": "catch", "type": "catch", "z": "t1", "x": 1, "y": 1, "scope": None, "wires": [wires]}


def sink(id_: str) -> dict:
    return {"id": id_, "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[]]}


def pipeline(port: int, topic: str = "in/#", qos: str = "1", **broker_props: Any) -> list[dict]:
    """mqtt in (topic) -> python function (wraps the payload) -> mqtt out (to out/<topic>)."""
    return [
        TAB,
        broker_node(port, **broker_props),
        mqtt_in(topic, ["fn"], qos=qos),
        function(TRANSFORM, ["out"]),
        mqtt_out(qos=qos),
    ]


# ----- pure helpers ---------------------------------------------------------------------------------------------


def test_topic_filters_and_names():
    assert valid_subscription("a/+/c") and valid_subscription("#") and valid_subscription("a/#")
    assert valid_subscription("$share/g/a/+")
    assert not valid_subscription("a/#/c") and not valid_subscription("a+/b") and not valid_subscription("")
    assert (
        valid_publish("a/b")
        and not valid_publish("a/+")
        and not valid_publish("a/#")
        and not valid_publish("")
    )
    assert matches("a/+/c", "a/b/c") and not matches("a/+/c", "a/b/d")
    assert matches("a/#", "a") and matches("a/#", "a/b/c") and matches("#", "x/y")
    assert not matches("#", "$SYS/x") and matches("$SYS/#", "$SYS/x")
    assert strip_share("$share/grp/a/#") == "a/#" and matches("$share/grp/a/#", "a/b")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet="abc", min_size=1, max_size=2), min_size=1, max_size=4),
    st.lists(st.sampled_from(["keep", "+"]), min_size=4, max_size=4),
    st.booleans(),
)
def test_wildcards_match_the_topics_they_stand_for(levels, pattern, hash_tail):
    topic = "/".join(levels)
    parts = ["+" if pattern[i] == "+" else lv for i, lv in enumerate(levels)]
    assert matches("/".join(parts), topic)
    if hash_tail and len(parts) > 1:
        assert matches("/".join(parts[:-1]) + "/#", topic)
    assert not matches("/".join(parts) + "/x", topic)


def test_payload_decoding_as_node_red():
    assert decode(b'{"a":1}', "auto-detect") == {"a": 1}
    assert decode(b"plain text", "auto-detect") == "plain text"
    assert decode(b"42", "auto-detect") == 42 and decode(b"42", "auto") == "42"
    assert decode(b"NaN", "auto-detect") == "NaN"  # JSON.parse refuses NaN
    assert decode(b"\xff\x00", "auto-detect") == b"\xff\x00" and decode(b"\xff\x00", "auto") == b"\xff\x00"
    assert decode(b"", "auto-detect") == ""
    assert decode(b"hi", "buffer") == b"hi" and decode(b"hi", "base64") == "aGk="
    assert decode(b"\xffA", "utf8") == "\ufffdA"
    assert decode(b"[1,2]", "json") == [1, 2]
    with pytest.raises(ValueError, match="Failed to parse JSON string"):
        decode(b"{nope", "json")
    with pytest.raises(ValueError, match="Invalid JSON string"):
        decode(b"\xff", "json")
    # MQTT v5: the content type decides first
    assert decode(b'{"a":1}', "auto-detect", {"contentType": "text/plain"}) == '{"a":1}'
    assert decode(b"abc", "auto-detect", {"contentType": "application/octet-stream"}) == b"abc"
    assert decode(b'{"a":1}', "auto", {"contentType": "application/json"}) == '{"a":1}'


def test_payload_encoding_as_node_red():
    assert encode({"a": 1.0, "b": [True, None]}) == b'{"a":1,"b":[true,null]}'
    assert encode(42) == b"42" and encode(2.5) == b"2.5" and encode(1e21) == b"1e+21"
    assert encode(True) == b"true" and encode(None) == b"" and encode(b"\x00\xff") == b"\x00\xff"
    assert encode("é") == "é".encode()


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
        max_leaves=10,
    )
)
def test_objects_survive_a_publish_and_auto_detect(value):
    if isinstance(value, (dict, list)):
        assert decode(encode(value), "auto-detect") == value


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64))
def test_bytes_are_kept_unless_they_are_text(data):
    assert decode(data, "buffer") == data
    out = decode(data, "auto")
    try:
        assert out == data.decode("utf-8")
    except UnicodeDecodeError:
        assert out == data


# ----- configuration errors refuse the deploy --------------------------------------------------------------------


@pytest.mark.parametrize(
    "node, words",
    [
        (mqtt_in("a/#/b", []), "Invalid topic"),
        (mqtt_in("", []), "topic not defined"),
        (mqtt_in("a", [], datatype="xml"), "datatype"),
        (mqtt_out(qos="3"), "qos"),
        (mqtt_out(topic="a/+"), "Invalid topic"),
        (mqtt_out(userProps="{oops"), "userProps"),
    ],
)
async def test_bad_node_config_refuses_the_deploy(registry, node, words):
    with pytest.raises(FlowValidationError, match=words):
        async with FlowTester([TAB, broker_node(1), node], registry):
            pass


@pytest.mark.parametrize(
    "props, words",
    [
        ({"protocolVersion": "6"}, "protocolVersion"),
        ({"broker": "http://example.org"}, "scheme"),
        ({"port": "x"}, "port"),
    ],
)
async def test_bad_broker_config_refuses_the_deploy(registry, props, words):
    with pytest.raises(FlowValidationError, match=words):
        async with FlowTester([TAB, dict(broker_node(1), **props), mqtt_out()], registry):
            pass


# ----- mosquitto ----------------------------------------------------------------------------------------------------


@pytest.mark.servers
@pytest.mark.parametrize("qos", ["0", "1"])
async def test_flow_transforms_messages_through_mosquitto(registry, mosquitto, qos):
    async with FlowTester(pipeline(mosquitto.port, "in/+/x/#", qos=qos), registry) as t:
        await wait_status(t, "in", "connected")
        assert t.node("out").last_status["text"] == "connected"
        assert t.node("in").last_status == {"fill": "green", "shape": "dot", "text": "connected"}
        async with client(mosquitto.port, "out/#", qos=int(qos)) as c:
            await c.publish("in/a/x", b'{"a":1}', int(qos))
            await c.publish("in/b/x/deep/er", b"plain text", int(qos))
            await c.publish("in/c/x", b"\xff\x00\x01", int(qos))
            await c.publish("in/no/match", b"nope", int(qos))  # + needs exactly one level before /x
            msgs = await c.wait_for(3)
        by_topic = {m.topic: json.loads(m.payload) for m in msgs}
        assert by_topic["out/in/a/x"] == {"got": {"a": 1}, "topic": "in/a/x"}
        assert by_topic["out/in/b/x/deep/er"] == {"got": "plain text", "topic": "in/b/x/deep/er"}
        assert by_topic["out/in/c/x"] == {"got": {"type": "Buffer", "data": [255, 0, 1]}, "topic": "in/c/x"}
        received = t.outputs("in")[0]
        assert [m["payload"] for m in received] == [{"a": 1}, "plain text", b"\xff\x00\x01"]
        first = received[0]
        assert first["qos"] == int(qos) and first["retain"] is False and first["topic"] == "in/a/x"
        assert first["_topic"] == "in/a/x" and "_msgid" in first  # Node-RED's _topic for a local broker
        assert all(m.qos == int(qos) for m in msgs)
        assert t.errors() == []


@pytest.mark.servers
async def test_node_red_export_loads_and_runs(registry, mosquitto):
    """Node-RED 4.1's exported mqtt in / function / mqtt out / mqtt-broker, the function as a python function."""
    export = json.loads(FIXTURE.read_text())
    keep = {
        "a1f0c0defff00001",
        "a1f0c0de0000001e",
        "a1f0c0de0000001f",
        "a1f0c0de00000020",
        "a1f0c0de000000mb",
    }
    flows = []
    for node in export:
        if node["id"] not in keep:
            continue
        node = dict(node)
        if node["type"] == "function":
            node.update(
                type="python function",
                func="msg['payload'] = {'received': msg['payload'], 'topic': msg['topic']}\nreturn msg",
            )
        if node["type"] == "mqtt-broker":
            assert node["port"] == "18883"
            node["port"] = str(mosquitto.port)  # stored as a string, as Node-RED does
        if "wires" in node:
            node["wires"] = [[w for w in port if w in keep] for port in node["wires"]]
        flows.append(node)
    async with FlowTester(flows, registry) as t:
        broker = t.node("a1f0c0de000000mb")
        assert broker.config.protocolVersion == 4 and broker.config.keepalive == 60
        assert broker.config.sessionExpiry is None and broker.config.autoConnect is True
        await wait_status(t, "a1f0c0de0000001e", "connected")
        async with client(mosquitto.port, "sample/out") as c:
            await c.publish("sample/in", b'{"a":1}')
            await c.publish("sample/in", b"plain text")
            msgs = await c.wait_for(2)
        assert [json.loads(m.payload) for m in msgs] == [
            {"received": {"a": 1}, "topic": "sample/in"},
            {"received": "plain text", "topic": "sample/in"},
        ]
        assert all(m.qos == 1 for m in msgs)  # mqtt out qos "": msg.qos, set to 1 by the mqtt in node
        assert t.errors() == []


@pytest.mark.servers
async def test_output_datatypes_and_json_errors_are_catchable(registry, mosquitto):
    flows = [
        TAB,
        broker_node(mosquitto.port),
        mqtt_in("t/buf", ["s1"], id_="i1", datatype="buffer"),
        mqtt_in("t/b64", ["s2"], id_="i2", datatype="base64"),
        mqtt_in("t/utf", ["s3"], id_="i3", datatype="utf8"),
        mqtt_in("t/json", ["s4"], id_="i4", datatype="json"),
        sink("s1"),
        sink("s2"),
        sink("s3"),
        sink("s4"),
        catch(["err"]),
        sink("err"),
    ]
    async with FlowTester(flows, registry) as t:
        for n in ("i1", "i2", "i3", "i4"):
            await wait_status(t, n, "connected")
        async with client(mosquitto.port) as c:
            for topic, payload in (
                ("t/buf", b"{}"),
                ("t/b64", b"hi"),
                ("t/utf", b"{}"),
                ("t/json", b"[1]"),
                ("t/json", b"not json"),
            ):
                await c.publish(topic, payload)
        await until(lambda: len(t.payloads("err")) + len(t.payloads("s4")) >= 2)
        assert t.payloads("s1") == [b"{}"] and t.payloads("s2") == ["aGk="] and t.payloads("s3") == ["{}"]
        assert t.payloads("s4") == [[1]]
        err = t.outputs("err")[0][0]
        assert err["error"]["message"] == "Failed to parse JSON string" and err["payload"] == b"not json"
        assert err["topic"] == "t/json" and err["error"]["source"]["id"] == "i4"


@pytest.mark.servers
async def test_mqtt_out_settings_override_the_message_and_payload_conversions(registry, mosquitto):
    flows = [
        TAB,
        broker_node(mosquitto.port),
        mqtt_out("o1", topic="fixed/t", qos="1", retain="true"),
        mqtt_out("o2"),
        catch(["err"]),
        sink("err"),
    ]
    async with FlowTester(flows, registry) as t:
        await wait_status(t, "o2", "connected")
        async with client(mosquitto.port, "fixed/#", "free/#", qos=2) as c:
            t.inject("o1", {"topic": "ignored", "payload": {"x": [1, 2.0]}, "qos": 0, "retain": False})
            for payload in (42, 2.5, True, None, b"\x00\x01", "text"):
                t.inject("o2", {"topic": "free/t", "payload": payload, "qos": "2", "retain": "true"})
            t.inject("o2", {"topic": "free/none"})  # no payload: nothing is published, as Node-RED
            t.inject("o2", {"payload": "no topic"})
            t.inject("o2", {"topic": "bad/+", "payload": 1})
            msgs = await c.wait_for(7)
            await until(lambda: len(t.payloads("err")) == 2)
        fixed = [m for m in msgs if m.topic == "fixed/t"]
        assert [(m.payload, m.qos) for m in fixed] == [(b'{"x":[1,2]}', 1)]
        free = [m for m in msgs if m.topic == "free/t"]
        assert [m.payload for m in free] == [b"42", b"2.5", b"true", b"", b"\x00\x01", b"text"]
        assert {m.qos for m in free} == {2}
        errors = [e["error"]["message"] for e in t.outputs("err")[0]]
        assert "no topic" in errors[0] and errors[1] == "Invalid topic specified"
        # retained: a new subscriber gets the last retained message of each topic
        async with client(mosquitto.port, "fixed/t") as late:
            (m,) = await late.wait_for(1)
            assert m.retain and m.payload == b'{"x":[1,2]}'


@pytest.mark.servers
async def test_credentials_reach_the_broker(registry, tmp_path):
    passwd = require_binary("mosquitto_passwd")
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-b", "-c", str(pwfile), "u", "p"], check=True, capture_output=True)
    os.chmod(pwfile, 0o600)
    server = Mosquitto(tmp_path, password_file=pwfile).start()
    try:
        flows = pipeline(server.port)
        async with FlowTester(flows, registry, credentials={"b": {"user": "u", "password": "wrong"}}) as t:
            await until(lambda: t.errors(), timeout=5)
            assert t.node("in").last_status == {"fill": "red", "shape": "ring", "text": "disconnected"}
            (err,) = t.errors()
            assert err["id"] == "b" and "Connection failed to broker" in err["msg"]
            assert "not authori" in err["msg"].lower() or "password" in err["msg"].lower()
        async with FlowTester(flows, registry, credentials={"b": {"user": "u", "password": "p"}}) as t:
            await wait_status(t, "in", "connected")
            async with client(server.port, "out/#", username="u", password="p") as c:
                await c.publish("in/x", b"1")
                (m,) = await c.wait_for(1)
            assert json.loads(m.payload) == {"got": 1, "topic": "in/x"}
            assert t.node("b").credentials == {"user": "u", "password": "p"}
    finally:
        server.stop()


@pytest.mark.servers
async def test_dynamic_subscriptions(registry, mosquitto):
    flows = [
        TAB,
        broker_node(mosquitto.port),
        mqtt_in("", ["got"], inputs=1, datatype="utf8"),
        sink("got"),
        catch(["err"]),
        sink("err"),
    ]
    async with FlowTester(flows, registry) as t:
        await wait_status(t, "in", "connected")
        node = t.node("in")
        async with client(mosquitto.port) as c:
            t.inject("in", {"action": "subscribe", "topic": ["a/+", {"topic": "b/#", "qos": 0}]})
            await t.idle()
            await c.publish("a/1", b"one")
            await c.publish("b/x/y", b"two")
            await c.publish("c", b"none")
            await until(lambda: len(t.payloads("got")) == 2)
            assert sorted(t.payloads("got")) == ["one", "two"]
            assert {m["topic"]: m["qos"] for m in t.outputs("got")[0]} == {"a/1": 1, "b/x/y": 0}
            t.inject("in", {"action": "getSubscriptions"})
            await until(lambda: len(t.payloads("got")) == 3)
            listed = t.outputs("got")[0][-1]
            assert listed["topic"] == "subscriptions"
            assert listed["payload"] == [{"topic": "a/+", "qos": 2}, {"topic": "b/#", "qos": 0}]
            t.inject("in", {"action": "unsubscribe", "topic": "a/+"})
            t.inject("in", {"action": "subscribe", "topic": {"topic": "c", "datatype": "buffer"}})
            await t.idle()
            assert list(node.dynamic_subs) == ["b/#", "c"]
            await c.publish("a/1", b"gone")
            await c.publish("c", b"bytes")
            await until(lambda: len(t.payloads("got")) == 4)
            assert t.payloads("got")[3] == b"bytes"
            t.inject("in", {"action": "unsubscribe", "topic": True})
            t.inject("in", {"action": "nonsense"})
            t.inject("in", {"action": "subscribe", "topic": "a/#/b"})
            t.inject("in", {"action": "subscribe", "topic": 5})
            await t.idle()
            assert node.dynamic_subs == {}
            assert [e["error"]["message"] for e in t.outputs("err")[0]] == [
                "Invalid action specified",
                "Invalid topic specified",
                "msg.topic is missing or invalid",
            ]


@pytest.mark.servers
async def test_disconnect_and_connect_actions(registry, mosquitto):
    flows = [
        TAB,
        broker_node(mosquitto.port, autoConnect="false"),
        mqtt_in("x", ["got"], inputs=1),
        sink("got"),
        mqtt_out(),
        catch(["err"]),
        sink("err"),
    ]
    async with FlowTester(flows, registry) as t:
        assert t.node("in").last_status["text"] == "disconnected"  # autoConnect off: waits for an action
        t.inject("in", {"action": "connect"})
        await wait_status(t, "in", "connected")
        t.inject("in", {"action": "subscribe", "topic": "x"})
        await t.idle()
        t.inject("out", {"topic": "x", "payload": "loop", "qos": 1})
        await until(lambda: t.payloads("got") == ["loop"])
        t.inject("out", {"action": "disconnect"})
        await wait_status(t, "in", "disconnected")
        await wait_status(t, "out", "disconnected")
        t.inject(
            "in",
            {
                "action": "connect",
                "broker": {"broker": "127.0.0.1", "port": mosquitto.port, "clientid": "renamed"},
            },
        )
        await wait_status(t, "in", "connected")
        assert t.node("b")._link.options.client_id == "renamed"
        t.inject("out", {"topic": "x", "payload": "again", "qos": 1})
        await until(lambda: t.payloads("got") == ["loop", "again"])  # resubscribed on the new connection
        t.inject("in", {"action": "connect", "broker": {"clientid": "other"}})  # live: refused without force
        await until(lambda: t.payloads("err"))
        assert t.outputs("err")[0][0]["error"]["message"] == "Disconnect from broker before connecting"
        t.inject("in", {"action": "connect", "broker": {"clientid": "forced", "force": True}})
        await t.idle()
        await wait_status(t, "in", "connected")
        assert t.node("b")._link.options.client_id == "forced"


@pytest.mark.servers
async def test_birth_and_close_messages(registry, mosquitto):
    props = {
        "birthTopic": "state/nr",
        "birthPayload": "online",
        "birthQos": "1",
        "birthRetain": "true",
        "closeTopic": "state/nr",
        "closePayload": "offline",
        "closeQos": "1",
        "closeRetain": "false",
    }
    async with client(mosquitto.port, "state/#") as c:
        async with FlowTester([TAB, broker_node(mosquitto.port, **props), mqtt_out()], registry) as t:
            await wait_status(t, "out", "connected")
            (birth,) = await c.wait_for(1)
        msgs = await c.wait_for(2)
    assert [(m.payload, m.qos) for m in msgs] == [(b"online", 1), (b"offline", 1)]
    assert birth.retain is False  # a live subscriber sees retain false; the broker keeps it retained
    async with client(mosquitto.port, "state/#") as late:
        (kept,) = await late.wait_for(1)
    assert kept.retain and kept.payload == b"online"


@pytest.mark.servers
async def test_mqtt_v5_properties_and_no_local(registry, mosquitto):
    flows = [
        TAB,
        broker_node(mosquitto.port, protocolVersion="5"),
        mqtt_in("v5/#", ["got"], id_="in", nl=True),
        sink("got"),
        mqtt_in("loop/#", ["loop"], id_="in2"),
        sink("loop"),
        mqtt_out(
            respTopic="reply/here",
            contentType="application/json",
            userProps='{"k":"v","n":1}',
            correl="abc",
            expiry="60",
        ),
    ]
    async with FlowTester(flows, registry) as t:
        await wait_status(t, "in", "connected")
        async with client(mosquitto.port, "loop/#", protocol=5) as c:
            props = paho.Properties(paho.PacketTypes.PUBLISH)
            props.ContentType = "text/plain"
            props.UserProperty = [("a", "b")]
            props.ResponseTopic = "r/t"
            props.CorrelationData = b"\x01"
            await c.publish("v5/x", b'{"not":"parsed"}', properties=props)
            await until(lambda: len(t.payloads("got")) == 1)
            msg = t.outputs("got")[0][0]
            assert msg["payload"] == '{"not":"parsed"}'  # text/plain: a string, not parsed JSON
            assert msg["contentType"] == "text/plain" and msg["userProperties"] == {"a": "b"}
            assert msg["responseTopic"] == "r/t" and msg["correlationData"] == b"\x01"
            t.inject("out", {"topic": "loop/1", "payload": {"z": 1}})
            (m,) = await c.wait_for(1)
            p = m.properties
            assert p.ContentType == "application/json" and p.ResponseTopic == "reply/here"
            assert p.CorrelationData == b"abc" and p.MessageExpiryInterval in (59, 60)
            assert dict(p.UserProperty) == {"k": "v", "n": "1"}
            await until(lambda: len(t.payloads("loop")) == 1)
            assert t.payloads("loop") == [{"z": 1}]  # application/json: parsed
            t.inject(
                "out", {"topic": "v5/self", "payload": "mine"}
            )  # nl: this client's own publish is not delivered
            await c.publish("v5/other", b"theirs")
            await until(lambda: len(t.payloads("got")) == 2)
            assert t.payloads("got")[1] == "theirs"


# ----- amqtt ----------------------------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def amqtt_broker():
    from amqtt.broker import Broker

    port, ws_port = free_port(), free_port()
    broker = Broker(
        {
            "listeners": {
                "default": {"type": "tcp", "bind": f"127.0.0.1:{port}"},
                "ws": {"type": "ws", "bind": f"127.0.0.1:{ws_port}"},
            },
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
    )
    await broker.start()
    try:
        yield port, ws_port
    finally:
        await broker.shutdown()


@pytest.mark.parametrize("transport", ["tcp", "ws"])
async def test_flow_through_amqtt(registry, transport):
    async with amqtt_broker() as (port, ws_port):
        props = {"broker": f"ws://127.0.0.1:{ws_port}/"} if transport == "ws" else {}
        async with FlowTester(pipeline(port, "in/#", **props), registry) as t:
            await wait_status(t, "in", "connected")
            async with client(port, "out/#") as c:
                for i, payload in enumerate((b'{"n":1}', b"text", b"\x80\x81")):
                    await c.publish(f"in/{i}", payload, qos=i % 2)
                msgs = await c.wait_for(3)
        got = sorted((m.topic, json.loads(m.payload)["got"]) for m in msgs)
        assert got == [
            ("out/in/0", {"n": 1}),
            ("out/in/1", "text"),
            ("out/in/2", {"type": "Buffer", "data": [128, 129]}),
        ]
        assert t.errors() == []


# ----- TLS ------------------------------------------------------------------------------------------------------------


def make_certificates(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, server.pem, server.key)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = cert(f"{name} CA", ca_key, f"{name} CA", ca_key, True)
    server_cert = cert("127.0.0.1", server_key, f"{name} CA", ca_key, False)
    paths = (directory / f"{name}-ca.pem", directory / f"{name}-server.pem", directory / f"{name}-server.key")
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.mark.servers
async def test_tls_with_a_tls_config_node(registry, tmp_path):
    ca, server_cert, server_key = make_certificates(tmp_path, "good")
    other_ca = make_certificates(tmp_path, "other")[0]
    server = Mosquitto(tmp_path, tls=(ca, server_cert, server_key)).start()
    try:
        tls_path = {"id": "tls", "type": "tls-config", "ca": str(ca), "verifyservercert": True}
        tls_text = {"id": "tls", "type": "tls-config", "verifyservercert": True}
        wrong = {"id": "tls", "type": "tls-config", "ca": str(other_ca), "verifyservercert": True}
        url = {"broker": f"mqtts://127.0.0.1:{server.port}"}
        for tls_node, props, creds in (
            (tls_path, {"usetls": True}, None),
            (tls_text, url, {"tls": {"cadata": ca.read_text()}}),
        ):
            flows = [*pipeline(server.port, "in/#", tls="tls", **props), tls_node]
            async with FlowTester(flows, registry, credentials=creds) as t:
                await wait_status(t, "in", "connected")
                assert t.node("b")._link.options.url.startswith("mqtts://")
                ok = make_client_tls(ca)
                await asyncio.to_thread(ok.connect, "127.0.0.1", server.port)
                ok.loop_start()
                try:
                    await asyncio.to_thread(ok.publish("in/secure", b'"ok"', 1).wait_for_publish, 5)
                    await until(lambda: len(t.payloads("fn")) == 1)
                finally:
                    ok.disconnect()
                    ok.loop_stop()
                assert t.payloads("fn") == [{"got": "ok", "topic": "in/secure"}]
        async with FlowTester([*pipeline(server.port, "in/#", tls="tls", usetls=True), wrong], registry) as t:
            await until(lambda: t.errors(), timeout=5)
            assert "certificate verify failed" in t.errors()[0]["msg"]
            assert t.node("in").last_status["text"] == "disconnected"
    finally:
        server.stop()


def make_client_tls(ca: Path) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2)
    c.tls_set(ca_certs=str(ca))
    return c
