"""The ssap node family in a flow (FlowTester): the REST gateway served in-process through the real "http"
service app, the processor on real registries and a SQLite real-time DB, virtual time for session expiry,
and deploys refused for bad configuration."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.data.events import OntologyEvents
from sofiaflow.runtime.data.ontologies import OntologyRegistry
from sofiaflow.runtime.data.ontology_data import OntologyData
from sofiaflow.runtime.data.rtdb import open_store
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.http.node_routes import NodeRoutes
from sofiaflow.runtime.security.devices import DeviceRegistry
from sofiaflow.runtime.testing import FlowTester

REPO = Path(__file__).resolve().parents[1]
SHIPPED = json.loads((REPO / "flows" / "iot-broker.json").read_text())
BASIC = json.loads((REPO / "ontologies" / "BasicSensor.json").read_text())


@pytest.fixture
def services(tmp_path):
    db = connect(f"sqlite:///{tmp_path}/config.db")
    store = open_store(f"sqlite:///{tmp_path}/rt.db")
    ontologies = OntologyRegistry(db)
    ontologies.create("BasicSensor", BASIC["schema"])
    store.ensure_collection("BasicSensor")
    events = OntologyEvents()
    devices = DeviceRegistry(db)
    out = {
        "http": NodeRoutes(),
        "devices": devices,
        "ontology-events": events,
        "ontology-data": OntologyData(ontologies, store, events),
    }
    yield out
    store.close()
    db.dispose()


def _tester(flow, services, registry, **kwargs):
    tester = FlowTester(flow, registry, **kwargs)
    tester.engine.services.update(services)
    return tester


def _rest_only(flow, timeout="1800"):
    """The shipped flow without its MQTT gateway (no embedded broker in these tests)."""
    return [
        dict(n, sessionTimeout=timeout) if n["type"] == "ssap-broker" else dict(n)
        for n in flow
        if n["type"] != "ssap-mqtt in"
    ]


async def test_shipped_flow_serves_rest_and_expires_idle_sessions(services, registry):
    _device, token = services["devices"].create("c1", {"BasicSensor": "ALL"})
    async with _tester(_rest_only(SHIPPED, "30"), services, registry, virtual_time=True) as t:
        transport = httpx.ASGITransport(app=services["http"])
        async with httpx.AsyncClient(transport=transport, base_url="http://test/iot-broker/rest") as http:
            joined = await http.get(
                "/client/join", params={"token": token, "clientPlatform": "c1", "clientPlatformId": "dev-1"}
            )
            assert joined.status_code == 200
            key = joined.json()["sessionKey"]
            posted = await http.post(
                "/ontology/BasicSensor",
                headers={"Authorization": key},
                json={"BasicSensor": {"assetId": "a", "measure": 1}},
            )
            assert posted.status_code == 200 and set(posted.json()) == {"id"}
            answers = t.payloads("ssapProcess")
            assert [a["messageType"] for a in answers] == ["JOIN", "INSERT"]
            assert all(a["direction"] == "RESPONSE" for a in answers)
            await t.advance(20)
            counted = await http.get(
                "/ontology/BasicSensor",
                headers={"Authorization": key},
                params={"query": "db.BasicSensor.count({})"},
            )
            assert counted.json() == [{"count": 1}]
            await t.advance(31)
            expired = await http.get(
                "/ontology/BasicSensor",
                headers={"Authorization": key},
                params={"query": "db.BasicSensor.count({})"},
            )
            assert expired.status_code == 401 and expired.json()["errorCode"] == "AUTENTICATION"
            garbage = await http.post(
                "/ontology/BasicSensor", headers={"Authorization": key}, content=b"{nope"
            )
            assert garbage.status_code == 401  # the session is checked first
            rejoined = await http.get("/client/join", params={"token": token, "clientPlatform": "c1"})
            key = rejoined.json()["sessionKey"]
            garbage = await http.post(
                "/ontology/BasicSensor", headers={"Authorization": key}, content=b"{nope"
            )
            assert garbage.status_code == 400 and "INSERT needs data" in garbage.json()["error"]
    assert services["http"].routes() == []  # the gateway's routes are gone with the flow


async def test_nodes_between_gateway_and_processor_change_how_the_broker_works(services, registry):
    """A user inserts a switch that lets only JOIN and QUERY through: inserts never reach the processor."""
    _device, token = services["devices"].create("c1", {"BasicSensor": "ALL"})
    flow = _rest_only(SHIPPED)
    for node in flow:
        if node["id"] == "ssapRestIn":
            node["wires"] = [["onlyReads"]]
    flow.append(
        {
            "id": "onlyReads",
            "type": "switch",
            "z": "iotBrokerTab",
            "property": "payload.messageType",
            "propertyType": "msg",
            "rules": [{"t": "eq", "v": "JOIN", "vt": "str"}, {"t": "eq", "v": "QUERY", "vt": "str"}],
            "checkall": "false",
            "outputs": 2,
            "wires": [["ssapProcess"], ["ssapProcess"]],
        }
    )
    async with _tester(flow, services, registry) as t:
        services["http"].response_timeout = 0.5
        transport = httpx.ASGITransport(app=services["http"])
        async with httpx.AsyncClient(transport=transport, base_url="http://test/iot-broker/rest") as http:
            key = (await http.get("/client/join", params={"token": token, "clientPlatform": "c1"})).json()[
                "sessionKey"
            ]
            posted = await http.post(
                "/ontology/BasicSensor",
                headers={"Authorization": key},
                json={"BasicSensor": {"assetId": "a", "measure": 1}},
            )
            assert posted.status_code == 504  # nobody answered: the flow dropped it
            counted = await http.get(
                "/ontology/BasicSensor",
                headers={"Authorization": key},
                params={"query": "select count(*) as n from BasicSensor", "queryType": "SQL"},
            )
            assert counted.json() == [{"n": 0}]
        assert [len(port) for port in t.outputs("onlyReads")] == [
            1,
            1,
        ]  # JOIN, QUERY; the INSERT went nowhere


@pytest.mark.parametrize(
    "node, fragment",
    [
        ({"id": "p", "type": "ssap process", "z": "t", "wires": [[], []]}, "broker"),
        ({"id": "r", "type": "ssap-rest in", "z": "t", "url": "iot-broker", "wires": [[]]}, "url"),
        ({"id": "b", "type": "ssap-broker", "sessionTimeout": "0"}, "sessionTimeout"),
        (
            {"id": "m", "type": "ssap-mqtt in", "z": "t", "broker": "b", "topic": "/queue/#", "wires": [[]]},
            "topic",
        ),
    ],
)
async def test_bad_configuration_refuses_the_deploy(services, registry, node, fragment):
    flow = [{"id": "t", "type": "tab"}, node]
    with pytest.raises(FlowValidationError) as exc:
        async with _tester(flow, services, registry):
            pass
    assert fragment in str(exc.value)


async def test_two_rest_gateways_on_one_path_are_refused(services, registry):
    flow = [
        {"id": "t", "type": "tab"},
        {"id": "r1", "type": "ssap-rest in", "z": "t", "url": "/iot-broker/rest", "wires": [[]]},
        {"id": "r2", "type": "ssap-rest in", "z": "t", "url": "/iot-broker/rest/", "wires": [[]]},
    ]
    with pytest.raises(FlowValidationError):
        async with _tester(flow, services, registry):
            pass


class _Callbacks:
    """A real HTTP server on a free loopback port that records the bodies POSTed to it."""

    def __init__(self) -> None:
        import http.server
        import queue
        import threading

        self.bodies: queue.Queue = queue.Queue()
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the stdlib's name
                length = int(self.headers.get("content-length", 0))
                bodies.put(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/indications"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


async def test_rest_subscription_posts_indications_to_the_callback(services, registry):
    import asyncio

    _device, token = services["devices"].create("c1", {"BasicSensor": "ALL"})
    callbacks = _Callbacks()
    try:
        async with _tester(_rest_only(SHIPPED), services, registry):
            transport = httpx.ASGITransport(app=services["http"])
            async with httpx.AsyncClient(transport=transport, base_url="http://test/iot-broker/rest") as http:
                key = (
                    await http.get("/client/join", params={"token": token, "clientPlatform": "c1"})
                ).json()["sessionKey"]
                auth = {"Authorization": key}
                sub = await http.post(
                    "/subscribe/hot",
                    headers=auth,
                    json={
                        "ontology": "BasicSensor",
                        "callback": callbacks.url,
                        "queryValue": "db.BasicSensor.find({'BasicSensor.measure': {$gt: 30}})",
                    },
                )
                assert sub.status_code == 200, sub.text
                sub_id = sub.json()["subscriptionId"]
                for measure in (20, 35):
                    await http.post(
                        "/ontology/BasicSensor",
                        headers=auth,
                        json={"BasicSensor": {"assetId": "a", "measure": measure}},
                    )
                got = await asyncio.to_thread(callbacks.bodies.get, True, 10)
                assert got["messageType"] == "INDICATION" and got["body"]["subscriptionId"] == sub_id
                assert [d["BasicSensor"]["measure"] for d in got["body"]["data"]] == [35]
                assert (await http.post(f"/unsubscribe/{sub_id}", headers=auth)).status_code == 200
                tx = await http.get("/transaction/start", headers=auth)
                assert tx.status_code == 400 and "START_TRANSACTION" in tx.json()["error"]
        assert callbacks.bodies.empty()
    finally:
        callbacks.close()
