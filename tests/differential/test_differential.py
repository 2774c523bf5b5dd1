"""The same flows and requests in real Node-RED and in sofiaflow must give the same answers.

Answers are compared as (status, headers a client relies on, body). JSON bodies are compared as values with
`_msgid` removed and with exact types: `true` is not `1` and `2` is not `2.0`. Every header is compared except
the ones each server adds on its own (SERVER_HEADERS). A request Node-RED does not answer in time fails the case:
two silent servers are not "the same answer".

Cases whose answers differ on purpose carry a `Differs` (cases.py): each side must give exactly its documented
answer (README: "Where sofiaflow differs" and "Known differences from Node-RED").
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .cases import CASES, Case
from .servers import Answer, request

SERVER_HEADERS = frozenset(
    {
        "date",
        "server",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",  # bodies are compared as values (JSON may be spaced differently)
        "etag",  # Express's weak ETag of the body
        "x-powered-by",
        # both runtimes here serve the admin API and the flows' endpoints from "/": Node-RED's admin CORS
        # handler then answers every request, flows' endpoints included
        "access-control-allow-origin",
    }
)


def typed(value) -> str:
    """A JSON value as canonical text that keeps its type: true, 1 and 1.0 stay three different texts."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=True)


def body_value(raw: bytes):
    text = raw.decode("utf-8", errors="replace")
    try:
        return _without_msgid(json.loads(text))
    except ValueError:
        return text


def answer(got: Answer) -> tuple:
    """What a client sees: status, the headers a flow (not the server) decides, the body with its exact types."""
    headers = {k: v for k, v in sorted(got.headers.items()) if k not in SERVER_HEADERS}
    return got.status, headers, typed(body_value(got.body))


def _without_msgid(value):
    if isinstance(value, dict):
        return {k: _without_msgid(v) for k, v in value.items() if k != "_msgid"}
    if isinstance(value, list):
        return [_without_msgid(v) for v in value]
    return value


# ----- the comparison itself (pure: tested below without servers) -----------------------------------------------


def differences(node_red: Answer, sofiaflow: Answer) -> list[str]:
    """Why two answers are not the same (empty: the same). Node-RED not answering is always a difference."""
    if node_red.status == 0:
        return ["Node-RED gave no answer in time: the case's flow or request is wrong"]
    expected, got = answer(node_red), answer(sofiaflow)
    found = []
    for what, a, b in zip(("status", "headers", "body"), expected, got, strict=True):
        if a != b:
            found.append(f"{what}:\n  Node-RED:  {a!r}\n  sofiaflow: {b!r}")
    return found


def test_exact_types_are_compared():
    def ok(body: bytes, ctype: str = "application/json; charset=utf-8") -> Answer:
        return Answer(200, {"content-type": (ctype,), "date": ("now",)}, body)

    assert differences(ok(b'{"a": 1, "_msgid": "x"}'), ok(b'{"_msgid": "y", "a": 1}')) == []
    assert differences(ok(b"[true]"), ok(b"[1]"))
    assert differences(ok(b'{"n": 2}'), ok(b'{"n": 2.0}'))
    assert differences(ok(b'{"n": null}'), ok(b"{}"))
    assert differences(ok(b"text"), ok(b"text", "text/plain"))
    assert (
        differences(ok(b"x"), Answer(200, {"content-type": ("application/json; charset=utf-8",)}, b"x")) == []
    )
    with_header = Answer(302, {"location": ("/a",), "content-type": ("text/plain",)}, b"")
    assert differences(with_header, Answer(302, {"location": ("/b",), "content-type": ("text/plain",)}, b""))
    assert differences(with_header, Answer(302, {"content-type": ("text/plain",)}, b""))
    silent = Answer(0, {}, b"")
    assert differences(silent, silent), "two servers that do not answer are not the same answer"


# ----- HTTP cases --------------------------------------------------------------------------------------------------


@pytest.mark.servers
@pytest.mark.parametrize(
    "case",
    [c for c in CASES if c.requests and not c.differs and c.name != "debug-undefined"],
    ids=lambda c: c.name,
)
def test_same_answers(pair, case: Case):
    found = []
    for body in case.requests:
        node_red, sofiaflow = pair.ask(case.method, f"/diff/{case.name}{case.query}", body)
        found += [f"request {body!r}: {d}" for d in differences(node_red, sofiaflow)]
        if case.pause:
            time.sleep(case.pause)
    assert not found, "\n".join(found)


@pytest.mark.servers
@pytest.mark.parametrize("case", [c for c in CASES if c.differs], ids=lambda c: c.name)
def test_documented_differences(pair, case: Case):
    """Each side gives exactly the answer the README documents for it, and the two differ."""
    differs = case.differs
    path = f"/diff/{case.name}{case.query}"
    if not case.pause and all(status == 0 for status, _ in differs.node_red):
        # Node-RED answers none of them: each request waits out its whole timeout there, so they wait together
        with ThreadPoolExecutor(len(case.requests)) as pool:
            answers = list(pool.map(lambda body: pair.ask(case.method, path, body), case.requests))
    else:
        answers = None
    for i, (body, want_nr, want_sf) in enumerate(
        zip(case.requests, differs.node_red, differs.sofiaflow, strict=True)
    ):
        node_red, sofiaflow = answers[i] if answers else pair.ask(case.method, path, body)
        for side, got, want in (("Node-RED", node_red, want_nr), ("sofiaflow", sofiaflow, want_sf)):
            status, value = want
            assert got.status == status, f"{differs.why}: {side} answered {got.status} {got.body[:300]!r}"
            if value is not ...:
                assert typed(body_value(got.body)) == typed(value), f"{differs.why}: {side}"
        if case.pause:
            time.sleep(case.pause)


