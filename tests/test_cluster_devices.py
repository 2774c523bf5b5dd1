"""Devices on the cluster's Mosquitto: the dynamic-security plugin kept in step with the device registry
(runtime/cluster/dynsec.py), with a real Mosquitto configured by deploy/mosquitto.conf and real paho clients."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.cluster.dynsec import MARK, DeviceSync, role_of, ssap_acls
from sofiaflow.runtime.cluster.dynsec_link import BrokerAddress, DynsecError, DynsecLink
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.security.devices import DeviceRegistry, may_publish, may_subscribe
from tests.cluster_mosquitto import ADMIN, PLATFORM, start_mosquitto_dynsec
from tests.mqtt_helpers import Client, client

REFUSED = 128


@pytest.fixture(scope="module")
def mosquitto():
    server = start_mosquitto_dynsec()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def world(mosquitto, tmp_path):
    """(registry, DeviceSync, link) on a fresh SQLite registry; the devices it made are removed after."""
    db = connect(f"sqlite:///{tmp_path / 'config.db'}")
    registry = DeviceRegistry(db)
    link = DynsecLink(BrokerAddress.parse(mosquitto.url), *ADMIN)
    sync = DeviceSync(registry, link)
    await sync.ensure_platform_client(*PLATFORM)
    try:
        yield registry, sync, link
    finally:
        listed = await link.one({"command": "listClients", "verbose": True})
        for c in listed["data"]["clients"]:
            if c.get("textname") == MARK:
                await sync.remove(c["username"])
        db.dispose()


@pytest.fixture
async def watcher(mosquitto, world):
    """The runtime's own client, subscribed to everything."""
    async with client(mosquitto.port, *PLATFORM) as c:
        assert await c.connect() == "Success"
        assert await c.subscribe("#", 1) == [1]
        yield c


async def drain(c: Client, until_topic: str, timeout: float = 5) -> list[str]:
    """Topics received until (and without) `until_topic`."""
    got = []
    while True:
        topic, *_ = await c.next(timeout)
        if topic == until_topic:
            return got
        got.append(topic)


async def registered(registry, sync, name, topics, **kw):
    device, token = registry.create(name, topics=topics, **kw)
    await sync.sync(name, token)
    return device, token


async def test_a_device_publishes_and_subscribes_only_within_its_topics(mosquitto, world, watcher):
    registry, sync, _ = world
    _, s1_token = await registered(registry, sync, "s1", ["sensors/{device}/#", "cmd/{device}"])
    await registered(registry, sync, "s2", ["sensors/{device}/#"])
    async with client(mosquitto.port, "s1", s1_token) as dev:
        assert await dev.connect() == "Success"
        for topic in ("sensors/s1/temp", "other/x", "sensors/s2/temp", "cmd/s1", "cmd/s1/deeper"):
            await dev.publish(topic, b"1", qos=1)
        await dev.publish("sensors/s1/end", b"", qos=1)
        assert await drain(watcher, "sensors/s1/end") == ["sensors/s1/temp", "cmd/s1"]
        assert await dev.subscribe("sensors/s1/x", 1) == [1]
        assert await dev.subscribe("sensors/s1/#", 1) == [1]
        assert await dev.subscribe("sensors/#", 1) == [REFUSED]
        assert await dev.subscribe("sensors/s2/#", 1) == [REFUSED]
        assert await dev.subscribe("#", 1) == [REFUSED]


async def test_a_wrong_or_superseded_token_is_refused(mosquitto, world):
    registry, sync, _ = world
    _, first = await registered(registry, sync, "s1", ["a/{device}"])
    async with client(mosquitto.port, "s1", first + "x") as dev:
        assert await dev.connect() != "Success"
    _, second = registry.add_token("s1")
    await sync.sync("s1", second)  # Mosquitto holds one password per client: the newest token's
    async with client(mosquitto.port, "s1", first) as dev:
        assert await dev.connect() != "Success"
    async with client(mosquitto.port, "s1", second) as dev:
        assert await dev.connect() == "Success"


