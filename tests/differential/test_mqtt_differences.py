"""README: "QoS 1/2 messages published while the broker is away are kept (bounded) and sent on reconnect; Node-RED
drops them (its issue #2864)", against real Node-RED, with brokers of their own (the test stops them).

Each runtime: POST /diff-away -> mqtt out (QoS 1, diff/out/away) on its own mosquitto, which keeps the probe's
persistent session across its restart, so nothing the runtime publishes after the restart can be missed.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from bench.nodered import find_node_red

from .cases import Case, build, change, set_
from .comms import Comms
from .conftest import _require
from .mqtt import Mosquitto, Probe
from .servers import Pair, request, sofiaflow_token

RUNTIMES = ("node-red", "sofiaflow")


def away_flow(port: int) -> list[dict]:
    tab = "tab-away"
    broker = {
        "id": "away.broker",
        "type": "mqtt-broker",
        "name": "away",
        "broker": "127.0.0.1",
        "port": port,
        "clientid": "",
        "autoConnect": True,
        "usetls": False,
        "protocolVersion": 4,
        "keepalive": 5,
        "cleansession": True,
        "autoUnsubscribe": True,
        "birthTopic": "",
        "closeTopic": "",
        "willTopic": "",
    }

    def node(id_, type_, wires, **props):
        return {
            "id": f"away.{id_}",
            "type": type_,
            "z": tab,
            "name": "",
            "x": 1,
            "y": 1,
            "wires": [[f"away.{t}" for t in p] for p in wires],
            **props,
        }

    return [
        {"id": tab, "type": "tab", "label": "away", "disabled": False, "info": ""},
        broker,
        node(
            "in",
            "http in",
            [["unwrap"]],
            url="/diff-away",
            method="post",
            upload=False,
            skipBodyParsing=False,
            swaggerDoc="",
        ),
        node(
            "unwrap",
            "change",
            [["out", "res"]],
            rules=[set_("payload", "payload.v", "msg")],
            action="",
            property="",
            to="",
            reg=False,
        ),
        node(
            "out",
            "mqtt out",
            [],
            topic="diff/out/away",
            qos="1",
            retain="false",
            respTopic="",
            contentType="",
            userProps="",
            correl="",
            expiry="",
            broker="away.broker",
        ),
        node("res", "http response", [], statusCode="", headers={}),
    ]


@pytest.fixture(scope="module")
def away():
    exe = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)), None
    )
    _require("mosquitto", exe)
    _require("Node-RED (set SOFIAFLOW_NODE_RED)", find_node_red())
    brokers = {runtime: Mosquitto(exe, persistent=True) for runtime in RUNTIMES}
    probes: dict[str, Probe] = {}
    sockets: dict[str, Comms] = {}
    pair = None
    try:
        for broker in brokers.values():
            broker.start()
        base = build([Case("ping", [change("a", set_("payload", "pong"))], [], method="GET")])
        pair = Pair(base, probe="/diff/ping", extra=lambda runtime: away_flow(brokers[runtime].port)).start()
        for runtime in RUNTIMES:
            probes[runtime] = Probe(brokers[runtime].port, client_id=f"diff-away-{runtime}")
        sockets["node-red"] = Comms(pair.node_red.url)
        sockets["sofiaflow"] = Comms(pair.sofiaflow.url, sofiaflow_token(pair.sofiaflow.url))
        yield pair, brokers, probes, sockets
    finally:
        for socket in sockets.values():
            socket.close()
        for probe in probes.values():
            probe.close()
        if pair is not None:
            pair.stop()
        for broker in brokers.values():
            broker.stop()


def gone(status_text: str) -> bool:
    """A status saying the broker is not connected (Node-RED's is an i18n key: ...status.disconnected)."""
    text = status_text.lower()
    return "disconnected" in text or "connecting" in text


def publish(pair: Pair, text: str) -> None:
    for url in (pair.node_red.url, pair.sofiaflow.url):
        answer = request(url, "POST", "/diff-away", {"v": text})
        assert answer.status == 200 and answer.body == text.encode(), (url, answer)


def payloads(probe: Probe, want: str, seconds: float) -> list[str]:
    """What `probe` received until `want` came (and a little after), bounded."""
    got: list[str] = []
    deadline = time.monotonic() + seconds
    while want not in got and time.monotonic() < deadline:
        got += [m[1].decode() for m in probe.settle(first=0.5, quiet=0.3)]
    return got + [m[1].decode() for m in probe.settle(first=0.5, quiet=0.5)]


@pytest.mark.servers
def test_qos1_messages_published_while_the_broker_is_away(away):
    pair, brokers, probes, sockets = away
    deadline = time.monotonic() + 30
    while True:  # both runtimes connected: a message published now arrives
        publish(pair, "before")
        got = {runtime: payloads(probe, "before", 2) for runtime, probe in probes.items()}
        if all("before" in g for g in got.values()) or time.monotonic() > deadline:
            break
    assert all("before" in g for g in got.values()), got
    for broker in brokers.values():
        broker.pause()
    deadline = time.monotonic() + 30
    while not all(gone(s.status_text("away.out")) for s in sockets.values()) and time.monotonic() < deadline:
        time.sleep(0.05)  # until both runtimes show the mqtt out node disconnected
    assert all(gone(s.status_text("away.out")) for s in sockets.values()), {
        runtime: s.status_text("away.out") for runtime, s in sockets.items()
    }
    publish(pair, "away-1")
    publish(pair, "away-2")
    for broker in brokers.values():
        broker.start()
    received = {runtime: [] for runtime in RUNTIMES}
    deadline = time.monotonic() + 60
    while not all("after" in r for r in received.values()) and time.monotonic() < deadline:
        publish(pair, "after")  # arrives once the runtime is connected again
        for runtime, probe in probes.items():
            received[runtime] += payloads(probe, "after", 2)
    for runtime in RUNTIMES:
        assert "after" in received[runtime], f"{runtime} did not reconnect: {received}"
        # the probe's session outlived the restart: nothing published before the probe was back was lost
        assert probes[runtime].sessions[-1], f"the {runtime} broker lost the probe's session on restart"
    node_red = [p for p in received["node-red"] if p != "after"]
    sofiaflow = [p for p in received["sofiaflow"] if p != "after"]
    assert node_red == [], f"Node-RED kept what it published while the broker was away: {received}"
    assert sofiaflow == ["away-1", "away-2"], (
        f"sofiaflow should send them, once each, on reconnect: {received}"
    )