def together(sides: dict, method: str, *args) -> dict:
    """`method(*args)` of each side's client, called at the same time (each waits out its own quiet time);
    runtime -> what it returned."""
    with ThreadPoolExecutor(len(sides)) as pool:
        running = {runtime: pool.submit(getattr(side, method), *args) for runtime, side in sides.items()}
        return {runtime: future.result() for runtime, future in running.items()}


# ----- MQTT --------------------------------------------------------------------------------------------------------

MQTT_MESSAGES = [
    ("diff/in/auto/a", b'{"x": 1}', 0, False),
    ("diff/in/auto/b", b"plain text", 1, False),
    ("diff/in/auto/c", b"42", 2, False),
    ("diff/in/auto/d", b"\xff\x00\x01", 0, False),
    ("diff/in/json", b'{"n": 12}', 1, False),
    ("diff/in/json", b'{"n": 3}', 0, False),
    ("diff/in/split", b"[1, 2.5, true, null, 1]", 2, False),  # five messages out, two of them the same
    ("diff/in/split", b"[]", 1, False),  # none out
    ("diff/in/retain", b'"kept"', 1, True),
]


@pytest.mark.servers
@pytest.mark.parametrize("message", MQTT_MESSAGES, ids=lambda m: f"{m[0]}:{m[1][:10]!r}")
def test_same_mqtt_answers(pair, probes, message):
    """The same MQTT message to each runtime's broker gives the same messages back: every one (topic, payload,
    qos, retain), in order, duplicates counted; Node-RED must answer unless the case expects silence."""
    topic, payload, qos, retain = message
    for probe in probes.values():
        probe.drain()
        probe.publish(topic, payload, qos, retain)
    answers = {runtime: [_mqtt_answer(m) for m in got] for runtime, got in together(probes, "settle").items()}
    assert answers["sofiaflow"] == answers["node-red"]
    if payload != b"[]":
        assert answers["node-red"], "Node-RED answered nothing: the flow or the broker is wrong"


def _mqtt_answer(message: tuple) -> tuple:
    topic, payload, qos, retain = message
    try:
        value = typed(_without_msgid(json.loads(payload)))
    except ValueError:
        value = payload
    return topic, value, qos, retain


# ----- UDP ---------------------------------------------------------------------------------------------------------

UDP_DATAGRAMS = [b"hello", "h\u00e9llo\nsecond line\nthird".encode(), b"", b"a\n\na"]


@pytest.mark.servers
@pytest.mark.parametrize("datagram", UDP_DATAGRAMS, ids=repr)
def test_same_udp_answers(pair, udp_sockets, datagram):
    """udp in -> function -> split -> udp out to this test's socket: the same datagrams come back from each."""
    for sock in udp_sockets.values():
        sock.drain()
        sock.send(datagram)
    answers = together(udp_sockets, "settle")
    assert answers["sofiaflow"] == answers["node-red"]
    assert answers["node-red"], "Node-RED sent nothing back"


# ----- TLS on the tcp nodes ----------------------------------------------------------------------------------------


@pytest.mark.servers
@pytest.mark.parametrize("server", ["own", "other"])
def test_same_tls_answers(pair, tls_servers, server):
    """tcp request over TLS to a TLS tcp in server (the runtime's own, or the other runtime's): the same answers,
    and each runtime's client talks to the other's server."""
    ports = tls_servers["ports"]
    node_red_port = ports["node-red"] if server == "own" else ports["sofiaflow"]
    sofiaflow_port = ports["sofiaflow"] if server == "own" else ports["node-red"]
    for text in ("hello", "h\u00e9llo w\u00f6rld", ""):
        node_red = request(
            pair.node_red.url, "POST", "/diff-tls/echo", {"v": {"text": text, "port": node_red_port}}
        )
        sofiaflow = request(
            pair.sofiaflow.url, "POST", "/diff-tls/echo", {"v": {"text": text, "port": sofiaflow_port}}
        )
        assert differences(node_red, sofiaflow) == []
        assert body_value(node_red.body) == f"over tls: {text} (string)\n"


# ----- the debug sidebar -------------------------------------------------------------------------------------------


def _debug_event(event: dict) -> tuple:
    """A debug event as the sidebar shows it: which node, the property, the format and the value (parsed when
    the format says it is JSON text)."""
    text = event.get("msg")
    fmt = event.get("format", "")
    if fmt.startswith(("Object", "array")) and isinstance(text, str):
        text = typed(json.loads(text))
    return event["id"], event.get("property"), fmt, text, event.get("topic"), event.get("name")


@pytest.mark.servers
def test_same_debug_events(pair, comms):
    case = next(c for c in CASES if c.name == "debug-undefined")
    debug_nodes = sum(1 for node in case.nodes if node["type"] == "debug")
    for body in case.requests:
        for socket in comms.values():
            socket.drain()
        node_red, sofiaflow = pair.ask("POST", f"/diff/{case.name}", body)
        assert differences(node_red, sofiaflow) == []
        events = {
            runtime: sorted(_debug_event(e) for e in got)
            for runtime, got in together(comms, "collect", debug_nodes).items()
        }
        assert len(events["node-red"]) == debug_nodes, events
        assert events["sofiaflow"] == events["node-red"], f"request {body!r}"
