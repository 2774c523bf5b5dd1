"""SSAP over MQTT against a real `sofiaflow run` with the shipped IoT Broker flow.

onesait's Python MQTT client (onesaitplatform.mqttclient) builds `paho.mqtt.client.Client(instance)`, which
paho-mqtt 2 refuses; these tests speak its exact messages with paho-mqtt 2 (same topics, same JSON), and
`test_ssap_mqtt_onesait_client.py` runs the onesait client itself under paho-mqtt 1.6.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import uuid

import paho.mqtt.client as mqtt
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import onesait_server  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = onesait_server.start(tmp_path_factory.mktemp("onesait-mqtt"))
    yield srv
    srv.stop()


class SsapClient:
    """An anonymous MQTT client speaking SSAP as onesait's clients do."""

    def __init__(self, port: int, instance: str, request_topic: str | None = None) -> None:
        self.instance = instance
        self.request_topic = request_topic or f"/topic/message/{instance}"
        self.inbox: queue.Queue = queue.Queue()
        self.indications: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.session_key = None
        connected: queue.Queue = queue.Queue()
        self.mqtt = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=instance)
        self.mqtt.on_connect = lambda c, u, f, rc, p: connected.put(rc)
        self.mqtt.on_message = self._on_message
        self.mqtt.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put([x.is_failure for x in codes])
        self.mqtt.connect("127.0.0.1", port, keepalive=30)
        self.mqtt.loop_start()
        rc = connected.get(timeout=10)
        assert not rc.is_failure, rc
        self.subscribe(f"/topic/message/{instance}")
        self.subscribe("/topic/subscription")

    def subscribe(self, topic: str) -> bool:
        self.mqtt.subscribe(topic, qos=0)
        return not any(self.subacks.get(timeout=10))

    def _on_message(self, client, userdata, message) -> None:
        data = json.loads(message.payload)
        if message.topic.startswith("/topic/subscription"):
            self.indications.put(data)
        elif data.get("direction") != "REQUEST":
            self.inbox.put(data)

    def send(self, kind: str, body: dict) -> dict:
        msg_id = uuid.uuid4().hex
        self.mqtt.publish(
            self.request_topic,
            json.dumps(
                {
                    "sessionKey": self.session_key,
                    "messageId": msg_id,
                    "direction": "REQUEST",
                    "messageType": kind,
                    "body": body,
                }
            ),
        )
        while True:
            answer = self.inbox.get(timeout=10)
            if answer["messageId"] == msg_id:
                return answer

    def join(self, client: str, token: str) -> dict:
        answer = self.send(
            "JOIN",
            {
                "@type": "SSAPBodyJoinMessage",
                "token": token,
                "clientPlatform": client,
                "clientPlatformInstance": self.instance,
                "sessionKeyMandatory": False,
                "ontologyMandatory": False,
            },
        )
        if answer["body"]["ok"]:
            self.session_key = answer["body"]["data"]["sessionKey"]
        return answer

    def close(self) -> None:
        self.mqtt.loop_stop()
        self.mqtt.disconnect()


@pytest.fixture
def token(server):
    name = "mqtt-" + uuid.uuid4().hex[:8]
    return name, server.device(name, {"BasicSensor": "ALL"})


def test_join_insert_query_update_delete_over_mqtt(server, token):
    name, secret = token
    client = SsapClient(server.mqtt_port, "inst-" + uuid.uuid4().hex[:6])
    try:
        joined = client.join(name, secret)
        assert (
            joined["direction"] == "RESPONSE"
            and joined["body"]["ok"]
            and joined["sessionKey"] == client.session_key
        )
        asset = uuid.uuid4().hex[:8]
        inserted = client.send(
            "INSERT",
            {
                "@type": "SSAPBodyInsertMessage",
                "ontology": "BasicSensor",
                "data": {"BasicSensor": {"assetId": asset, "measure": 1.5}},
            },
        )
        assert inserted["body"]["ok"], inserted
        new_id = inserted["body"]["data"]["id"]
        batch = client.send(
            "INSERT",
            {
                "ontology": "BasicSensor",
                "data": [
                    {"BasicSensor": {"assetId": asset, "measure": 2}},
                    {"BasicSensor": {"assetId": asset, "measure": 3}},
                ],
            },
        )
        assert batch["body"]["data"]["nInserted"] == 2
        native = client.send(
            "QUERY",
            {
                "@type": "SSAPBodyQueryMessage",
                "ontology": "BasicSensor",
                "query": f"db.BasicSensor.find({{'BasicSensor.assetId': '{asset}'}})"
                ".sort({'BasicSensor.measure': -1})",
                "queryType": "NATIVE",
                "resultFormat": None,
            },
        )
        rows = native["body"]["data"]
        assert [r["BasicSensor"]["measure"] for r in rows] == [3, 2, 1.5]
        assert rows[0]["contextData"]["source"] == "mqtt" and rows[0]["contextData"]["deviceTemplate"] == name
        assert rows[0]["contextData"]["device"] == client.instance
        sql = client.send(
            "QUERY",
            {
                "ontology": "BasicSensor",
                "queryType": "SQL",
                "query": f"select avg(BasicSensor.measure) as mean from BasicSensor "
                f"where BasicSensor.assetId = '{asset}'",
            },
        )
        assert sql["body"]["data"] == [{"mean": pytest.approx(6.5 / 3)}]
        updated = client.send(
            "UPDATE_BY_ID",
            {
                "ontology": "BasicSensor",
                "id": new_id,
                "data": {"BasicSensor": {"assetId": asset, "measure": 10}},
            },
        )
        assert updated["body"]["ok"], updated
        removed = client.send(
            "DELETE",
            {
                "ontology": "BasicSensor",
                "query": f"db.BasicSensor.remove({{'BasicSensor.assetId': '{asset}', "
                "'BasicSensor.measure': {$lt: 5}})",
            },
        )
        assert removed["body"]["data"]["nDeleted"] == 2
        left = client.send(
            "QUERY",
            {
                "ontology": "BasicSensor",
                "queryType": "NATIVE",
                "query": f"db.BasicSensor.find({{'BasicSensor.assetId': '{asset}'}})",
            },
        )
        assert [r["_id"]["$oid"] for r in left["body"]["data"]] == [new_id]
        by_id = client.send("DELETE_BY_ID", {"ontology": "BasicSensor", "id": new_id})
        assert by_id["body"]["data"]["nDeleted"] == 1
        assert client.send("LEAVE", {})["body"]["ok"]
        after = client.send("QUERY", {"ontology": "BasicSensor", "query": "db.BasicSensor.find({})"})
        assert after["direction"] == "ERROR" and after["body"]["errorCode"] == "AUTENTICATION"
    finally:
        client.close()


