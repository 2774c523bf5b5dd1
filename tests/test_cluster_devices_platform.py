"""`platform` mqtt-broker nodes ("this platform's broker"): the embedded broker in a single process, the cluster's
Mosquitto (SOFIAFLOW_MQTT_URL) in cluster mode, where every worker runs the same flow and each message reaches one
of them; devices are real paho clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

import pytest

from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.settings import Settings
from tests.cluster_mosquitto import ADMIN, PLATFORM, start_mosquitto_dynsec
from tests.mqtt_helpers import client
from tests.rtdb_servers import free_port

IOT_BROKER_FLOW = Path(__file__).resolve().parents[1] / "flows" / "iot-broker.json"


@pytest.fixture(scope="module")
def mosquitto():
    server = start_mosquitto_dynsec()
    try:
        yield server
    finally:
        server.stop()


def echo_flow(owner_tab: str = "t1") -> list[dict]:
    """mqtt in `sensors/+/t` -> mqtt out `echo/s1`, both on a `platform` mqtt-broker (no server filled in)."""
    return [
        {"id": owner_tab, "type": "tab", "label": "echo"},
        {"id": "pb", "type": "mqtt-broker", "platform": True, "broker": "", "port": "", "clientid": ""},
        {
            "id": "in1",
            "type": "mqtt in",
            "z": owner_tab,
            "topic": "sensors/+/t",
            "qos": "1",
            "datatype": "utf8",
            "broker": "pb",
            "wires": [["out1"]],
        },
        {
            "id": "out1",
            "type": "mqtt out",
            "z": owner_tab,
            "topic": "echo/s1",
            "qos": "1",
            "retain": "false",
            "broker": "pb",
            "wires": [],
        },
    ]


def settings(tmp_path, name: str, **kw) -> Settings:
    return Settings(
        data_dir=tmp_path / name,
        db_url=f"sqlite:///{tmp_path / 'config.db'}",  # the workers' shared config DB
        admin_password="platform-test-admin",
        credential_secret="platform-test-secret",
        ontologies_dir=None,
        default_flows=None,
        history_interval=0,
        **kw,
    )


def cluster_settings(tmp_path, name: str, mosquitto) -> Settings:
    return settings(
        tmp_path,
        name,
        mqtt_port=0,
        mqtt_url=mosquitto.url,
        mqtt_username=PLATFORM[0],
        mqtt_password=PLATFORM[1],
        dynsec_username=ADMIN[0],
        dynsec_password=ADMIN[1],
    )


@contextlib.asynccontextmanager
async def running(config: Settings):
    runtime = Runtime(config)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def wait_connected(runtime: Runtime, node_id: str = "pb") -> None:
    node = None
    for _ in range(1000):
        node = _node(runtime, node_id)
        if node is not None and node.connected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{node_id} did not connect: {getattr(node, 'state', None)}")


def _node(runtime: Runtime, node_id: str):
    return runtime.engine.nodes.get(node_id)


async def echoes(port: int, name: str, token: str, count: int) -> list[tuple[str, bytes]]:
    """The device publishes `count` readings and collects the echoes until none comes for a while."""
    async with client(port, name, token) as dev:
        assert await dev.connect() == "Success"
        assert await dev.subscribe("echo/s1", 1) == [1]
        for i in range(count):
            await dev.publish(f"sensors/{name}/t", str(i).encode(), qos=1)
        got = [(await dev.next(10))[:2] for _ in range(count)]
        await dev.nothing(0.5)
        return got


async def test_platform_node_uses_the_embedded_broker_in_a_single_process(tmp_path):
    port = free_port()
    async with running(settings(tmp_path, "w1", mqtt_port=port)) as runtime:
        _, token = runtime.engine.services["devices"].create(
            "s1", topics=["sensors/{device}/#", "echo/{device}"]
        )
        await runtime.deployer.deploy(echo_flow(), "full")
        broker = _node(runtime, "pb")
        assert broker.embedded  # in-process, no loopback client
        got = await echoes(port, "s1", token, 3)
        assert got == [("echo/s1", b"0"), ("echo/s1", b"1"), ("echo/s1", b"2")]


async def test_platform_node_uses_the_cluster_broker_and_each_message_reaches_one_worker(tmp_path, mosquitto):
    async with running(cluster_settings(tmp_path, "w1", mosquitto)) as first:
        registry = first.engine.services["devices"]
        _, token = registry.create("s1", topics=["sensors/{device}/#", "echo/{device}"])
        await first.engine.services["mosquitto-devices"].sync("s1", token)
        await first.deployer.deploy(echo_flow(), "full")
        async with running(cluster_settings(tmp_path, "w2", mosquitto)) as second:
            assert second.deployer.flows  # the stored flows, as every worker runs them
            for runtime in (first, second):
                await wait_connected(runtime)
                assert not _node(runtime, "pb").embedded
            got = await echoes(mosquitto.port, "s1", token, 6)
            assert sorted(got) == [("echo/s1", str(i).encode()) for i in range(6)]  # once each, not twice
            # the device itself cannot write where the flow writes for it, nor read other topics
            async with client(mosquitto.port, "s1", token) as dev:
                assert await dev.connect() == "Success"
                assert await dev.subscribe("sensors/#", 1) == [128]


async def test_platform_node_without_a_broker_says_why(tmp_path):
    async with running(settings(tmp_path, "w1", mqtt_port=0)) as runtime:
        await runtime.deployer.deploy(echo_flow(), "full")
        broker = _node(runtime, "pb")
        assert broker.state == "disconnected"
        assert "runs no MQTT broker of its own" in (broker._reported or "")


def join(token: str, instance: str = "s1") -> bytes:
    return json.dumps(
        {
            "messageId": f"join-{instance}",
            "direction": "REQUEST",
            "messageType": "JOIN",
            "body": {
                "@type": "SSAPBodyJoinMessage",
                "token": token,
                "clientPlatform": "s1",
                "clientPlatformInstance": instance,
            },
        }
    ).encode()


async def answer(dev) -> dict:
    while True:
        topic, payload, *_ = await dev.next(10)
        data = json.loads(payload)
        if data.get("direction") != "REQUEST":  # its own request comes back on /topic/message/s1 too
            return {"topic": topic, **data}


async def test_the_iot_broker_flow_answers_ssap_over_the_cluster_broker(tmp_path, mosquitto):
    async with running(cluster_settings(tmp_path, "w1", mosquitto)) as runtime:
        _, token = runtime.engine.services["devices"].create("s1", topics=["x/{device}"])
        await runtime.engine.services["mosquitto-devices"].sync("s1", token)
        await runtime.deployer.deploy(json.loads(IOT_BROKER_FLOW.read_text()), "full")
        await wait_connected(runtime, "platformMqtt")
        async with client(mosquitto.port, "s1", token) as dev:
            assert await dev.connect() == "Success"
            assert await dev.subscribe("/topic/message/s1", 1) == [1]
            assert await dev.subscribe("/topic/message/s2", 1) == [128]  # another device's answers
            assert await dev.subscribe("/topic/subscription/s1", 1) == [1]
            await dev.publish("/topic/message/s1", join(token), qos=1)
            joined = await answer(dev)
            assert joined["topic"] == "/topic/message/s1" and joined["body"]["ok"], joined
            assert joined["messageType"] == "JOIN" and joined["sessionKey"]
            await dev.publish("/queue/message", join(token + "x"), qos=1)  # onesait's request topic
            refused = await answer(dev)
            assert refused["topic"] == "/topic/message/s1" and not refused["body"]["ok"], refused


def tenant_flow() -> list[dict]:
    """A developer's tab on the platform broker: what `mqtt in` `+/+/t` hears goes to `seen/ana`, and an attempt
    to write into a topic of another owner's device."""
    flow = echo_flow("ta")
    flow[2]["topic"] = "+/+/t"
    flow[2]["wires"] = [["out1", "out2"]]
    flow[3]["topic"] = "seen/ana"
    flow.append({**flow[3], "id": "out2", "topic": "bob/bobdev/cmd"})
    return flow


