"""Tenants apart on the embedded broker, end to end: a real `sofiaflow run`, flows deployed through its admin API
on the tabs of two developers (ana, bob) and an administrator, devices of both developers connected as real MQTT
clients (paho).

Each tab has `mqtt in` on `plant/+/data` reporting the topics it heard to its owner's watch topic, and an
inject -> `mqtt out` writing into `plant/ana/cmd` (ana's device's command topic), with a catch reporting the
error. ana's flow hears ana's device only, bob's flow bob's only, the administrators' both; bob's write into ana's
device topic is a node error (caught, audited) and never reaches ana's device, while ana's own write does.

Also here: an authenticated device cannot take over another device's connected session by its client id.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from tests.mqtt_helpers import broker_env, client, until

sys.path.insert(0, os.path.dirname(__file__))
import onesait_server  # noqa: E402
from broker_tenants import add_developers_and_devices, broker_config, deploy_as_developers  # noqa: E402

REFUSED_TEXT = "a topic of a device of another owner"


def tab(who: str, mqtt_port: int) -> list[dict[str, Any]]:
    """`who`'s tab and mqtt-broker config node (see the module docstring)."""
    z, cfg = f"{who}_tab", f"{who}_cfg"
    report = {"qos": "1", "retain": "false", "broker": cfg, "z": z, "wires": []}
    return [
        {"id": z, "type": "tab", "label": f"{who}'s plant"},
        broker_config(cfg, mqtt_port),
        {
            "id": f"{who}_in",
            "type": "mqtt in",
            "z": z,
            "topic": "plant/+/data",
            "qos": "1",
            "datatype": "utf8",
            "broker": cfg,
            "wires": [[f"{who}_heard"]],
        },
        {
            "id": f"{who}_heard",
            "type": "change",
            "z": z,
            "wires": [[f"{who}_report"]],
            "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "topic", "tot": "msg"}],
        },
        {"id": f"{who}_report", "type": "mqtt out", "topic": f"watch/{who}/heard", **report},
        {
            "id": f"{who}_poke",
            "type": "inject",
            "z": z,
            "props": [{"p": "payload"}],
            "payload": f"{who} says stop",
            "payloadType": "str",
            "repeat": "",
            "crontab": "",
            "once": False,
            "topic": "",
            "wires": [[f"{who}_write"]],
        },
        {"id": f"{who}_write", "type": "mqtt out", "topic": "plant/ana/cmd", **report},
        {
            "id": f"{who}_catch",
            "type": "catch",
            "z": z,
            "scope": [f"{who}_write"],
            "uncaught": False,
            "wires": [[f"{who}_why"]],
        },
        {
            "id": f"{who}_why",
            "type": "change",
            "z": z,
            "wires": [[f"{who}_refused"]],
            "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "error.message", "tot": "msg"}],
        },
        {"id": f"{who}_refused", "type": "mqtt out", "topic": f"watch/{who}/refused", **report},
    ]


@pytest.fixture(scope="module")
def plant(tmp_path_factory):
    """The server with users ana and bob, their flows and the administrators' deployed, and devices:
    `<who>-dev` on `plant/<who>/#` and `<who>-watch` on `watch/<who>/#` (admin-watch ownerless); tokens."""
    srv = onesait_server.start(tmp_path_factory.mktemp("tenancy-flows"), default_flows="")
    try:
        tokens = add_developers_and_devices(srv)
        answer = srv.admin.post("/flows", json=tab("admin", srv.mqtt_port))
        assert answer.status_code in (200, 204), answer.text
        srv.users = deploy_as_developers(srv, tab)
        flows = srv.admin.get("/flows").json()
        assert {"admin_in", "ana_in", "bob_in"} <= {n["id"] for n in flows}
        srv.tokens = tokens
        yield srv
        for user in srv.users.values():
            user.close()
    finally:
        srv.stop()