async def connected(port, name, token) -> Client:
    dev = Client(port, name, token)
    assert await dev.connect() == "Success"
    return dev


async def test_revoking_the_token_disabling_or_deleting_drops_the_connection_at_once(mosquitto, world):
    registry, sync, _ = world
    device, token = await registered(registry, sync, "s1", ["a/{device}"])
    token_id = token.split(".")[0]
    for undo, redo in (
        (lambda: registry.update("s1", enabled=False), lambda: registry.update("s1", enabled=True)),
        (lambda: registry.revoke("s1", token_id), None),
    ):
        dev = await connected(mosquitto.port, "s1", token)
        try:
            undo()
            await sync.sync("s1")  # returns once Mosquitto has disconnected it: seen within a second
            assert await asyncio.to_thread(dev.disconnected.wait, 1.0)
        finally:
            await dev.close()
        async with client(mosquitto.port, "s1", token) as again:
            assert await again.connect() != "Success"
        if redo is not None:
            redo()
            await sync.sync("s1")
    # the revoked token is gone for MQTT; a new one works, and deleting the device drops it
    _, fresh = registry.add_token("s1")
    await sync.sync("s1", fresh)
    dev = await connected(mosquitto.port, "s1", fresh)
    try:
        registry.delete("s1")
        await sync.sync("s1")
        assert await asyncio.to_thread(dev.disconnected.wait, 5)
    finally:
        await dev.close()
    async with client(mosquitto.port, "s1", fresh) as again:
        assert await again.connect() != "Success"


async def test_changed_topics_rewrite_the_role_and_reconnect_under_the_new_rights(mosquitto, world, watcher):
    registry, sync, link = world
    _, token = await registered(registry, sync, "s1", ["old/{device}"])
    dev = await connected(mosquitto.port, "s1", token)
    try:
        registry.update("s1", topics=["new/{device}/#"])
        await sync.sync("s1")
        assert await asyncio.to_thread(dev.disconnected.wait, 5)
    finally:
        await dev.close()
    role = (await link.one({"command": "getRole", "rolename": role_of("s1")}))["data"]["role"]
    assert {(a["acltype"], a["topic"]) for a in role["acls"]} == {
        ("publishClientSend", "new/s1/#"),
        ("subscribePattern", "new/s1/#"),
        ("publishClientReceive", "new/s1/#"),
    } | ssap_acls("s1")
    async with client(mosquitto.port, "s1", token) as dev:
        assert await dev.connect() == "Success"
        await dev.publish("old/s1", b"1", qos=1)
        await dev.publish("new/s1/x", b"1", qos=1)
        assert await drain(watcher, "new/s1/x") == []


async def test_reconcile_removes_stale_clients_and_lists_devices_needing_a_token(mosquitto, world):
    registry, sync, link = world
    # a device registered before cluster mode (its token exists only as a hash) and one Mosquitto still has
    registry.create("old", topics=["old/{device}"])
    await registered(registry, sync, "gone", ["gone/{device}"])
    await registered(registry, sync, "kept", ["kept/{device}"])
    registry.delete("gone")  # deleted while this worker was not told
    sent: list = []
    real_run = link.run

    async def recording(commands, tolerate=()):
        sent.extend(c["command"] for c in commands)
        return await real_run(commands, tolerate)

    link.run = recording
    report = await sync.reconcile()
    assert report.removed == ["gone"]
    assert report.need_token == ["old"]
    clients = {
        c["username"]: c
        for c in (await link.one({"command": "listClients", "verbose": True}))["data"]["clients"]
    }
    assert "gone" not in clients and clients["old"].get("disabled") is True
    assert not clients["kept"].get("disabled") and ADMIN[0] in clients and PLATFORM[0] in clients
    sent.clear()
    again = await sync.reconcile()  # idempotent: nothing left to change
    assert (again.removed, again.need_token) == ([], ["old"])
    assert sent == ["listClients", "listRoles"]
    _, token = registry.add_token("old")  # a new token: it connects
    await sync.sync("old", token)
    assert sync.need_token == set()
    async with client(mosquitto.port, "old", token) as dev:
        assert await dev.connect() == "Success"