async def test_on_the_cluster_broker_a_developer_flow_keeps_out_of_other_owners_device_topics(
    tmp_path, mosquitto
):
    async with running(cluster_settings(tmp_path, "w1", mosquitto)) as runtime:
        registry, sync = runtime.engine.services["devices"], runtime.engine.services["mosquitto-devices"]
        tokens = {}
        for name, owner in (("anadev", "ana"), ("bobdev", "bob")):
            _, tokens[name] = registry.create(name, topics=[f"{owner}/{{device}}/#"], owner=owner)
            await sync.sync(name, tokens[name])
        flows = tenant_flow()
        runtime.ownership.claim_new(flows, "ana")
        await runtime.deployer.deploy(flows, "full")
        assert runtime.engine.nodes["in1"].tenant == "ana"
        await wait_connected(runtime)
        async with client(mosquitto.port, *PLATFORM) as watcher:
            assert await watcher.connect() == "Success"
            assert await watcher.subscribe("seen/#", 1) == [1]
            assert await watcher.subscribe("bob/#", 1) == [1]
            for name, owner in (("bobdev", "bob"), ("anadev", "ana")):
                async with client(mosquitto.port, name, tokens[name]) as dev:
                    assert await dev.connect() == "Success"
                    await dev.publish(f"{owner}/{name}/t", owner.encode(), qos=1)
            await watcher.publish("free/x/t", b"free", qos=1)  # nobody's device topic
            seen = []
            while len(seen) < 3:
                topic, payload, *_ = await watcher.next(10)
                seen.append((topic, payload))
            await watcher.nothing(0.5)
        # bob's device message reached the watcher, but not ana's flow; ana's flow wrote nothing into bob's topics
        assert sorted(seen) == [
            ("bob/bobdev/t", b"bob"),
            ("seen/ana", b"ana"),
            ("seen/ana", b"free"),
        ]