def test_requests_on_queue_message_and_subscription_indications(server, token):
    name, secret = token
    device = SsapClient(server.mqtt_port, "dev-" + uuid.uuid4().hex[:6], request_topic="/queue/message")
    watcher = SsapClient(server.mqtt_port, "watch-" + uuid.uuid4().hex[:6])
    try:
        assert device.join(name, secret)["body"]["ok"]
        assert watcher.join(name, secret)["body"]["ok"]
        asset = uuid.uuid4().hex[:8]
        sub = watcher.send(
            "SUBSCRIBE",
            {
                "@type": "SSAPBodySubscribeMessage",
                "ontology": "BasicSensor",
                "queryValue": f"db.BasicSensor.find({{'BasicSensor.assetId': '{asset}'}})",
            },
        )
        assert sub["body"]["ok"], sub
        sub_id = sub["body"]["data"]["subscriptionId"]
        device.send(
            "INSERT", {"ontology": "BasicSensor", "data": {"BasicSensor": {"assetId": "other", "measure": 1}}}
        )
        device.send(
            "INSERT", {"ontology": "BasicSensor", "data": {"BasicSensor": {"assetId": asset, "measure": 2}}}
        )
        indication = watcher.indications.get(timeout=10)
        assert indication["messageType"] == "INDICATION"
        assert indication["body"]["subscriptionId"] == sub_id
        assert [d["BasicSensor"]["assetId"] for d in indication["body"]["data"]] == [asset]
        assert watcher.send("UNSUBSCRIBE", {"subscriptionId": sub_id})["body"]["ok"]
    finally:
        device.close()
        watcher.close()


def test_errors_and_anonymous_limits(server, token):
    name, secret = token
    client = SsapClient(server.mqtt_port, "err-" + uuid.uuid4().hex[:6])
    try:
        early = client.send("INSERT", {"ontology": "BasicSensor", "data": {}})
        assert early["direction"] == "ERROR" and early["body"] == {
            "@type": "SSAPBodyReturnMessage",
            "ok": False,
            "errorCode": "AUTENTICATION",
            "data": None,
            "error": early["body"]["error"],
        }
        assert client.join(name, "wrong.token")["body"]["errorCode"] == "AUTENTICATION"
        assert client.join(name, secret)["body"]["ok"]
        denied = client.send("QUERY", {"ontology": "ParkingSpot", "query": "db.ParkingSpot.find({})"})
        assert denied["body"]["errorCode"] == "AUTHORIZATION"
        audit = server.admin.get("/audit", params={"outcome": "denied", "user": f"device:{name}"}).json()
        assert any(e["action"] == "ssap.query" and e["target"] == "ParkingSpot" for e in audit)
        # an anonymous SSAP client reaches the SSAP topics only
        assert not client.subscribe("#")
        assert not client.subscribe("/topic/message/someone-else")
    finally:
        client.close()


def test_indications_on_a_private_topic_per_client(server, token):
    """The flow's ssap-mqtt in set to indicationTopic /topic/subscription/{clientId} (redeployed over the admin
    API): each subscriber gets its own INDICATIONs and cannot listen to another client's."""
    flows = server.admin.get("/flows", headers={"Node-RED-API-Version": "v2"}).json()["flows"]
    for node in flows:
        if node["type"] == "ssap-mqtt in":
            node["indicationTopic"] = "/topic/subscription/{clientId}"
    assert server.admin.post("/flows", json=flows).status_code in (200, 204)
    name, secret = token
    watcher = SsapClient(server.mqtt_port, "pw-" + uuid.uuid4().hex[:6])
    snoop = SsapClient(server.mqtt_port, "snoop-" + uuid.uuid4().hex[:6])
    try:
        assert watcher.subscribe(f"/topic/subscription/{watcher.instance}")
        assert not snoop.subscribe(f"/topic/subscription/{watcher.instance}")
        assert not snoop.subscribe("/topic/subscription")
        assert watcher.join(name, secret)["body"]["ok"]
        asset = uuid.uuid4().hex[:8]
        sub = watcher.send(
            "SUBSCRIBE", {"ontology": "BasicSensor", "queryValue": {"BasicSensor.assetId": asset}}
        )
        assert sub["body"]["ok"], sub
        assert watcher.send(
            "INSERT", {"ontology": "BasicSensor", "data": {"BasicSensor": {"assetId": asset, "measure": 1}}}
        )["body"]["ok"]
        indication = watcher.indications.get(timeout=10)
        assert indication["body"]["subscriptionId"] == sub["body"]["data"]["subscriptionId"]
        assert snoop.indications.empty()
    finally:
        watcher.close()
        snoop.close()
