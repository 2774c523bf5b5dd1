"""ontology-insert's idempotency key: an instance is stored once per key (msg._streamId by default, a message
property or a JSONata expression, or off), against a real SQLite real-time DB and a real ontology registry."""

from __future__ import annotations

import pytest

from sofiaflow.runtime.data import config_db, rtdb
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.errors import FlowValidationError
from tests.test_node_ontology import TAB, make_tester, node, settle

STRICT = {
    "type": "object",
    "properties": {"sensor": {"type": "string"}, "seq": {"type": "integer"}},
    "required": ["sensor", "seq"],
    "additionalProperties": False,
}


@pytest.fixture
def services(tmp_path):
    store = rtdb.open_store(f"sqlite:///{tmp_path}/rt.db")
    registry = OntologyRegistry(config_db.connect(f"sqlite:///{tmp_path}/c.db"))
    registry.create("Reading", STRICT, "numbered readings")
    yield {"rtdb": store, "ontologies": registry}
    store.close()


def flow(**props):
    return [
        TAB,
        node("ins", "ontology-insert", [["ok"]], ontology="Reading", **props),
        node("ok", "junction", [[]]),
        node("c", "catch", [["caught"]], scope=None, uncaught=False),
        node("caught", "junction", [[]]),
        node("sub", "ontology-subscribe", [["seen"]], ontology="Reading"),
        node("seen", "junction", [[]]),
    ]


def rows(services) -> list[dict]:
    return services["rtdb"].find("Reading", {}, sort=[("sensor", 1), ("seq", 1)])


async def test_a_redelivered_stream_entry_is_stored_once_and_answered_with_the_stored_instance(
    registry, services
):
    async with make_tester(flow(), registry, services) as t:
        t.inject("ins", {"payload": {"sensor": "a", "seq": 1}, "_streamId": "p/1-0"})
        await settle(t)
        t.inject("ins", {"payload": {"sensor": "a", "seq": 1}, "_streamId": "p/1-0", "user": "later"})
        t.inject("ins", {"payload": {"sensor": "a", "seq": 1}, "_streamId": "p/2-0"})
        t.inject("ins", {"payload": {"sensor": "a", "seq": 1}})  # no stream id: no key
        await settle(t)
        first, again, other, plain = t.outputs("ok")[0]
        assert t.errors() == []
        assert [m["duplicate"] for m in (first, again, other, plain)] == [False, True, False, False]
        assert again["payload"] == first["payload"] and other["payload"] != first["payload"]
        assert again["inserted"] == first["inserted"]  # the stored document, with the first writer's context
        assert again["inserted"]["contextData"]["user"] != "later"
        stored = rows(services)
        assert len(stored) == 3
        assert all(set(d) == {"_id", "sensor", "seq", "contextData"} for d in stored)  # the key is not shown
        assert len(t.outputs("seen")[0]) == 3  # subscribers see new instances only


async def test_the_parts_of_a_split_entry_are_each_stored_and_each_once(registry, services):
    async with make_tester(flow(), registry, services) as t:
        for _ in range(2):  # the entry delivered twice: each part once
            for i in range(3):
                parts = {"id": "s", "index": i, "count": 3, "parts": {"id": "o", "index": 1, "count": 2}}
                t.inject("ins", {"payload": {"sensor": "a", "seq": i}, "_streamId": "p/9-0", "parts": parts})
            await settle(t)
        assert t.errors() == []
        assert [m["duplicate"] for m in t.outputs("ok")[0]] == [False] * 3 + [True] * 3
        assert [d["seq"] for d in rows(services)] == [0, 1, 2]


async def test_a_key_from_a_message_property(registry, services):
    async with make_tester(
        flow(idempotencyKey="payload.seq", idempotencyKeyType="msg"), registry, services
    ) as t:
        for seq in (1, 2, 1, 2, 3):
            t.inject(
                "ins", {"payload": {"sensor": f"s{seq}", "seq": seq}, "_streamId": f"ignored-{seq}-{id(t)}"}
            )
        await settle(t)
        out = t.outputs("ok")[0]
        assert [m["duplicate"] for m in out] == [False, False, True, True, False]
        assert out[2]["payload"] == out[0]["payload"]
        assert len(rows(services)) == 3


async def test_a_key_from_a_jsonata_expression_over_a_batch(registry, services):
    key = 'payload.(sensor & "/" & seq)'
    async with make_tester(flow(idempotencyKey=key, idempotencyKeyType="jsonata"), registry, services) as t:
        t.inject("ins", {"payload": [{"sensor": "a", "seq": 1}, {"sensor": "b", "seq": 1}]})
        await settle(t)
        # one already stored, one repeated inside the batch, one new
        t.inject(
            "ins",
            {"payload": [{"sensor": "b", "seq": 1}, {"sensor": "c", "seq": 1}, {"sensor": "c", "seq": 1}]},
        )
        await settle(t)
        first, second = t.outputs("ok")[0]
        assert t.errors() == []
        assert first["duplicate"] == [False, False]
        assert second["duplicate"] == [True, False, True]
        assert second["payload"][0] == first["payload"][1]
        assert second["payload"][2] == second["payload"][1]
        assert [(d["sensor"], d["seq"]) for d in rows(services)] == [("a", 1), ("b", 1), ("c", 1)]


