"""The SSAP processor on real parts: the device registry and ontologies in a SQLite config DB, the real-time
DB on SQLite, the change hub; sessions on a settable clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.data.events import OntologyEvents
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.data.ontology_data import OntologyData
from sofiaflow.runtime.data.rtdb import open_store
from sofiaflow.runtime.onesait import ssap
from sofiaflow.runtime.onesait.processor import SsapProcessor
from sofiaflow.runtime.onesait.sessions import SessionStore
from sofiaflow.runtime.security.devices import DeviceRegistry
from sofiaflow.runtime.security.permissions import Permissions

BASIC = json.loads((Path(__file__).resolve().parents[1] / "ontologies" / "BasicSensor.json").read_text())


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def parts(tmp_path):
    db = connect(f"sqlite:///{tmp_path}/config.db")
    store = open_store(f"sqlite:///{tmp_path}/rt.db")
    ontologies = OntologyRegistry(db)
    ontologies.on_change(lambda name, o: store.ensure_collection(name) if o is not None else None)
    ontologies.create("BasicSensor", BASIC["schema"])
    ontologies.create("Other", {"type": "object"})
    store.ensure_collection("BasicSensor")
    store.ensure_collection("Other")
    devices = DeviceRegistry(db)
    events = OntologyEvents()
    clock = Clock()
    permissions = Permissions(db, lambda user: "developer", lambda name: ontologies.get(name).owner)
    processor = SsapProcessor(
        devices,
        OntologyData(ontologies, store, events),
        SessionStore(60, clock),
        events,
        permissions=permissions,
    )
    yield processor, devices, clock
    processor.close()
    store.close()
    db.dispose()


def _join(processor, client, token, instance="i1", key=None):
    return processor.handle(
        ssap.request(
            "JOIN", {"token": token, "clientPlatform": client, "clientPlatformInstance": instance}, key
        )
    )


async def test_join_renew_leave(parts):
    processor, devices, clock = parts
    _device, token = devices.create("c1", {"BasicSensor": "ALL"})
    first = await _join(processor, "c1", token)
    key = first["body"]["data"]["sessionKey"]
    assert first["direction"] == "RESPONSE" and first["sessionKey"] == key
    renewed = await _join(processor, "c1", token, key=key)
    assert renewed["body"]["data"]["sessionKey"] == key
    other, other_token = devices.create("c2", {})
    assert (await _join(processor, "c2", other_token, key=key))["body"]["data"]["sessionKey"] != key
    left = await processor.handle(ssap.request("LEAVE", {}, key))
    assert left["body"]["ok"]
    again = await processor.handle(
        ssap.request("QUERY", {"ontology": "BasicSensor", "query": "db.BasicSensor.find({})"}, key)
    )
    assert again["body"]["errorCode"] == "AUTENTICATION"
    assert [i["instance"] for i in devices.instances("c1")] == ["i1"]


async def test_join_refusals(parts):
    processor, devices, _clock = parts
    _device, token = devices.create("c1", {})
    devices.create("c2", {})
    for client, tok in (("c2", token), ("c1", "x.y"), ("c1", "no-dot"), ("c1", None)):
        answer = await _join(processor, client, tok)
        assert answer["direction"] == "ERROR" and answer["body"]["errorCode"] == "AUTENTICATION", (
            client,
            tok,
        )
    token_id = token.split(".")[0]
    key = (await _join(processor, "c1", token))["body"]["data"]["sessionKey"]
    devices.revoke("c1", token_id)  # revoking drops the sessions using the token
    assert (await processor.handle(ssap.request("LEAVE", {}, key)))["body"]["errorCode"] == "AUTENTICATION"
    assert (await _join(processor, "c1", token))["body"]["errorCode"] == "AUTENTICATION"


async def test_sessions_expire_after_idle_time_and_each_use_resets_it(parts):
    processor, devices, clock = parts
    _device, token = devices.create("c1", {"BasicSensor": "QUERY"})
    key = (await _join(processor, "c1", token))["body"]["data"]["sessionKey"]
    query = ssap.request("QUERY", {"ontology": "BasicSensor", "query": "db.BasicSensor.count({})"}, key)
    for _ in range(3):
        clock.t += 50
        assert (await processor.handle(query))["body"]["ok"]
    clock.t += 61
    expired = await processor.handle(query)
    assert expired["direction"] == "ERROR"
    assert expired["body"]["errorCode"] == "AUTENTICATION" and "expired" in expired["body"]["error"]
    assert (await processor.handle(query))["body"]["error"].startswith("unknown session key")


async def test_rights_per_ontology(parts):
    processor, devices, _clock = parts
    _device, token = devices.create("c1", {"BasicSensor": "QUERY", "Other": "INSERT"})
    key = (await _join(processor, "c1", token))["body"]["data"]["sessionKey"]
    insert = await processor.handle(ssap.request("INSERT", {"ontology": "BasicSensor", "data": {}}, key))
    assert insert["body"]["errorCode"] == "AUTHORIZATION" and "INSERT" in insert["body"]["error"]
    ok = await processor.handle(ssap.request("INSERT", {"ontology": "Other", "data": {"a": 1}}, key))
    assert ok["body"]["ok"]
    queried = await processor.handle(
        ssap.request("QUERY", {"ontology": "Other", "query": "db.Other.find({})"}, key)
    )
    assert queried["body"]["errorCode"] == "AUTHORIZATION"  # INSERT writes only, as user rights
    read = await processor.handle(
        ssap.request("QUERY", {"ontology": "BasicSensor", "query": "db.BasicSensor.find({})"}, key)
    )
    assert read["body"]["ok"] and read["body"]["data"] == []
    unknown = await processor.handle(
        ssap.request("QUERY", {"ontology": "Nope", "query": "db.Nope.find({})"}, key)
    )
    assert unknown["body"]["errorCode"] == "AUTHORIZATION"


async def test_processor_errors_name_the_problem(parts):
    processor, devices, _clock = parts
    _device, token = devices.create("c1", {"BasicSensor": "ALL"})
    key = (await _join(processor, "c1", token))["body"]["data"]["sessionKey"]

    async def ask(kind, body):
        return (await processor.handle(ssap.request(kind, body, key)))["body"]

    bad = await ask("INSERT", {"ontology": "BasicSensor", "data": [{"BasicSensor": {"assetId": "a"}}]})
    assert bad["errorCode"] == "PROCESSOR" and "measure" in bad["error"]
    assert (
        "TABLE"
        in (
            await ask(
                "QUERY",
                {"ontology": "BasicSensor", "query": "db.BasicSensor.find({})", "resultFormat": "TABLE"},
            )
        )["error"]
    )
    assert "not supported" in (await ask("START_TRANSACTION", {}))["error"]
    assert "needs an ontology" in (await ask("QUERY", {"query": "db.X.find({})"}))["error"]
    assert (
        "UPDATE needs"
        in (await ask("UPDATE", {"ontology": "BasicSensor", "query": "db.BasicSensor.find({})"}))["error"]
    )
    missing = await ask("DELETE_BY_ID", {"ontology": "BasicSensor", "id": "nope"})
    assert missing["errorCode"] == "PROCESSOR" and "nope" in missing["error"]
    shape = await processor.handle({"messageType": "NOPE"})
    assert shape["direction"] == "ERROR" and "messageType" in shape["body"]["error"]
    assert (await processor.handle("junk"))["body"]["errorCode"] == "PROCESSOR"


async def test_update_by_id_replaces_and_subscriptions_indicate(parts):
    processor, devices, _clock = parts
    _device, token = devices.create("c1", {"BasicSensor": "ALL"})
    key = (await _join(processor, "c1", token))["body"]["data"]["sessionKey"]
    seen = []
    sub = await processor.handle(
        ssap.request(
            "SUBSCRIBE", {"ontology": "BasicSensor", "queryValue": {"BasicSensor.measure": {"$gt": 5}}}, key
        ),
        sink=lambda session, subscription, env: seen.append(env),
    )
    sub_id = sub["body"]["data"]["subscriptionId"]
    made = await processor.handle(
        ssap.request(
            "INSERT",
            {
                "ontology": "BasicSensor",
                "data": [
                    {"BasicSensor": {"assetId": "a", "measure": 1, "extra": True}},
                    {"BasicSensor": {"assetId": "b", "measure": 9}},
                ],
            },
            key,
        )
    )
    first = made["body"]["data"]["ids"][0]
    assert [e["body"]["data"][0]["BasicSensor"]["assetId"] for e in seen] == ["b"]
    assert seen[0]["messageType"] == "INDICATION" and seen[0]["body"]["subscriptionId"] == sub_id
    replaced = await processor.handle(
        ssap.request(
            "UPDATE_BY_ID",
            {"ontology": "BasicSensor", "id": first, "data": {"BasicSensor": {"assetId": "a", "measure": 2}}},
            key,
        )
    )
    assert replaced["body"]["data"] == {"nModified": 1, "id": first}
    rows = await processor.handle(
        ssap.request(
            "QUERY",
            {
                "ontology": "BasicSensor",
                "queryType": "SQL",
                "query": "select * from BasicSensor where BasicSensor.assetId = 'a'",
            },
            key,
        )
    )
    row = rows["body"]["data"][0]
    assert (
        row["BasicSensor"] == {"assetId": "a", "measure": 2} and row["contextData"]["deviceTemplate"] == "c1"
    )
    assert (await processor.handle(ssap.request("UNSUBSCRIBE", {"subscriptionId": sub_id}, key)))["body"][
        "ok"
    ]
    await processor.handle(
        ssap.request(
            "INSERT",
            {"ontology": "BasicSensor", "data": {"BasicSensor": {"assetId": "c", "measure": 7}}},
            key,
        )
    )
    assert len(seen) == 1


async def test_the_owner_of_a_client_needs_the_right_too(parts):
    processor, devices, _clock = parts
    _device, token = devices.create("c1", {"BasicSensor": "ALL"}, owner="bob")
    key = (await _join(processor, "c1", token))["body"]["data"]["sessionKey"]
    query = ssap.request("QUERY", {"ontology": "BasicSensor", "query": "db.BasicSensor.find({})"}, key)
    insert = ssap.request(
        "INSERT", {"ontology": "BasicSensor", "data": {"BasicSensor": {"assetId": "a", "measure": 1}}}, key
    )
    refused = await processor.handle(query)
    assert refused["body"]["errorCode"] == "AUTHORIZATION" and "'bob'" in refused["body"]["error"]
    processor.permissions.grant("BasicSensor", "bob", "QUERY")
    assert (await processor.handle(query))["body"]["ok"]
    assert (await processor.handle(insert))["body"]["errorCode"] == "AUTHORIZATION"
    processor.permissions.grant("BasicSensor", "bob", "ALL")
    assert (await processor.handle(insert))["body"]["ok"]
    devices.update("c1", owner=None)  # the change drops the client's sessions
    assert (await processor.handle(query))["body"]["errorCode"] == "AUTENTICATION"
    assert devices.get("c1").owner is None
