"""Ontology nodes (validate, insert, query, update, delete, subscribe) against a real SQLite real-time DB and a
real ontology registry."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.ontology.common import compile_json_field
from sofiaflow.runtime.data import config_db, rtdb
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.errors import FlowValidationError, NodeError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}

READING = {
    "type": "object",
    "properties": {"sensor": {"type": "string"}, "temp": {"type": "number"}},
    "required": ["sensor", "temp"],
}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": props.pop("z", "t1"),
        "name": props.pop("name", ""),
        "x": 100,
        "y": 100,
        "wires": [list(w) for w in wires],
        **props,
    }


@pytest.fixture
def services(tmp_path):
    store = rtdb.open_store(f"sqlite:///{tmp_path}/rt.db")
    registry = OntologyRegistry(config_db.connect(f"sqlite:///{tmp_path}/c.db"))
    registry.create("Reading", READING, "temperature readings")
    yield {"rtdb": store, "ontologies": registry}
    store.close()


def make_tester(flows, registry, services):
    t = FlowTester(flows, registry)
    t.engine.services.update(services)
    return t


async def settle(t):
    """Wait until no message is queued and no async handler (a store call in its thread) is still running."""
    for _ in range(500):
        await t.idle()
        if all(n._worker is None for n in t.engine.nodes.values()):
            await t.idle()
            if all(n._worker is None for n in t.engine.nodes.values()):
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the flow did not settle")


def catch_errors(t):
    return [e["msg"] for e in t.errors()]


# ----- validate + insert + subscribe ------------------------------------------------------------------------------


async def test_validate_then_insert_stores_valid_readings_and_routes_invalid_ones(registry, services):
    flows = [
        TAB,
        node("in", "junction", [["v"]]),
        node("v", "ontology-validate", [["ins"], ["bad"]], ontology="Reading"),
        node("ins", "ontology-insert", [["ok"]], ontology="Reading"),
        node("ok", "junction", [[]]),
        node("bad", "junction", [[]]),
        node("sub", "ontology-subscribe", [["seen"]], ontology="Reading", query='{"temp": {"$gt": 20}}'),
        node("seen", "junction", [[]]),
    ]
    async with make_tester(flows, registry, services) as t:
        t.inject("in", {"payload": {"sensor": "s1", "temp": 21.5}, "device": "dev-1", "user": "alice"})
        t.inject("in", {"payload": {"sensor": "s2", "temp": "hot"}})
        t.inject("in", {"payload": {"sensor": "s3", "temp": 10}})
        await settle(t)
        ok = t.outputs("ok")[0]
        assert len(ok) == 2, (t.errors(), t.outputs("bad"))
        assert all(isinstance(m["payload"], str) and len(m["payload"]) == 32 for m in ok)
        assert ok[0]["inserted"]["sensor"] == "s1" and ok[0]["inserted"]["_id"] == ok[0]["payload"]
        bad = t.outputs("bad")[0]
        assert len(bad) == 1 and bad[0]["payload"]["sensor"] == "s2"
        assert bad[0]["errors"][0]["path"] == "/temp" and bad[0]["errors"][0]["validator"] == "type"
        stored = services["rtdb"].find("Reading", {}, sort=[("sensor", 1)])
        assert [d["sensor"] for d in stored] == ["s1", "s3"]
        ctx = stored[0]["contextData"]
        assert ctx["source"] == "flow" and ctx["device"] == "dev-1" and ctx["user"] == "alice"
        assert ctx["timestamp"].endswith("Z") and isinstance(ctx["timestampMillis"], int)
        seen = t.outputs("seen")[0]
        assert [(m["event"], m["topic"], m["payload"]["sensor"]) for m in seen] == [
            ("insert", "Reading", "s1")
        ]
        assert seen[0]["payload"]["_id"] == ok[0]["payload"]
        assert "contextData" in seen[0]["payload"]


async def test_validate_array_reports_item_indexes(registry, services):
    flows = [
        TAB,
        node("v", "ontology-validate", [["ok"], ["bad"]], ontology="Reading"),
        node("ok", "junction", [[]]),
        node("bad", "junction", [[]]),
    ]
    async with make_tester(flows, registry, services) as t:
        t.inject("v", {"payload": [{"sensor": "a", "temp": 1}, {"sensor": "b", "temp": 2}]})
        t.inject("v", {"payload": [{"sensor": "a", "temp": 1}, {"temp": 2}]})
        t.inject("v", {"topic": "no payload"})
        await settle(t)
        assert len(t.outputs("ok")[0]) == 1
        (bad,) = t.outputs("bad")[0]
        assert bad["errors"] == [
            {
                "path": "",
                "message": "'sensor' is a required property",
                "validator": "required",
                "schema_path": "/required",
                "property": "sensor",
                "index": 1,
            }
        ]
        assert any("no value to validate" in e for e in catch_errors(t))


async def test_batch_insert_is_all_or_nothing(registry, services):
    flows = [
        TAB,
        node("ins", "ontology-insert", [["ok"]], ontology="Reading"),
        node("ok", "junction", [[]]),
        node("c", "catch", [["caught"]], scope=None, uncaught=False),
        node("caught", "junction", [[]]),
    ]
    async with make_tester(flows, registry, services) as t:
        t.inject("ins", {"payload": [{"sensor": "a", "temp": 1}, {"sensor": "b"}, "nope"]})
        await settle(t)
        assert t.outputs("ok")[0] == []
        (caught,) = t.outputs("caught")[0]
        text = caught["error"]["message"]
        assert "2 validation error(s), nothing stored" in text and "item 1" in text and "item 2" in text
        assert services["rtdb"].count("Reading", {}) == 0
        t.inject("ins", {"payload": [{"sensor": "a", "temp": 1}, {"sensor": "b", "temp": 2}]})
        t.inject("ins", {"payload": []})
        await settle(t)
        first, empty = t.outputs("ok")[0]
        assert isinstance(first["payload"], list) and len(first["payload"]) == 2
        assert [d["sensor"] for d in first["inserted"]] == ["a", "b"]
        assert empty["payload"] == []
        assert services["rtdb"].count("Reading", {}) == 2


async def test_insert_reads_the_configured_property(registry, services):
    flows = [
        TAB,
        node("ins", "ontology-insert", [["ok"]], ontology="Reading", property="data"),
        node("ok", "junction", [[]]),
    ]
    async with make_tester(flows, registry, services) as t:
        t.inject("ins", {"data": {"sensor": "x", "temp": 3}, "user": {"username": "bob"}})
        await settle(t)
        (out,) = t.outputs("ok")[0]
        doc = services["rtdb"].find("Reading", {"_id": out["payload"]})[0]
        assert doc["temp"] == 3 and doc["contextData"]["user"] == "bob"


async def test_subscribe_sees_updates_and_deletes_and_stops_after_close(registry, services):
    flows = [
        TAB,
        node("ins", "ontology-insert", [[]], ontology="Reading"),
        node(
            "up",
            "ontology-update",
            [[]],
            ontology="Reading",
            query='{"sensor": "{{payload}}"}',
            update='{"$inc": {"temp": 100}}',
        ),
        node("del", "ontology-delete", [[]], ontology="Reading", query="{}"),
        node("sub", "ontology-subscribe", [["seen"]], ontology="Reading", events="update,delete"),
        node("seen", "junction", [[]]),
    ]
    async with make_tester(flows, registry, services) as t:
        t.inject("ins", {"payload": [{"sensor": "a", "temp": 1}, {"sensor": "b", "temp": 2}]})
        await settle(t)
        t.inject("up", {"payload": "b"})
        await settle(t)
        t.inject("del", {})
        await settle(t)
        seen = [(m["event"], m["payload"]["sensor"], m["payload"]["temp"]) for m in t.outputs("seen")[0]]
        assert seen[0] == ("update", "b", 102)
        assert sorted(seen[1:]) == [("delete", "a", 1), ("delete", "b", 102)]
        assert t.engine.services["ontology-events"].has_listeners("Reading")
    assert not t.engine.services["ontology-events"].has_listeners("Reading")


# ----- query -------------------------------------------------------------------------------------------------------


async def test_query_with_mustache_parameters_sort_limit_and_msg_override(registry, services):
    services["rtdb"].insert("Reading", [{"sensor": f"s{i}", "temp": i} for i in range(6)])
    flows = [
        TAB,
        node(
            "q",
            "ontology-query",
            [["out"]],
            ontology="Reading",
            query='{"temp": {"$gte": {{payload.min}}}, "sensor": {"$ne": "{{payload.skip}}"}}',
            sort='{"temp": -1}',
            limit="2",
        ),
        node("out", "junction", [[]]),
    ]
    async with make_tester(flows, registry, services) as t:
        t.inject("q", {"payload": {"min": 2, "skip": "s5"}})
        t.inject("q", {"query": {"sensor": "s1"}, "payload": {}})
        t.inject(
            "q",
            {"payload": {"min": 0}, "limit": 0, "sort": [["temp", 1]], "projection": {"temp": 1, "_id": 0}},
        )
        await settle(t)
        first, override, everything = t.payloads("out")
        assert [d["sensor"] for d in first] == ["s4", "s3"]
        assert [d["sensor"] for d in override] == ["s1"]
        assert everything == [{"temp": i} for i in range(6)]


async def test_query_errors_name_the_problem(registry, services):
    flows = [
        TAB,
        node("q", "ontology-query", [["out"]], ontology="Reading", query='{"temp": {{payload}}}'),
        node("out", "junction", [[]]),
    ]
    async with make_tester(flows, registry, services) as t:
        t.inject("q", {"query": {"temp": {"$regexx": "x"}}})
        t.inject("q", {"payload": None})
        t.inject("q", {"payload": 5, "limit": -1})
        await settle(t)
        assert t.outputs("out")[0] == []
        errors = catch_errors(t)
        assert any("query failed" in e and "$regexx" in e for e in errors)
        assert any("rendered text is not JSON" in e for e in errors)
        assert any("msg.limit" in e for e in errors)


# ----- update / delete ----------------------------------------------------------------------------------------------


async def test_update_and_delete_report_counts(registry, services):
    services["rtdb"].insert(
        "Reading", [{"sensor": "a", "temp": 1}, {"sensor": "a", "temp": 2}, {"sensor": "b", "temp": 3}]
    )
    flows = [
        TAB,
        node(
            "up",
            "ontology-update",
            [["out"]],
            ontology="Reading",
            query='{"sensor": "{{payload}}"}',
            update='{"$set": {"checked": true}}',
        ),
        node(
            "one",
            "ontology-update",
            [["out"]],
            ontology="Reading",
            query="{}",
            update='{"$set": {"first": true}}',
            multi="false",
        ),
        node("del", "ontology-delete", [["out"]], ontology="Reading", query='{"sensor": "{{payload}}"}'),
        node("none", "ontology-delete", [["out"]], ontology="Reading"),
        node("out", "junction", [[]]),
    ]
    async with make_tester(flows, registry, services) as t:
        t.inject("up", {"payload": "a"})
        await settle(t)
        t.inject("up", {"query": {"sensor": "b"}, "update": {"$unset": {"temp": ""}}})
        await settle(t)
        t.inject("one", {})
        await settle(t)
        assert services["rtdb"].count("Reading", {"first": True}) == 1
        t.inject("del", {"payload": "a"})
        await settle(t)
        t.inject("none", {})
        await settle(t)
        assert t.payloads("out") == [2, 1, 1, 2]
        (left,) = services["rtdb"].find("Reading", {})
        assert left["sensor"] == "b" and "temp" not in left and "checked" not in left
        assert any("no filter" in e for e in catch_errors(t))


# ----- deploy-time checks -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "type_",
    [
        "ontology-validate",
        "ontology-insert",
        "ontology-query",
        "ontology-update",
        "ontology-delete",
        "ontology-subscribe",
    ],
)
async def test_unknown_ontology_refuses_the_deploy(registry, services, type_):
    flows = [TAB, node("n", type_, [[]] if type_ != "ontology-validate" else [[], []], ontology="Nope")]
    with pytest.raises(FlowValidationError, match="Nope"):
        async with make_tester(flows, registry, services):
            pass


@pytest.mark.parametrize(
    ("props", "text"),
    [
        ({"ontology": ""}, "no ontology chosen"),
        ({"ontology": "Reading", "query": '{"temp": {"$bad": 1}}'}, "query"),
        ({"ontology": "Reading", "query": "{not json"}, "not JSON"),
        ({"ontology": "Reading", "query": '{"a": "{{#x}}y{{/x}}"}'}, "section"),
        ({"ontology": "Reading", "sort": "5"}, "sort"),
    ],
)
async def test_bad_query_config_refuses_the_deploy(registry, services, props, text):
    flows = [TAB, node("q", "ontology-query", [[]], **props)]
    with pytest.raises(FlowValidationError, match=text):
        async with make_tester(flows, registry, services):
            pass


async def test_missing_services_refuse_the_deploy(registry):
    flows = [TAB, node("v", "ontology-validate", [[], []], ontology="Reading")]
    with pytest.raises(FlowValidationError, match="ontologies"):
        async with FlowTester(flows, registry):
            pass


def test_ontology_field_offers_choices_to_the_editor(registry):
    from sofiaflow.nodes.ontology.query import OntologyQueryNode

    schema = OntologyQueryNode.Config.model_json_schema()
    assert schema["properties"]["ontology"]["x-choices"] == "ontologies"


# ----- property: rendered parameters round-trip as JSON -----------------------------------------------------------


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=st.text(max_size=20),
    number=st.integers(-(10**9), 10**9) | st.floats(allow_nan=False, allow_infinity=False),
)
def test_mustache_parameters_keep_their_values(value, number):
    render = compile_json_field(
        '{"s": "{{payload.s}}", "n": {{payload.n}}, "raw": {{{payload.raw}}}}', "query"
    )
    out = render({"payload": {"s": value, "n": number, "raw": {"v": [value]}}})
    assert out == {"s": value, "n": number, "raw": {"v": [value]}}


def test_json_field_without_parameters_is_parsed_once():
    render = compile_json_field('{"a": 1}', "query")
    assert render({}) is render({"x": 1})
    with pytest.raises(NodeError, match="must be a JSON object"):
        compile_json_field("[1]", "query")


async def test_mqtt_in_validate_insert_through_the_embedded_broker(registry, services, tmp_path):
    """The issue's flow: `mqtt in -> ontology-validate -> ontology-insert`, readings arriving over the real
    embedded broker; a subscribe node sees the inserts."""
    import json as _json

    from sofiaflow.runtime.mqtt.broker import EmbeddedBroker
    from sofiaflow.runtime.security.devices import DeviceRegistry

    broker = EmbeddedBroker(DeviceRegistry(config_db.connect(f"sqlite:///{tmp_path}/d.db")), port=0)
    await broker.start()
    try:
        flows = [
            TAB,
            {
                "id": "mb",
                "type": "mqtt-broker",
                "name": "",
                "broker": "127.0.0.1",
                "port": str(broker.port),
                "protocolVersion": "4",
                "keepalive": "60",
                "cleansession": True,
            },
            node("in", "mqtt in", [["v"]], topic="readings/+", qos="1", datatype="json", broker="mb"),
            node("v", "ontology-validate", [["ins"], ["bad"]], ontology="Reading"),
            node("ins", "ontology-insert", [["ok"]], ontology="Reading"),
            node("ok", "junction", [[]]),
            node("bad", "junction", [[]]),
            node("sub", "ontology-subscribe", [["seen"]], ontology="Reading"),
            node("seen", "junction", [[]]),
        ]
        t = make_tester(flows, registry, {**services, "mqtt-embedded": broker})
        async with t:
            for body in (
                {"sensor": "s1", "temp": 22},
                {"sensor": "s2", "temp": "n/a"},
                {"sensor": "s3", "temp": 5},
            ):
                await broker.publish(f"readings/{body['sensor']}", _json.dumps(body).encode(), qos=1)
            for _ in range(200):
                await settle(t)
                if len(t.outputs("ok")[0]) + len(t.outputs("bad")[0]) == 3:
                    break
                await asyncio.sleep(0.01)
            assert [m["payload"]["sensor"] for m in t.outputs("bad")[0]] == ["s2"]
            stored = services["rtdb"].find("Reading", {}, sort=[("sensor", 1)])
            assert [d["sensor"] for d in stored] == ["s1", "s3"]
            assert all("contextData" in d for d in stored)
            assert sorted(m["payload"]["sensor"] for m in t.outputs("seen")[0]) == ["s1", "s3"]
    finally:
        await broker.stop()


async def test_devices_publishing_on_the_embedded_broker_are_stamped_and_need_insert(
    registry, services, tmp_path
):
    """Real MQTT devices (paho over TCP) publish to the embedded broker; `mqtt in` carries the device, the insert
    records it in contextData, and a device without INSERT on the ontology is refused (to catch, audited)."""
    import json as _json

    from sofiaflow.runtime.client import DeviceClient
    from sofiaflow.runtime.mqtt.broker import EmbeddedBroker
    from sofiaflow.runtime.security.audit import AuditLog
    from sofiaflow.runtime.security.devices import DeviceRegistry

    db = config_db.connect(f"sqlite:///{tmp_path}/d.db")
    devices = DeviceRegistry(db)
    _, writer_token = devices.create("meter-a", {"Reading": "INSERT"}, ["readings/{device}"])
    _, reader_token = devices.create("meter-b", {"Reading": "QUERY"}, ["readings/{device}"])
    audit = AuditLog(db)
    broker = EmbeddedBroker(devices, port=0)
    await broker.start()
    try:
        flows = [
            TAB,
            {
                "id": "mb",
                "type": "mqtt-broker",
                "name": "",
                "broker": "127.0.0.1",
                "port": str(broker.port),
                "protocolVersion": "4",
                "keepalive": "60",
                "cleansession": True,
            },
            node("in", "mqtt in", [["ins"]], topic="readings/+", qos="1", datatype="json", broker="mb"),
            node("ins", "ontology-insert", [["ok"]], ontology="Reading"),
            node("ok", "junction", [[]]),
            node("c", "catch", [["caught"]], scope=None),
            node("caught", "junction", [[]]),
        ]
        t = make_tester(
            flows, registry, {**services, "mqtt-embedded": broker, "devices": devices, "audit": audit}
        )
        async with t:
            for name, token in (("meter-a", writer_token), ("meter-b", reader_token)):
                client = DeviceClient(name, token, mqtt_port=broker.port)
                await asyncio.to_thread(client.connect, 5)
                try:
                    await asyncio.to_thread(
                        client.publish, f"readings/{name}", _json.dumps({"sensor": name, "temp": 1})
                    )
                finally:
                    await asyncio.to_thread(client.close)
            for _ in range(300):
                await settle(t)
                if len(t.outputs("ok")[0]) + len(t.outputs("caught")[0]) == 2:
                    break
                await asyncio.sleep(0.01)
            [stored] = services["rtdb"].find("Reading", {})
            assert stored["sensor"] == "meter-a"
            assert stored["contextData"]["device"] == "meter-a" and stored["contextData"]["source"] == "mqtt"
            [refused] = t.outputs("caught")[0]
            assert (
                "'meter-b' has no INSERT right" in refused["error"]["message"]
                and refused["device"] == "meter-b"
            )
            [entry] = audit.entries(outcome="denied")
            assert (
                entry["user"] == "device:meter-b"
                and entry["action"] == "mqtt.insert"
                and entry["target"] == "Reading"
            )
    finally:
        await broker.stop()


# ----- the flow owner's rights ------------------------------------------------------------------------------------


def _owned(flows, registry, services, owner):
    """A tester whose tab `t1` belongs to `owner` (real ownership and permissions in a SQLite config DB)."""
    from sofiaflow.runtime.security.ownership import FlowOwnership
    from sofiaflow.runtime.security.permissions import Permissions

    db = config_db.connect("sqlite://")
    owners = FlowOwnership(db)
    owners.share("t1", owner=owner)
    permissions = Permissions(db, {"ada": "administrator", "dev1": "developer"}.get, lambda _name: None)
    return make_tester(
        flows, registry, {**services, "flow-owners": owners, "permissions": permissions}
    ), permissions


@pytest.mark.parametrize(("type_", "right"), [("ontology-query", "QUERY"), ("ontology-insert", "INSERT")])
async def test_a_flow_acts_with_its_owners_rights_on_the_ontology(registry, services, type_, right):
    flows = [TAB, node("n", type_, [[]], ontology="Reading")]
    tester, _ = _owned(flows, registry, services, "dev1")
    with pytest.raises(FlowValidationError) as exc:
        async with tester:
            pass
    assert f"the flow's owner 'dev1' has no {right} right" in str(exc.value)

    tester, permissions = _owned(flows, registry, services, "dev1")
    permissions.grant("Reading", "dev1", right)
    async with tester as t:
        assert "n" in t.engine.nodes
    async with _owned(flows, registry, services, "ada")[0] as t:  # an administrator holds every right
        assert "n" in t.engine.nodes
