"""SSAP over MQTT keeps each client's INDICATIONs and answers to itself, against a real `sofiaflow run` with the
shipped IoT Broker flow (its ssap-mqtt in on onesait's default, shared indication topic `/topic/subscription`).

Every anonymous client may subscribe to `/topic/subscription` (onesait's clients do): an INDICATION goes only to
the MQTT session that made the SUBSCRIBE, and an answer only to the session that sent the request, whatever
client id or instance name the request's body claims.
"""

from __future__ import annotations

import os
import queue
import sys
import uuid

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import onesait_server  # noqa: E402
from test_ssap_mqtt_e2e import SsapClient  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = onesait_server.start(tmp_path_factory.mktemp("ssap-private"))
    yield srv
    srv.stop()


@pytest.fixture
def token(server):
    name = "priv-" + uuid.uuid4().hex[:8]
    return name, server.device(name, {"BasicSensor": "ALL"})


def _join(client: SsapClient, name: str, secret: str, instance: str) -> dict:
    answer = client.send(
        "JOIN",
        {
            "@type": "SSAPBodyJoinMessage",
            "token": secret,
            "clientPlatform": name,
            "clientPlatformInstance": instance,
            "sessionKeyMandatory": False,
            "ontologyMandatory": False,
        },
    )
    client.session_key = answer["body"]["data"]["sessionKey"] if answer["body"]["ok"] else None
    return answer


@pytest.mark.parametrize("request_topic", ["/queue/message", None])
def test_an_indication_reaches_only_the_client_that_subscribed(server, token, request_topic):
    """The watcher's JOIN names an instance that is the snoop's MQTT client id, and its SUBSCRIBE names the
    snoop as clientId: the snoop, subscribed to /topic/subscription and to its own answer topic, gets nothing."""
    name, secret = token
    snoop = SsapClient(server.mqtt_port, "snoop-" + uuid.uuid4().hex[:6])
    watcher = SsapClient(server.mqtt_port, "watch-" + uuid.uuid4().hex[:6], request_topic=request_topic)
    try:
        assert _join(watcher, name, secret, snoop.instance)["body"]["ok"]
        asset = uuid.uuid4().hex[:8]
        sub = watcher.send(
            "SUBSCRIBE",
            {
                "@type": "SSAPBodySubscribeMessage",
                "ontology": "BasicSensor",
                "clientId": snoop.instance,
                "queryValue": {"BasicSensor.assetId": asset},
            },
        )
        assert sub["body"]["ok"], sub
        inserted = watcher.send(
            "INSERT", {"ontology": "BasicSensor", "data": {"BasicSensor": {"assetId": asset, "measure": 3}}}
        )
        assert inserted["body"]["ok"], inserted
        indication = watcher.indications.get(timeout=10)
        assert indication["body"]["subscriptionId"] == sub["body"]["data"]["subscriptionId"]
        assert [d["BasicSensor"]["assetId"] for d in indication["body"]["data"]] == [asset]
        with pytest.raises(queue.Empty):
            snoop.indications.get(timeout=0.5)
        assert snoop.inbox.empty()  # no answer of the watcher's (its session key) went to the snoop either
        assert watcher.send("UNSUBSCRIBE", {"subscriptionId": sub["body"]["data"]["subscriptionId"]})["body"][
            "ok"
        ]
    finally:
        watcher.close()
        snoop.close()