async def test_refusals_name_the_command_and_the_reason(mosquitto, world):
    _, _, link = world
    with pytest.raises(DynsecError, match=r"deleteClient \(username 'nobody'\): Client not found"):
        await link.one({"command": "deleteClient", "username": "nobody"})
    wrong = DynsecLink(BrokerAddress.parse(mosquitto.url), ADMIN[0], "wrong", timeout=5)
    with pytest.raises(DynsecError, match="cannot reach Mosquitto's dynamic-security plugin"):
        await wrong.one({"command": "listClients"})


# ----- Mosquitto decides as the embedded broker does ---------------------------------------------------------
LEVEL = st.sampled_from(["a", "b", "s1"])
TOPIC = st.lists(LEVEL, min_size=1, max_size=3).map("/".join)
FILTER = st.lists(st.sampled_from(["a", "b", "s1", "+", "{device}"]), min_size=1, max_size=3).flatmap(
    lambda levels: st.sampled_from(["/".join(levels), "/".join(levels) + "/#"])
)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(filters=st.lists(FILTER, min_size=1, max_size=3, unique=True), topics=st.lists(TOPIC, max_size=8))
async def test_mosquitto_admits_exactly_what_the_registry_allows(
    mosquitto, tmp_path_factory, filters, topics
):
    db = connect(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'config.db'}")
    registry = DeviceRegistry(db)
    sync = DeviceSync(registry, DynsecLink(BrokerAddress.parse(mosquitto.url), *ADMIN))
    await sync.ensure_platform_client(*PLATFORM)
    device, token = registry.create("s1", topics=filters)
    try:
        await sync.sync("s1", token)
        async with client(mosquitto.port, *PLATFORM) as watch, client(mosquitto.port, "s1", token) as dev:
            assert await watch.connect() == "Success"
            assert await watch.subscribe("#", 1) == [1]
            assert await dev.connect() == "Success"
            for topic in topics:
                await dev.publish(topic, b"", qos=1)
            end = device.filters[0]
            sentinel = "/".join("s1" if part in ("+", "#") else part for part in end)
            assert may_publish(device, sentinel)
            await dev.publish(sentinel, b"end", qos=1)
            got = []
            while True:
                topic, payload, *_ = await watch.next()
                if payload == b"end":
                    break
                got.append(topic)
            assert got == [t for t in topics if may_publish(device, t)]
            for topic_filter in topics[:3] + [f.replace("{device}", "s1") for f in filters]:
                want = 1 if may_subscribe(device, topic_filter) else REFUSED
                assert await dev.subscribe(topic_filter, 1) == [want], topic_filter
    finally:
        await sync.remove("s1")
        db.dispose()


async def test_a_device_cannot_take_the_name_of_a_client_that_is_not_a_device(mosquitto, world):
    registry, sync, _ = world
    _, token = registry.create(PLATFORM[0], topics=["x/{device}"])
    with pytest.raises(DynsecError, match="not a device"):
        await sync.sync(PLATFORM[0], token)
    report = await sync.reconcile()
    assert report.clashes == [PLATFORM[0]] and PLATFORM[0] not in report.removed
    async with client(mosquitto.port, PLATFORM[0], token) as impostor:
        assert await impostor.connect() != "Success"
    registry.delete(PLATFORM[0])
    await sync.sync(PLATFORM[0])  # the device is gone; the client of its name is not a device's: it stays
    async with client(mosquitto.port, *PLATFORM) as runtime_client:  # untouched
        assert await runtime_client.connect() == "Success"