async def test_each_developers_flow_hears_only_its_owners_devices_and_administrators_hear_all(plant):
    port, tokens = plant.mqtt_port, plant.tokens
    async with (
        client(port, "ana-dev", tokens["ana-dev"]) as ana_dev,
        client(port, "bob-dev", tokens["bob-dev"]) as bob_dev,
        client(port, "ana-watch", tokens["ana-watch"]) as ana_watch,
        client(port, "bob-watch", tokens["bob-watch"]) as bob_watch,
        client(port, "admin-watch", tokens["admin-watch"]) as admin_watch,
    ):
        for device in (ana_dev, bob_dev, ana_watch, bob_watch, admin_watch):
            assert await device.connect() == "Success"
        for watch, who in ((ana_watch, "ana"), (bob_watch, "bob"), (admin_watch, "admin")):
            assert await watch.subscribe(f"watch/{who}/heard", 1) == [1]
        await bob_dev.publish("plant/bob/data", b"7", qos=1)
        await ana_dev.publish("plant/ana/data", b"21", qos=1)
        heard_by_admin = sorted([(await admin_watch.next())[1], (await admin_watch.next())[1]])
        assert heard_by_admin == [b"plant/ana/data", b"plant/bob/data"]
        assert (await ana_watch.next())[:2] == ("watch/ana/heard", b"plant/ana/data")
        assert (await bob_watch.next())[:2] == ("watch/bob/heard", b"plant/bob/data")
        await ana_watch.nothing(0.5)
        await bob_watch.nothing(0.1)


async def test_a_developers_flow_cannot_publish_into_another_owners_device_topics(plant):
    port, tokens = plant.mqtt_port, plant.tokens
    async with (
        client(port, "ana-dev", tokens["ana-dev"]) as ana_dev,
        client(port, "bob-watch", tokens["bob-watch"]) as bob_watch,
        client(port, "ana-watch", tokens["ana-watch"]) as ana_watch,
    ):
        for device in (ana_dev, bob_watch, ana_watch):
            assert await device.connect() == "Success"
        assert await ana_dev.subscribe("plant/ana/cmd", 1) == [1]
        assert await bob_watch.subscribe("watch/bob/refused", 1) == [1]
        assert await ana_watch.subscribe("watch/ana/refused", 1) == [1]
        assert plant.users["bob"].post("/inject/bob_poke").status_code == 200
        topic, why, *_ = await bob_watch.next()
        assert topic == "watch/bob/refused" and REFUSED_TEXT in why.decode()
        assert "ana-dev" not in why.decode()  # the error does not name another owner's device
        await ana_dev.nothing(0.5)
        assert plant.users["ana"].post("/inject/ana_poke").status_code == 200  # her own device: delivered
        assert (await ana_dev.next())[:2] == ("plant/ana/cmd", b"ana says stop")
        assert plant.admin.post("/inject/admin_poke").status_code == 200  # administrators publish anywhere
        assert (await ana_dev.next())[:2] == ("plant/ana/cmd", b"admin says stop")
        await ana_watch.nothing(0.2)
    audit = plant.admin.get("/audit", params={"action": "mqtt.publish", "outcome": "denied"}).json()
    assert [(e["user"], e["target"], e["detail"]["device"]) for e in audit] == [
        ("bob", "plant/ana/cmd", "ana-dev")
    ]


# ----- client ids --------------------------------------------------------------------------------------------
@pytest.fixture
async def env(tmp_path):
    async with broker_env(tmp_path) as pair:
        yield pair


async def test_a_device_cannot_take_over_another_devices_connected_session(env):
    registry, broker = env
    _, victim_token = registry.create("meter", topics=["m/{device}/#"], owner="ana")
    _, other_token = registry.create("intruder", topics=["i/{device}/#"], owner="bob")
    async with client(broker.port, "meter", victim_token, client_id="meter-1", clean_session=False) as meter:
        assert await meter.connect() == "Success"
        assert await meter.subscribe("m/meter/#", 1) == [1]
        for clean in (True, False):
            async with client(
                broker.port, "intruder", other_token, client_id="meter-1", clean_session=clean
            ) as intruder:
                assert await intruder.connect() == "Client identifier not valid"
        assert not meter.disconnected.is_set()
        await broker.publish("m/meter/set", b"1", qos=1)
        assert (await meter.next())[:2] == ("m/meter/set", b"1")  # its session and subscription are intact
        # the device itself reconnecting with its own client id still takes over its own session (MQTT 3.1.4)
        async with client(broker.port, "meter", victim_token, client_id="meter-1") as again:
            assert await again.connect() == "Success"
            assert await asyncio.to_thread(meter.disconnected.wait, 5)
            assert await again.subscribe("m/meter/#", 1) == [1]
            await broker.publish("m/meter/set", b"2", qos=1)
            assert (await again.next())[:2] == ("m/meter/set", b"2")
    await until(lambda: broker.clients_connected() == 0)
    async with client(broker.port, "intruder", other_token, client_id="meter-1") as intruder:
        assert await intruder.connect() == "Success"  # no connected session holds the id any more
