"""Every message the embedded broker hands to a flow carries its origin tenant, end to end: a real `sofiaflow run`
with the shipped IoT Broker flow (ownerless: the platform's SSAP gateway), flows deployed through the admin API on
the tabs of two developers (ana, bob) and an administrator, real MQTT clients (paho): ana's device, an anonymous
SSAP client, and one watch device per tab.

Each tab has `mqtt in '#'` reporting what it heard ("<topic> <payload>") to its owner's watch topic (not its own
reports: a switch drops `watch/...`), and an inject -> `mqtt out` publishing `news/<who>`. A developer's tab hears
its own device and its own flow's publishes, nothing else: not the anonymous client's JOIN (and its token), not the
IoT Broker flow's answer, not the administrator's or the other developer's flow publishes. The administrator's tab
hears everything.

Retained messages and the rule itself are checked on the broker alone (a real amqtt broker, real clients): the
origin travels with a retained message and is replayed under the same rule; a hypothesis property checks that every
in-process subscriber gets exactly the messages whose origin its tenant may hear.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.mqtt import topics as mt
from sofiaflow.runtime.security.tenant import ANONYMOUS, hears
from tests.mqtt_helpers import client, until

sys.path.insert(0, os.path.dirname(__file__))
import onesait_server  # noqa: E402
from broker_tenants import add_developers_and_devices, broker_config, deploy_as_developers  # noqa: E402
from test_ssap_mqtt_e2e import SsapClient  # noqa: E402


def tab(who: str, mqtt_port: int) -> list[dict[str, Any]]:
    """`who`'s tab and mqtt-broker config node (see the module docstring)."""
    z, cfg = f"{who}_tab", f"{who}_cfg"
    out = {"qos": "1", "retain": "false", "broker": cfg, "z": z, "wires": []}
    return [
        {"id": z, "type": "tab", "label": f"{who}'s listening post"},
        broker_config(cfg, mqtt_port),
        {
            "id": f"{who}_in",
            "type": "mqtt in",
            "z": z,
            "topic": "#",
            "qos": "0",
            "datatype": "utf8",
            "broker": cfg,
            "wires": [[f"{who}_not_reports"]],
        },
        {
            "id": f"{who}_not_reports",
            "type": "switch",
            "z": z,
            "property": "topic",
            "propertyType": "msg",
            "rules": [{"t": "regex", "v": "^watch/"}, {"t": "else"}],
            "checkall": "false",
            "outputs": 2,
            "wires": [[], [f"{who}_heard"]],
        },
        {
            "id": f"{who}_heard",
            "type": "change",
            "z": z,
            "wires": [[f"{who}_report"]],
            "rules": [
                {"t": "set", "p": "payload", "pt": "msg", "to": 'topic & " " & payload', "tot": "jsonata"}
            ],
        },
        {"id": f"{who}_report", "type": "mqtt out", "topic": f"watch/{who}/heard", **out},
        {
            "id": f"{who}_say",
            "type": "inject",
            "z": z,
            "props": [{"p": "payload"}],
            "payload": f"{who} news",
            "payloadType": "str",
            "repeat": "",
            "crontab": "",
            "once": False,
            "topic": "",
            "wires": [[f"{who}_news"]],
        },
        {"id": f"{who}_news", "type": "mqtt out", "topic": f"news/{who}", **out},
    ]


@pytest.fixture(scope="module")
def post(tmp_path_factory):
    """The server with the IoT Broker flow, users ana and bob and the three tabs deployed; devices `ana-dev`
    (plant/ana/#), `bob-dev` (plant/bob/#), `<who>-watch` (watch/<who>/#; admin-watch ownerless), and a digital
    client `gauge` for SSAP; their tokens in `srv.tokens`."""
    srv = onesait_server.start(tmp_path_factory.mktemp("tenancy-origin"))
    try:
        tokens = {"gauge": srv.device("gauge", {"BasicSensor": "ALL"}), **add_developers_and_devices(srv)}
        flows = srv.admin.get("/flows").json()
        assert "ssapMqttIn" in {n["id"] for n in flows}  # the IoT Broker flow runs
        answer = srv.admin.post("/flows", json=[*flows, *tab("admin", srv.mqtt_port)])
        assert answer.status_code in (200, 204), answer.text
        srv.users = deploy_as_developers(srv, tab)
        assert {"admin_in", "ana_in", "bob_in", "ssapMqttIn"} <= {
            n["id"] for n in srv.admin.get("/flows").json()
        }
        srv.tokens = tokens
        yield srv
        for user in srv.users.values():
            user.close()
    finally:
        srv.stop()


