"""One pair of servers (real Node-RED + sofiaflow), each with its own mosquitto, for the whole session."""

from __future__ import annotations

import os
import shutil

import pytest
from bench.nodered import find_node_red, free_port

from .cases import CASES, build
from .mqtt import Mosquitto, Probe, mqtt_flow
from .servers import Pair
from .tls import tls_flow
from .udp import Endpoint, udp_flow


def _require(what: str, found: object) -> None:
    if found is None:
        if os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{what} is required (SOFIAFLOW_REQUIRE_SERVERS=1) but was not found")
        pytest.skip(f"{what} is not installed")


@pytest.fixture(scope="session")
def brokers():
    exe = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None
    )
    _require("mosquitto", exe)
    started: dict[str, Mosquitto] = {}
    try:
        for runtime in ("node-red", "sofiaflow"):
            started[runtime] = Mosquitto(exe).start()
        yield started
    finally:
        for broker in started.values():
            broker.stop()


@pytest.fixture(scope="session")
def udp_endpoints():
    endpoints = {runtime: Endpoint() for runtime in ("node-red", "sofiaflow")}
    try:
        yield endpoints
    finally:
        for endpoint in endpoints.values():
            endpoint.close()


@pytest.fixture(scope="session")
def tls_servers(tmp_path_factory):
    """Certificates (a CA and a server certificate for 127.0.0.1) and each runtime's TLS port."""
    from tests.test_node_mqtt import make_certificates

    ca, cert, key = make_certificates(tmp_path_factory.mktemp("diff-tls"), "diff")
    return {
        "files": (ca, cert, key),
        "ports": {runtime: free_port() for runtime in ("node-red", "sofiaflow")},
    }


@pytest.fixture(scope="session")
def pair(brokers, udp_endpoints, tls_servers):
    _require("Node-RED (set SOFIAFLOW_NODE_RED)", find_node_red())

    def extra(runtime: str) -> list[dict]:
        return (
            mqtt_flow(brokers[runtime].port)
            + udp_flow(udp_endpoints[runtime])
            + tls_flow(tls_servers["ports"][runtime], *tls_servers["files"])
        )

    servers = Pair(build(CASES), probe="/diff/ping", extra=extra).start()
    try:
        yield servers
    finally:
        servers.stop()


@pytest.fixture(scope="session")
def probes(pair, brokers):
    """A subscribed MQTT client on each runtime's broker (after both runtimes are up)."""
    clients = {runtime: Probe(broker.port) for runtime, broker in brokers.items()}
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


@pytest.fixture(scope="session")
def udp_sockets(pair, udp_endpoints):
    """The test's UDP endpoints, once each runtime's `udp in` answers."""
    for endpoint in udp_endpoints.values():
        endpoint.wait_listening()
    return udp_endpoints


@pytest.fixture(scope="session")
def comms(pair):
    """Each runtime's /comms websocket, subscribed to the debug sidebar's events."""
    from .comms import Comms
    from .servers import sofiaflow_token

    sockets = {
        "node-red": Comms(pair.node_red.url),
        "sofiaflow": Comms(pair.sofiaflow.url, sofiaflow_token(pair.sofiaflow.url)),
    }
    try:
        yield sockets
    finally:
        for socket in sockets.values():
            socket.close()
