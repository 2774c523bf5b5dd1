"""EmbeddedBroker with real MQTT clients (paho-mqtt 2.x, Debian's mosquitto_pub): CONNECT authentication,
topic rights, revocation, sessions, start/stop. The in-process path is in test_broker_inprocess.py."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.mqtt.broker import EmbeddedBroker
from sofiaflow.runtime.security.devices import DeviceRegistry
from tests.conftest import require_binary
from tests.mqtt_helpers import NOT_AUTHORIZED, broker_env, client, collector, until


@pytest.fixture
async def env(tmp_path):
    async with broker_env(tmp_path) as pair:
        yield pair


# ----- CONNECT ---------------------------------------------------------------------------------------
async def test_device_publishes_and_subscribes_within_its_topics(env):
    registry, broker = env
    _, token = registry.create("s1", topics=["sensors/{device}/#"])
    seen = collector(broker, "sensors/#")
    async with client(broker.port, "s1", token) as dev:
        assert await dev.connect() == "Success"
        assert broker.clients_connected() == 1
        assert await dev.subscribe("sensors/s1/+", 1) == [1]
        await dev.publish("sensors/s1/temp", b"21", qos=0)
        await dev.publish("sensors/s1/hum", b"40", qos=1)
        got = {(await dev.next())[:2], (await dev.next())[:2]}
        assert got == {("sensors/s1/temp", b"21"), ("sensors/s1/hum", b"40")}
        await until(lambda: len(seen) == 2)
        await dev.nothing(0.2)
    assert sorted(seen) == [("sensors/s1/hum", b"40", 1, False), ("sensors/s1/temp", b"21", 0, False)]
    await until(lambda: broker.clients_connected() == 0)
    assert registry.get("s1").last_seen is not None


@pytest.mark.parametrize(
    "case", ["wrong token", "unknown device", "disabled", "anonymous", "other's token", "no password"]
)
async def test_connect_refused(env, case):
    registry, broker = env
    _, token = registry.create("s1", topics=["#"])
    _, other = registry.create("s2", topics=["#"])
    registry.create("off", topics=["#"], enabled=False)
    user, password = {
        "wrong token": ("s1", token[:-2] + ("xx" if not token.endswith("xx") else "yy")),
        "unknown device": ("ghost", token),
        "disabled": ("off", registry.add_token("off")[1]),
        "anonymous": (None, None),
        "other's token": ("s1", other),
        "no password": ("s1", None),
    }[case]
    async with client(broker.port, user, password) as c:
        assert await c.connect() == NOT_AUTHORIZED
    assert broker.clients_connected() == 0


async def test_will_outside_topics_refused_at_connect(env):
    registry, broker = env
    _, token = registry.create("s1", topics=["status/{device}"])
    seen = collector(broker, "#")
    async with client(broker.port, "s1", token) as bad:
        bad.c.will_set("cmd/other-device", b"spoofed")
        assert await bad.connect() == NOT_AUTHORIZED
    async with client(broker.port, "s1", token) as good:
        good.c.will_set("status/s1", b"offline")
        assert await good.connect() == "Success"
    await asyncio.sleep(0.1)
    assert seen == []  # a clean DISCONNECT sends no will


async def test_mosquitto_clients_connect_and_are_refused(env):
    exe = require_binary("mosquitto_pub")
    registry, broker = env
    _, token = registry.create("s1", topics=["sensors/{device}/#"])
    seen = collector(broker, "#")
    base = [exe, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "sensors/s1/x", "-m", "hi", "-q", "1"]
    ok = await asyncio.create_subprocess_exec(*base, "-u", "s1", "-P", token, stderr=asyncio.subprocess.PIPE)
    assert await asyncio.wait_for(ok.wait(), 10) == 0
    bad = await asyncio.create_subprocess_exec(
        *base, "-u", "s1", "-P", "nope.nope", stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(bad.communicate(), 10)
    assert bad.returncode != 0 and b"not authori" in err.lower()
    await until(lambda: len(seen) == 1)
    assert seen == [("sensors/s1/x", b"hi", 1, False)]


# ----- topic rights -------------------------------------------------------------------------------------
async def test_publish_outside_topics_is_dropped(env):
    registry, broker = env
    _, t1 = registry.create("s1", topics=["sensors/{device}/#"])
    _, t2 = registry.create("s2", topics=["sensors/{device}/#"])
    seen = collector(broker, "#")
    async with client(broker.port, "s1", t1) as s1, client(broker.port, "s2", t2) as s2:
        assert await s1.connect() == "Success" and await s2.connect() == "Success"
        assert await s2.subscribe("sensors/s2/#", 1) == [1]
        await s1.publish(
            "sensors/s2/temp", b"spoof", qos=1
        )  # acked (MQTT 3.1.1 has no refusal), not delivered
        await s1.publish("sensors/s2/temp", b"spoof0", qos=0)
        await s1.publish("sensors/s1/temp", b"mine", qos=1)
        await until(lambda: len(seen) == 1)
        await s2.nothing(0.3)
        assert seen == [("sensors/s1/temp", b"mine", 1, False)]


async def test_subscribe_outside_topics_is_refused(env):
    registry, broker = env
    _, t1 = registry.create("s1", topics=["sensors/{device}/#", "cmd/{device}"])
    async with client(broker.port, "s1", t1) as s1:
        assert await s1.connect() == "Success"
        assert await s1.subscribe("sensors/s2/#", 1) == [0x80]
        assert await s1.subscribe("#", 0) == [0x80]
        assert await s1.subscribe("sensors/+/temp", 0) == [0x80]
        assert await s1.subscribe("cmd/+", 0) == [0x80]
        assert await s1.subscribe("cmd/s1", 1) == [1]
        await broker.publish("sensors/s2/temp", b"no")
        await broker.publish("cmd/s1", b"yes", qos=1)
        assert (await s1.next())[:2] == ("cmd/s1", b"yes")
        await s1.nothing(0.2)


# ----- revocation ------------------------------------------------------------------------------------
async def test_revoked_token_drops_open_connection_and_is_refused_next(env):
    registry, broker = env
    _, t1 = registry.create("s1", topics=["sensors/{device}/#"])
    id2, t2 = registry.add_token("s1")
    async with client(broker.port, "s1", t1) as a, client(broker.port, "s1", t2) as b:
        assert await a.connect() == "Success" and await b.connect() == "Success"
        assert await b.subscribe("sensors/s1/#", 1) == [1]
        start = time.monotonic()
        registry.revoke("s1", t1.split(".")[0])
        assert await asyncio.to_thread(a.disconnected.wait, 1.0), "the revoked connection was not dropped"
        elapsed = time.monotonic() - start
        assert elapsed < 1.0
        async with client(broker.port, "s1", t1) as again:
            assert await again.connect() == NOT_AUTHORIZED
        # the other token's connection is untouched
        assert not b.disconnected.is_set()
        await broker.publish("sensors/s1/x", b"still here", qos=1)
        assert (await b.next())[:2] == ("sensors/s1/x", b"still here")
        # rotating (revoke_all) drops b as well
        registry.revoke_all("s1")
        assert await asyncio.to_thread(b.disconnected.wait, 1.0)
        del id2


@pytest.mark.parametrize("how", ["delete", "disable", "new topics"])
async def test_device_changes_drop_its_sessions(env, how):
    registry, broker = env
    _, token = registry.create("s1", topics=["a/#"])
    async with client(broker.port, "s1", token) as c:
        assert await c.connect() == "Success"
        {
            "delete": lambda: registry.delete("s1"),
            "disable": lambda: registry.update("s1", enabled=False),
            "new topics": lambda: registry.update("s1", topics=["b/#"]),
        }[how]()
        assert await asyncio.to_thread(c.disconnected.wait, 1.0)
    async with client(broker.port, "s1", token) as again:
        if how == "new topics":  # reconnects with the new rights
            assert await again.connect() == "Success"
            assert await again.subscribe("a/#") == [0x80]
            assert await again.subscribe("b/#") == [0]
        else:
            assert await again.connect() == NOT_AUTHORIZED


async def test_refused_connect_leaves_the_session_of_its_client_id_alone(env):
    registry, broker = env
    _, token = registry.create("s1", topics=["t/{device}/#"])
    async with client(broker.port, "s1", token, client_id="dev-1") as dev:
        assert await dev.connect() == "Success"
        assert await dev.subscribe("t/s1/#", 1) == [1]
        for clean in (True, False):
            async with client(
                broker.port, "s1", "forged.token", client_id="dev-1", clean_session=clean
            ) as bad:
                assert await bad.connect() == NOT_AUTHORIZED
        assert not dev.disconnected.is_set()
        await broker.publish("t/s1/a", b"ok", qos=1)
        assert (await dev.next())[:2] == ("t/s1/a", b"ok")


async def test_persistent_session_gets_queued_messages_and_takeover_drops_the_old_client(env):
    registry, broker = env
    _, token = registry.create("s1", topics=["t/{device}/#"])
    async with client(broker.port, "s1", token, client_id="p1", clean_session=False) as a:
        assert await a.connect() == "Success"
        assert await a.subscribe("t/s1/#", 1) == [1]
    await until(lambda: broker.clients_connected() == 0)
    await broker.publish("t/s1/queued", b"while away", qos=1)
    async with client(broker.port, "s1", token, client_id="p1", clean_session=False) as b:
        assert await b.connect() == "Success"
        assert (await b.next())[:2] == ("t/s1/queued", b"while away")
        async with client(broker.port, "s1", token, client_id="p1") as c:  # same client id, clean: takes over
            assert await c.connect() == "Success"
            assert await asyncio.to_thread(b.disconnected.wait, 2)
            await broker.publish("t/s1/after", b"x", qos=1)
            await c.nothing(0.2)  # the clean session did not inherit the subscription


async def test_other_device_does_not_inherit_a_persistent_session(env):
    registry, broker = env
    _, t1 = registry.create("s1", topics=["#"])
    _, t2 = registry.create("s2", topics=["x/#"])
    async with client(broker.port, "s1", t1, client_id="shared", clean_session=False) as a:
        assert await a.connect() == "Success"
        assert await a.subscribe("secret/#", 1) == [1]
    async with client(broker.port, "s2", t2, client_id="shared", clean_session=False) as b:
        assert await b.connect() == "Success"
        await broker.publish("secret/plans", b"s1 only", qos=1)
        await b.nothing(0.3)


# ----- lifecycle ---------------------------------------------------------------------------------------
async def test_stop_releases_port_and_leaves_no_tasks(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'b.db'}")
    registry = DeviceRegistry(db)
    _, token = registry.create("s1", topics=["#"])
    broker = EmbeddedBroker(registry, port=0)
    await broker.start()
    port = broker.port
    before = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
    async with client(port, "s1", token) as dev:
        assert await dev.connect() == "Success"
        await broker.stop()
        assert await asyncio.to_thread(dev.disconnected.wait, 2)
    with pytest.raises(RuntimeError, match="not started"):
        await broker.publish("a", b"x")
    await asyncio.sleep(0.05)
    left = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} - before
    assert not left, left
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
    again = EmbeddedBroker(registry, port=port)  # and a new broker can take it
    await again.start()
    assert again.port == port and again.started
    with pytest.raises(RuntimeError, match="already started"):
        await again.start()
    await again.stop()
    await again.stop()
    registry.revoke_all("s1")  # no listener left behind
    db.dispose()