async def heard_until(watch: Any, last: str) -> list[str]:
    """What a tab reported ("<topic> <payload>"), up to and including the report starting with `last`."""
    heard: list[str] = []
    while not heard or not heard[-1].startswith(last):
        heard.append((await watch.next(10))[1].decode())
    return heard


async def test_a_developers_flow_hears_only_its_own_tenants_traffic_and_administrators_hear_all(post):
    port, tokens = post.mqtt_port, post.tokens
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

        await ana_dev.publish("plant/ana/data", b"21", qos=1)  # ana's device
        instance = "inst-" + uuid.uuid4().hex[:8]
        ssap = await asyncio.to_thread(SsapClient, port, instance, "/queue/message")  # anonymous
        try:
            joined = await asyncio.to_thread(ssap.join, "gauge", tokens["gauge"])
            assert joined["body"]["ok"], joined  # the IoT Broker flow answered on /topic/message/<instance>
        finally:
            await asyncio.to_thread(ssap.close)
        assert post.admin.post("/inject/admin_say").status_code == 200
        for who, user in post.users.items():
            assert user.post(f"/inject/{who}_say").status_code == 200

        wanted = {"plant/ana/data 21", "news/admin admin news", "news/ana ana news", "news/bob bob news"}
        prefixes = (
            "/queue/message ",
            f"/topic/message/{instance} ",
        )  # the JOIN, the IoT Broker flow's answer
        everything: list[str] = []
        while not (
            wanted <= set(everything) and all(any(h.startswith(p) for h in everything) for p in prefixes)
        ):
            everything.append((await admin_watch.next(10))[1].decode())
        join = next(h for h in everything if h.startswith("/queue/message "))
        assert tokens["gauge"] in join  # administrators hear all, the JOIN's token included

        # every tab had its chance to hear all of the above: now a last message of each developer's own device
        await ana_dev.publish("plant/ana/end", b"1", qos=1)
        await bob_dev.publish("plant/bob/end", b"1", qos=1)
        ana_heard = await heard_until(ana_watch, "plant/ana/end ")
        bob_heard = await heard_until(bob_watch, "plant/bob/end ")
    assert sorted(ana_heard) == ["news/ana ana news", "plant/ana/data 21", "plant/ana/end 1"]
    assert sorted(bob_heard) == ["news/bob bob news", "plant/bob/end 1"]


# ----- the broker alone --------------------------------------------------------------------------------------
@pytest.fixture
async def env(tmp_path):
    from tests.mqtt_helpers import broker_env

    async with broker_env(tmp_path) as pair:
        yield pair


async def test_origins_of_devices_anonymous_clients_flows_and_wills(env):
    registry, broker = env
    _, ana_token = registry.create("thermo", topics=["home/{device}/#"], owner="ana")
    _, admin_token = registry.create("siren", topics=["alarm/#"])
    broker.anonymous_topics = lambda client_id: ["anon/#"]
    heard: dict[str | None, list] = {"ana": [], "(anonymous)": [], None: []}
    for tenant, got in heard.items():
        broker.subscribe("#", lambda t, p, q, r, got=got: got.append((t, broker.origin)), tenant=tenant)
    async with (
        client(broker.port, "thermo", ana_token) as thermo,
        client(broker.port, "siren", admin_token) as siren,
        client(broker.port, client_id="anon-1") as anonymous,
    ):
        thermo.c.will_set("home/thermo/lwt", b"gone", 1)
        for device in (thermo, siren, anonymous):
            assert await device.connect() == "Success"
        await anonymous.publish("anon/join", b"token", qos=1)
        await siren.publish("alarm/on", b"1", qos=1)
        await thermo.publish("home/thermo/t", b"21", qos=1)
        await broker.publish("flows/admin", b"x")
        await broker.publish("flows/ana", b"y", origin="ana")
        thermo.c.socket().close()  # gone without DISCONNECT: its will
        await until(lambda: len(heard[None]) == 6)
    assert sorted(heard[None]) == sorted(
        [
            ("anon/join", ANONYMOUS),
            ("alarm/on", None),
            ("home/thermo/t", "ana"),
            ("flows/admin", None),
            ("flows/ana", "ana"),
            ("home/thermo/lwt", "ana"),
        ]
    )
    assert sorted(heard["ana"]) == [
        ("flows/ana", "ana"),
        ("home/thermo/lwt", "ana"),
        ("home/thermo/t", "ana"),
    ]
    assert heard["(anonymous)"] == []  # a user so named is no anonymous client