async def test_a_batch_under_one_stream_id_is_stored_once(registry, services):
    batch = [{"sensor": "a", "seq": 1}, {"sensor": "a", "seq": 1}]
    async with make_tester(flow(), registry, services) as t:
        t.inject("ins", {"payload": batch, "_streamId": "p/9-0"})
        await settle(t)
        t.inject("ins", {"payload": batch, "_streamId": "p/9-0"})
        await settle(t)
        first, again = t.outputs("ok")[0]
        assert first["duplicate"] == [False, False]  # two items of one entry: two instances
        assert again["duplicate"] == [True, True] and again["payload"] == first["payload"]
        assert len(rows(services)) == 2


async def test_off_stores_every_message(registry, services):
    async with make_tester(flow(idempotencyKeyType="off"), registry, services) as t:
        for _ in range(2):
            t.inject("ins", {"payload": {"sensor": "a", "seq": 1}, "_streamId": "p/1-0"})
        await settle(t)
        assert [m["duplicate"] for m in t.outputs("ok")[0]] == [False, False]
        assert len(rows(services)) == 2


ONE = {"sensor": "a", "seq": 1}
TWO = [{"sensor": "a", "seq": 1}, {"sensor": "b", "seq": 2}]


@pytest.mark.parametrize(
    ("props", "msg", "text"),
    [
        ({"idempotencyKey": "payload.missing", "idempotencyKeyType": "msg"}, {"payload": ONE}, "no value"),
        (
            {"idempotencyKey": "flag", "idempotencyKeyType": "msg"},
            {"payload": ONE, "flag": True},
            "the key must be a non-empty string or a number, got true",
        ),
        (
            {"idempotencyKey": "payload.sensor", "idempotencyKeyType": "jsonata"},
            {"payload": TWO + [{"sensor": "c", "seq": 3}]},
            "3 keys for 3 items",
        ),
        (
            {"idempotencyKey": "[payload[0].sensor]", "idempotencyKeyType": "jsonata"},
            {"payload": TWO},
            "1 keys for 2 items",
        ),
        (
            {"idempotencyKey": "payload.({'s': sensor})", "idempotencyKeyType": "jsonata"},
            {"payload": TWO},
            "the item 0 must be a non-empty string or a number",
        ),
    ],
)
async def test_a_message_without_a_usable_key_fails_and_stores_nothing(registry, services, props, msg, text):
    async with make_tester(flow(**props), registry, services) as t:
        t.inject("ins", msg)
        await settle(t)
        if text == "3 keys for 3 items":  # an array of three keys for three items: accepted
            assert t.outputs("ok")[0][0]["duplicate"] == [False, False, False]
            return
        (caught,) = t.outputs("caught")[0]
        assert text in caught["error"]["message"] and "nothing stored" in caught["error"]["message"]
        assert rows(services) == []


@pytest.mark.parametrize(
    ("props", "text"),
    [
        (
            {"idempotencyKeyType": "uuid"},
            "idempotencyKeyType: 'uuid' is not one of stream, msg, jsonata, off",
        ),
        ({"idempotencyKeyType": "msg", "idempotencyKey": " "}, "idempotencyKey: name a message property"),
        (
            {"idempotencyKeyType": "jsonata", "idempotencyKey": "payload.("},
            "idempotencyKey: 'payload.(' is not",
        ),
        ({"idempotencyKeyType": "msg", "idempotencyKey": "a..b"}, "idempotencyKey: 'a..b' is not"),
    ],
)
async def test_a_bad_key_setting_refuses_the_deploy(registry, services, props, text):
    with pytest.raises(FlowValidationError, match=text.replace("(", r"\(").replace(".", r"\.")):
        async with make_tester(flow(**props), registry, services):
            pass


def test_the_form_offers_the_key_as_a_typed_input_and_the_help_explains_it():
    from sofiaflow.editor.properties.schema import form_fields
    from sofiaflow.editor.properties.typed_input import NO_VALUE_TYPES, TYPE_LABELS
    from sofiaflow.nodes.ontology.insert import OntologyInsertNode

    fields = {f.key: f for f in form_fields("ontology-insert", OntologyInsertNode.Config.model_json_schema())}
    key = fields["idempotencyKey"]
    assert (key.label, key.widget, key.type_key) == ("Idempotency key", "typed", "idempotencyKeyType")
    assert key.types == ("stream", "msg", "jsonata", "off") and key.type_default == "stream"
    assert "msg._streamId" in key.help
    assert {"stream", "off"} <= NO_VALUE_TYPES and TYPE_LABELS["stream"] == "msg._streamId"
    assert "idempotencyKeyType" not in fields  # set by the typed input's type select
    assert "msg.duplicate" in OntologyInsertNode.help and "Idempotency key" in OntologyInsertNode.help
