"""onesait's own Python client (onesaitplatform-client-services from PyPI) against a real `sofiaflow run` with
the shipped IoT Broker flow: join, insert one and many, NATIVE and SQL queries, updates, deletes, errors in
onesait's shape, and recovery from an expired session by the client's own re-join."""

from __future__ import annotations

import os
import sys
import time

import httpx
import pytest
from onesaitplatform.iotbroker import DigitalClient

sys.path.insert(0, os.path.dirname(__file__))
import onesait_server  # noqa: E402

REST = "/iot-broker/rest"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = onesait_server.start(tmp_path_factory.mktemp("onesait-rest"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    token = server.device("Client4Test", {"BasicSensor": "ALL", "ParkingSpot": "QUERY"})
    dc = DigitalClient(
        host="127.0.0.1", port=server.port, iot_client="Client4Test", iot_client_token=token, protocol="http"
    )
    dc.timeout = 10
    ok, res = dc.join()
    assert ok, res
    yield dc
    dc.leave()


def _sensor(asset, measure):
    return {"BasicSensor": {"assetId": asset, "measure": measure, "measureUnit": "C"}}


def test_the_default_install_deploys_the_iot_broker_flow(server):
    flows = server.admin.get("/flows").json()
    flows = flows.get("flows", flows) if isinstance(flows, dict) else flows
    types = {n["type"] for n in flows}
    assert {"ssap-rest in", "ssap-mqtt in", "ssap process", "ssap response", "ssap-broker"} <= types


def test_insert_query_update_delete_with_the_onesait_client(server, client):
    ok, one = client.insert("BasicSensor", _sensor("a1", 3.5))
    assert ok and isinstance(one["id"], str)
    ok, many = client.insert("BasicSensor", [_sensor("a2", 4), _sensor("a3", 5), _sensor("a4", 21.5)])
    assert ok and many["nInserted"] == 3 and len(many["ids"]) == 3

    ok, rows = client.query(
        "BasicSensor",
        "db.BasicSensor.find({'BasicSensor.measure': {$gt: 3.6}}).sort({'BasicSensor.measure': -1})",
        "NATIVE",
    )
    assert ok and [r["BasicSensor"]["assetId"] for r in rows] == ["a4", "a3", "a2"]
    context = rows[0]["contextData"]
    assert context["deviceTemplate"] == "Client4Test" and context["source"] == "http"
    assert context["clientSession"] == client.session_key and isinstance(context["timestampMillis"], int)
    assert rows[0]["_id"] == {"$oid": many["ids"][2]}

    ok, rows = client.query(
        "BasicSensor",
        "select BasicSensor.assetId as asset from BasicSensor where "
        "BasicSensor.measure > 3.6 and BasicSensor.measure < 21 order by BasicSensor.assetId desc",
        "SQL",
    )
    assert ok and rows == [{"asset": "a3"}, {"asset": "a2"}]
    ok, rows = client.query(
        "BasicSensor", "select count(*) as n, max(BasicSensor.measure) as top from BasicSensor", "SQL"
    )
    assert ok and rows == [{"n": 4, "top": 21.5}]
    ok, rows = client.query_batch(
        "BasicSensor", "select * from BasicSensor order by BasicSensor.assetId", "SQL", batch_size=3
    )
    assert ok and [r["BasicSensor"]["assetId"] for r in rows] == ["a1", "a2", "a3", "a4"]
    ok, rows = client.query_batch(
        "BasicSensor", "db.BasicSensor.find({}).sort({'BasicSensor.assetId': 1})", "NATIVE", batch_size=3
    )
    assert ok and len(rows) == 4

    ok, changed = client.update(
        "BasicSensor", data={"$set": {"BasicSensor.measure": 9}}, where={"BasicSensor.assetId": "a1"}
    )
    assert ok and changed == {"nModified": 1, "ids": [one["id"]]}
    ok, changed = client.update(
        "BasicSensor",
        query="db.BasicSensor.update({'BasicSensor.assetId': 'a2'}, {$inc: {'BasicSensor.measure': 1}})",
    )
    assert ok and changed["nModified"] == 1
    ok, rows = client.query(
        "BasicSensor",
        "db.BasicSensor.find({'BasicSensor.assetId': {$in: ['a1', 'a2']}}).sort({'BasicSensor.assetId': 1})",
        "NATIVE",
    )
    assert [r["BasicSensor"]["measure"] for r in rows] == [9, 5]

    ok, gone = client.delete("BasicSensor", one["id"])
    assert ok and gone == {"nDeleted": 1, "id": one["id"]}
    ok, count = client.query("BasicSensor", "db.BasicSensor.count({})", "NATIVE")
    assert ok and count == [{"count": 3}]


def test_rest_routes_the_client_library_does_not_wrap(server, client):
    headers = {"Authorization": client.session_key}
    ok, made = client.insert("BasicSensor", [_sensor("r1", 1), _sensor("r2", 2)])
    assert ok
    url = f"{server.base}{REST}/ontology/BasicSensor"
    posted = httpx.post(
        f"{url}/query",
        headers=headers,
        json={
            "query": "select BasicSensor.measure as m from BasicSensor where BasicSensor.assetId like 'r%' "
            "order by BasicSensor.measure",
            "queryType": "SQL",
        },
    )
    assert posted.status_code == 200 and posted.json() == [{"m": 1}, {"m": 2}]
    replaced = httpx.put(f"{url}/{made['ids'][0]}", headers=headers, json=_sensor("r1", 7))
    assert replaced.status_code == 200, replaced.text
    bad = httpx.put(f"{url}/{made['ids'][0]}", headers=headers, json={"BasicSensor": {"assetId": "r1"}})
    assert (
        bad.status_code == 400 and bad.json()["errorCode"] == "PROCESSOR" and "measure" in bad.json()["error"]
    )
    updated = httpx.get(
        f"{url}/update",
        headers=headers,
        params={
            "query": "db.BasicSensor.update({'BasicSensor.assetId': 'r2'}, {$set: {'BasicSensor.measure': 8}})"
        },
    )
    assert updated.status_code == 200 and updated.json()["nModified"] == 1
    got = httpx.get(
        url,
        headers=headers,
        params={
            "query": "db.BasicSensor.find({'BasicSensor.assetId': /^r/}).sort({'BasicSensor.assetId': 1})",
            "queryType": "NATIVE",
        },
    ).json()
    assert [d["BasicSensor"]["measure"] for d in got] == [7, 8]
    deleted = httpx.get(
        f"{url}/delete",
        headers=headers,
        params={
            "query": "db.BasicSensor.remove({'BasicSensor.assetId': {$in: ['r1', 'r2']}})",
            "ids": "true",
        },
    )
    assert deleted.status_code == 200 and sorted(deleted.json()["ids"]) == sorted(made["ids"])


def test_errors_have_onesait_shape(server, client):
    headers = {"Authorization": client.session_key}
    refused = httpx.get(
        f"{server.base}{REST}/client/join", params={"token": "nope.nope", "clientPlatform": "Client4Test"}
    )
    assert refused.status_code == 401
    assert refused.json()["ok"] is False and refused.json()["errorCode"] == "AUTENTICATION"
    no_right = httpx.post(f"{server.base}{REST}/ontology/ParkingSpot", headers=headers, json={})
    assert no_right.status_code == 403 and no_right.json()["errorCode"] == "AUTHORIZATION"
    assert "INSERT" in no_right.json()["error"]
    audit = server.admin.get("/audit", params={"outcome": "denied", "user": "device:Client4Test"}).json()
    assert any(e["action"] == "ssap.insert" and e["target"] == "ParkingSpot" for e in audit)
    unsupported = httpx.get(
        f"{server.base}{REST}/ontology/BasicSensor",
        headers=headers,
        params={"query": "db.BasicSensor.aggregate([])", "queryType": "NATIVE"},
    )
    assert unsupported.status_code == 400 and unsupported.json()["errorCode"] == "PROCESSOR"
    assert "aggregate" in unsupported.json()["error"]
    sql = httpx.get(
        f"{server.base}{REST}/ontology/BasicSensor",
        headers=headers,
        params={"query": "select * from BasicSensor where BasicSensor.x is null", "queryType": "SQL"},
    )
    assert sql.status_code == 400 and "IS NULL" in sql.json()["error"]
    invalid = httpx.post(
        f"{server.base}{REST}/ontology/BasicSensor",
        headers=headers,
        json={"BasicSensor": {"assetId": "x", "measure": "hot"}},
    )
    assert invalid.status_code == 400 and "measure" in invalid.json()["error"]


def test_instances_seen_are_recorded(server, client):
    seen = server.admin.get("/devices/Client4Test/instances").json()
    assert [i["instance"] for i in seen] == ["Client4Test:PythonClient"]
    assert server.admin.get("/devices/Client4Test").json()["owner"] == "admin"  # whoever created it


def test_onesait_dates_are_stored_and_returned(server, client):
    stamp = {"$date": "2026-01-01T00:00:00Z"}
    ok, made = client.insert(
        "BasicSensor", {"BasicSensor": {"assetId": "d1", "measure": 1, "timestamp": stamp}}
    )
    assert ok, made
    ok, rows = client.query("BasicSensor", "db.BasicSensor.find({'BasicSensor.assetId': 'd1'})", "NATIVE")
    assert ok and rows[0]["BasicSensor"]["timestamp"] == stamp


def test_an_expired_session_is_refused_and_the_client_rejoins(server, client):
    flows = server.admin.get("/flows", headers={"Node-RED-API-Version": "v2"}).json()
    nodes = flows["flows"]
    for node in nodes:
        if node["type"] == "ssap-broker":
            node["sessionTimeout"] = "1"
    assert server.admin.post("/flows", json=nodes).status_code in (200, 204)
    ok, _ = client.join()  # the redeployed broker starts with no sessions
    assert ok
    old_key = client.session_key
    # the platform runs in its own process on the real clock (expiry on a virtual one: test_onesait_sessions.py)
    time.sleep(1.5)
    expired = httpx.get(
        f"{server.base}{REST}/ontology/BasicSensor",
        headers={"Authorization": old_key},
        params={"query": "db.BasicSensor.count({})", "queryType": "NATIVE"},
    )
    assert expired.status_code == 401
    body = expired.json()
    assert body["ok"] is False and body["errorCode"] == "AUTENTICATION" and "expired" in body["error"]
    # the client library sees the 401, joins again by itself and retries
    ok, count = client.query("BasicSensor", "db.BasicSensor.count({})", "NATIVE")
    assert ok and isinstance(count[0]["count"], int)
    assert client.session_key != old_key
    ok, made = client.insert("BasicSensor", _sensor("after-expiry", 1))
    assert ok and made["id"]