async def test_retained_messages_keep_their_origin(env):
    registry, broker = env
    _, ana_token = registry.create("thermo", topics=["home/{device}/#"], owner="ana")
    broker.anonymous_topics = lambda client_id: ["anon/#"]
    async with (
        client(broker.port, "thermo", ana_token) as thermo,
        client(broker.port, client_id="anon-2") as anonymous,
    ):
        assert await thermo.connect() == "Success" and await anonymous.connect() == "Success"
        await thermo.publish("home/thermo/t", b"21", qos=1, retain=True)
        await anonymous.publish("anon/r", b"secret", qos=1, retain=True)
    await broker.publish("r/admin", b"a", retain=True)
    await broker.publish("r/ana", b"b", retain=True, origin="ana")
    await broker.publish("r/bob", b"c", retain=True, origin="bob")
    await broker.publish("r/taken", b"bob's", retain=True, origin="bob")
    await broker.publish("r/taken", b"ana's", retain=True, origin="ana")  # the last one's origin counts
    replayed: dict[str | None, list] = {"ana": [], "bob": [], None: []}
    for tenant, got in replayed.items():
        broker.subscribe("#", lambda t, p, q, r, got=got: got.append((t, p, r, broker.origin)), tenant=tenant)
    await until(lambda: len(replayed[None]) == 6)
    await asyncio.sleep(0.05)
    assert sorted(replayed["ana"]) == [
        ("home/thermo/t", b"21", True, "ana"),
        ("r/ana", b"b", True, "ana"),
        ("r/taken", b"ana's", True, "ana"),
    ]
    assert sorted(replayed["bob"]) == [("r/bob", b"c", True, "bob")]
    assert {(t, origin) for t, _, _, origin in replayed[None]} == {
        ("home/thermo/t", "ana"),
        ("anon/r", ANONYMOUS),
        ("r/admin", None),
        ("r/ana", "ana"),
        ("r/bob", "bob"),
        ("r/taken", "ana"),
    }


TENANTS = st.sampled_from([None, "ana", "bob", "(anonymous)"])
ORIGINS = st.sampled_from([None, "ana", "bob", ANONYMOUS])
TOPICS = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3).map("/".join)
FILTERS = st.one_of(TOPICS, st.sampled_from(["#", "+", "a/#", "+/b", "a/+/c"]))


@pytest.fixture(scope="module")
def running(tmp_path_factory):
    """A started broker on its own loop, for hypothesis examples (each runs its coroutine on that loop)."""
    from tests.mqtt_helpers import broker_env

    loop = asyncio.new_event_loop()
    context = broker_env(tmp_path_factory.mktemp("origin-property"))
    _, broker = loop.run_until_complete(context.__aenter__())
    yield loop, broker
    loop.run_until_complete(context.__aexit__(None, None, None))
    loop.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subscribers=st.lists(st.tuples(FILTERS, TENANTS), min_size=1, max_size=5),
    messages=st.lists(st.tuples(TOPICS, ORIGINS), min_size=1, max_size=8),
)
def test_each_in_process_subscriber_gets_exactly_what_its_tenant_may_hear(running, subscribers, messages):
    loop, broker = running

    async def run() -> list[list]:
        got: list[list] = []
        stops = []
        for topic_filter, tenant in subscribers:
            got.append([])
            stops.append(
                broker.subscribe(
                    topic_filter,
                    lambda t, p, q, r, mine=got[-1]: mine.append((t, int(p), broker.origin)),
                    tenant=tenant,
                )
            )
        for number, (topic, origin) in enumerate(messages):
            await broker.publish(topic, str(number).encode(), origin=origin)
        for stop in stops:
            stop()
        return got

    got = loop.run_until_complete(run())
    for (topic_filter, tenant), received in zip(subscribers, got, strict=True):
        expected = [
            (topic, number, origin)
            for number, (topic, origin) in enumerate(messages)
            if mt.matches(topic_filter, topic) and hears(tenant, origin)
        ]
        assert received == expected
