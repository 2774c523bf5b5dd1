"""mqtt-broker resilience: a mosquitto restart mid-stream loses no QoS 1 message, QoS 0 is dropped and QoS 1/2
buffered (bounded) while disconnected, a broken connection publishes the will and comes back resubscribed, one
connection is shared and survives a `nodes` deploy, a slow flow holds the broker back; and the in-process path
to the embedded broker (service "mqtt-embedded"), with a small fake of its interface and with the real one.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from sofiaflow.nodes.mqtt import mqtt_in as mqtt_in_module
from sofiaflow.runtime.api import subscription_matches as matches
from sofiaflow.runtime.testing import FlowTester
from tests.test_node_mqtt import (
    TAB,
    TRANSFORM,
    Client,
    Mosquitto,
    broker_node,
    client,
    free_port,
    function,
    mqtt_in,
    mqtt_out,
    pipeline,
    sink,
    until,
    wait_status,
)


@pytest.fixture
def mosquitto(tmp_path):
    server = Mosquitto(tmp_path).start()
    yield server
    server.stop()


def statuses(t: FlowTester, node_id: str) -> list[str]:
    """Every status text `node_id` showed so far."""
    return [d.get("text") for topic, d in t.events.recent if topic == f"status/{node_id}"]


@pytest.mark.servers
async def test_broker_restart_mid_stream_loses_no_qos1_message(registry, tmp_path):
    """mosquitto (persistence on) stops for ~1.5 s while the flow publishes N QoS 1 messages; the subscriber's
    persistent session (fixed id, clean session off) gets all N, in order of first arrival."""
    server = Mosquitto(tmp_path, persistence=True).start()
    total = 300
    try:
        sub = await Client(server.port, client_id="collector", clean=False).connect()
        await sub.subscribe("data/#", 1)
        async with FlowTester([TAB, broker_node(server.port), mqtt_out(qos="1")], registry) as t:
            t.events.recent = type(t.events.recent)(maxlen=100_000)
            await wait_status(t, "out", "connected")

            async def produce() -> None:
                for i in range(total):
                    t.inject("out", {"topic": f"data/{i % 3}", "payload": i})
                    await asyncio.sleep(0.01)  # a steady stream over ~3 s

            producer = asyncio.create_task(produce())
            await until(lambda: len(sub.messages) >= 50)
            await asyncio.to_thread(server.stop)
            await wait_status(t, "out", "disconnected")
            await asyncio.sleep(1.5)  # the broker stays down while the flow keeps publishing
            assert t.node("b")._link.buffered > 50
            await asyncio.to_thread(server.start)
            await producer
            await wait_status(t, "out", "connected", timeout=10)
            await until(lambda: len({int(p) for p in sub.payloads()}) == total, timeout=10)
            seen = statuses(t, "out")
        sub.close()
    finally:
        server.stop()
    numbers = [int(p) for p in sub.payloads()]
    first = list(dict.fromkeys(numbers))  # duplicates are allowed at QoS 1; order of first arrival is kept
    assert first == list(range(total))
    assert "disconnected" in seen and "connecting" in seen and seen[-1] == "connected"


@pytest.mark.servers
async def test_qos0_dropped_and_qos1_buffered_bounded_while_disconnected(registry, mosquitto):
    flows = [TAB, broker_node(mosquitto.port, autoConnect=False), mqtt_out()]
    async with FlowTester(flows, registry) as t:
        assert t.node("out").last_status["text"] == "disconnected"
        for i in range(3):
            t.inject("out", {"topic": "buf/t", "payload": f"q0-{i}", "qos": 0})
            t.inject("out", {"topic": "buf/t", "payload": f"q1-{i}", "qos": 1})
        await t.idle()
        broker = t.node("b")
        broker._link.max_buffer = 5  # small bound: the oldest go first
        for i in range(3, 8):
            t.inject("out", {"topic": "buf/t", "payload": f"q2-{i}", "qos": 2})
        await t.idle()
        assert broker._link.dropped == 3
        warnings = [e["msg"] for e in t.logs if e["level"] == "warn"]
        assert any("dropped the oldest, 1 dropped so far" in w for w in warnings)
        async with client(mosquitto.port, "buf/#", qos=2) as c:
            t.inject("out", {"action": "connect"})
            msgs = await c.wait_for(5)
            await asyncio.sleep(0.2)  # nothing else may follow
            assert [m.payload.decode() for m in c.messages] == ["q2-3", "q2-4", "q2-5", "q2-6", "q2-7"]
        assert [m.qos for m in msgs] == [2] * 5


@pytest.mark.servers
async def test_broken_connection_publishes_the_will_and_comes_back_resubscribed(registry, mosquitto):
    props = {
        "willTopic": "will/nr",
        "willPayload": "gone",
        "willQos": "1",
        "willRetain": "false",
        "keepalive": "5",
    }
    async with client(mosquitto.port, "will/#", "out/#") as c:
        async with FlowTester(pipeline(mosquitto.port, "in/#", **props), registry) as t:
            await wait_status(t, "in", "connected")
            link = t.node("b")._link
            link._client._client.socket().shutdown(socket.SHUT_RDWR)  # the network fails: no DISCONNECT sent
            await wait_status(t, "in", "disconnected")
            (will,) = await c.wait_for(1)
            assert (will.topic, will.payload) == ("will/nr", b"gone")
            await wait_status(t, "in", "connected", timeout=5)
            await c.publish("in/again", b"1")
            msgs = await c.wait_for(2)
            assert json.loads(msgs[1].payload) == {"got": 1, "topic": "in/again"}
            assert statuses(t, "in")[-3:] == ["disconnected", "connecting", "connected"]
            logs = [e["msg"] for e in t.logs if e["id"] == "b"]
            assert any(m.startswith("Disconnected from broker") for m in logs)


@pytest.mark.servers
async def test_one_shared_connection_kept_across_a_nodes_deploy(registry, mosquitto):
    flows = [
        TAB,
        broker_node(mosquitto.port, clientid="shared-nr"),
        mqtt_in("a", ["s1"], id_="i1"),
        sink("s1"),
        mqtt_in("b", ["s2"], id_="i2"),
        sink("s2"),
        mqtt_out(),
    ]
    async with FlowTester(flows, registry) as t:
        for n in ("i1", "i2", "out"):
            await wait_status(t, n, "connected")
        broker = t.node("b")
        link = broker._link
        assert set(broker.users) == {"i1", "i2", "out"}
        changed = [dict(n, topic="c") if n.get("id") == "i2" else n for n in flows]
        await t.deploy(changed, "nodes")
        assert t.node("b") is broker and broker._link is link and link.connected
        await wait_status(t, "i2", "connected")
        async with client(mosquitto.port) as c:
            for topic in ("a", "b", "c"):
                await c.publish(topic, topic.encode())
        await until(lambda: len(t.payloads("s1")) + len(t.payloads("s2")) == 2)
        await asyncio.sleep(0.1)
        assert t.payloads("s1") == ["a"] and t.payloads("s2") == ["c"]  # "b" was unsubscribed
        connects = [e for e in t.logs if e["msg"].startswith("Connected to broker")]
        assert len(connects) == 1 and "shared-nr@mqtt://127.0.0.1" in connects[0]["msg"]


@pytest.mark.servers
async def test_a_slow_flow_holds_the_broker_back_without_loss(registry, mosquitto, monkeypatch):
    """Received messages wait for the flow; past PAUSE_AT the node stops taking more (acks held, socket
    paused) until the flow catches up. Every QoS 1 message arrives once, in order."""
    monkeypatch.setattr(mqtt_in_module, "PAUSE_AT", 20)
    monkeypatch.setattr(mqtt_in_module, "RESUME_AT", 5)
    flows = [
        TAB,
        broker_node(mosquitto.port),
        mqtt_in("slow/#", ["slow"]),
        {"id": "slow", "type": "test slow", "z": "t1", "x": 1, "y": 1, "seconds": 0.002, "wires": [["got"]]},
        sink("got"),
    ]
    async with FlowTester(flows, registry) as t:
        t.engine.high_water, t.engine.low_water = 10, 5
        broker = t.node("b")
        pauses = []
        original = broker.pause
        monkeypatch.setattr(broker, "pause", lambda ref: (pauses.append(ref), original(ref)))
        await wait_status(t, "in", "connected")
        async with client(mosquitto.port) as c:
            for i in range(200):
                c.c.publish("slow/t", str(i).encode(), 1)
            await until(lambda: len(t.payloads("got")) == 200, timeout=10)
        assert t.payloads("got") == list(range(200))
        assert pauses and not broker._pausers and not broker._link._paused


# ----- the embedded broker's in-process path -------------------------------------------------------------------


class FakeEmbedded:
    """A stand-in for runtime/mqtt/broker.py's EmbeddedBroker, with the interface agreed in the IoT brief:
    `port`, `host`, `async publish(topic, payload, qos, retain, origin)`, `subscribe(filter, callback) -> unsubscribe`."""

    def __init__(self, port: int) -> None:
        self.port, self.host = port, "127.0.0.1"
        self.published: list[tuple] = []
        self.subs: list[tuple] = []

    async def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, origin=None
    ) -> None:
        self.published.append((topic, payload, qos, retain))
        for topic_filter, callback in list(self.subs):
            if matches(topic_filter, topic):
                callback(topic, payload, qos, retain)

    def subscribe(self, topic_filter: str, callback):
        entry = (topic_filter, callback)
        self.subs.append(entry)
        return lambda: entry in self.subs and self.subs.remove(entry)


async def test_embedded_broker_is_used_in_process(registry):
    """Uses FakeEmbedded (above): nothing listens on its port, so any TCP attempt would show as disconnected."""
    service = FakeEmbedded(free_port())
    props = {
        "broker": "localhost",
        "birthTopic": "nr/state",
        "birthPayload": "up",
        "closeTopic": "nr/state",
        "closePayload": "down",
    }
    flows = [
        TAB,
        broker_node(service.port, **props),
        mqtt_in("dev/+/temp", ["fn"], qos="1"),
        function(TRANSFORM, ["out"]),
        mqtt_out(qos="1"),
    ]
    t = FlowTester(flows, registry)
    t.engine.services["mqtt-embedded"] = service
    async with t:
        assert t.node("b").embedded and t.node("in").last_status["text"] == "connected"
        assert [s[0] for s in service.subs] == ["dev/+/temp"]
        await until(lambda: service.published == [("nr/state", b"up", 0, False)])  # the birth message
        await service.publish("dev/7/temp", b'{"c":21.5}', 1)  # as a device would
        await service.publish("dev/7/humidity", b"40", 1)
        await until(lambda: len(service.published) >= 4)
        out = [p for p in service.published if p[0].startswith("out/")]
        assert out == [("out/dev/7/temp", b'{"got":{"c":21.5},"topic":"dev/7/temp"}', 1, False)]
    assert service.published[-1] == ("nr/state", b"down", 0, False)
    assert service.subs == []


async def test_other_port_is_not_the_embedded_broker(registry):
    service = FakeEmbedded(free_port())
    t = FlowTester([TAB, broker_node(free_port(), broker="127.0.0.1"), mqtt_out()], registry)
    t.engine.services["mqtt-embedded"] = service
    async with t:
        assert not t.node("b").embedded
        await wait_status(t, "out", "disconnected")  # a TCP client that finds nobody listening


async def test_real_embedded_broker_in_process(registry, tmp_path):
    """The runtime's EmbeddedBroker (amqtt): a device publishes over TCP, the flow answers in-process."""
    from tests.mqtt_helpers import broker_env

    async with broker_env(tmp_path) as (devices, embedded):
        _, token = devices.create("sensor1", topics=["dev/#", "out/#"])
        flows = [
            TAB,
            broker_node(embedded.port, broker="localhost"),
            mqtt_in("dev/+/temp", ["fn"]),
            function(TRANSFORM, ["out"]),
            mqtt_out(qos="1"),
        ]
        t = FlowTester(flows, registry)
        t.engine.services["mqtt-embedded"] = embedded
        async with t:
            assert t.node("b").embedded
            async with client(embedded.port, "out/#", username="sensor1", password=token) as dev:
                assert embedded.clients_connected() == 1  # the device only: the flow has no TCP client
                await dev.publish("dev/1/temp", b"22")
                (m,) = await dev.wait_for(1)
            assert json.loads(m.payload) == {"got": 22, "topic": "dev/1/temp"}
            assert t.errors() == []
