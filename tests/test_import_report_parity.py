"""The import report of a Node-RED export that uses the core palette finished for parity (every flow the
differential suite runs in Node-RED, plus watch, exec, debug, tcp with TLS, http request through a proxy): each
node is reported as running here; only the documented caveats show (exec is off unless an administrator enables
it; a JavaScript function's Date values leave the script as strings)."""

from __future__ import annotations

from types import SimpleNamespace

from sofiaflow.runtime.flows.import_report import CANNOT_RUN, CAVEAT, RUNS, format_report, import_report
from tests.differential.cases import CASES, build
from tests.differential.mqtt import mqtt_flow
from tests.differential.udp import udp_flow

TAB = {"id": "extra", "type": "tab", "label": "extra"}


def node(id_, type_, wires=None, **props):
    return {"id": id_, "type": type_, "z": "extra", "x": 1, "y": 1, "wires": wires or [[]], **props}


EXTRA = [
    TAB,
    {
        "id": "tls",
        "type": "tls-config",
        "cert": "/etc/certs/c.pem",
        "key": "/etc/certs/k.pem",
        "ca": "",
        "verifyservercert": True,
    },
    {"id": "px", "type": "http proxy", "url": "http://proxy.example:3128", "noproxy": ["localhost"]},
    node("w", "watch", files="/tmp/in", recursive=False),
    node(
        "x",
        "exec",
        [[], [], []],
        command="ls",
        addpay="payload",
        append="",
        useSpawn="false",
        timer="",
        winHide=False,
        oldrc=False,
    ),
    node(
        "d",
        "debug",
        [],
        active=True,
        tosidebar=True,
        console=False,
        tostatus=False,
        complete="payload",
        targetType="msg",
        statusVal="",
        statusType="auto",
    ),
    node(
        "ti",
        "tcp in",
        server="server",
        host="",
        port="7010",
        datamode="stream",
        datatype="utf8",
        newline="\\n",
        topic="",
        trim=False,
        base64=False,
        tls="tls",
    ),
    node("to", "tcp out", [], host="", port="", beserver="reply", base64=False, end=False, tls=""),
    node(
        "tc",
        "tcp out",
        [],
        host="example.org",
        port="7011",
        beserver="client",
        base64=False,
        end=False,
        tls="tls",
    ),
    node(
        "tr",
        "tcp request",
        server="example.org",
        port="7012",
        out="char",
        splitc="\\n",
        ret="string",
        newline="",
        trim=False,
        tls="tls",
    ),
    node(
        "hr",
        "http request",
        method="GET",
        ret="txt",
        paytoqs="ignore",
        url="http://example.org/",
        tls="tls",
        persist=False,
        proxy="px",
        insecureHTTPParser=False,
        authType="",
        senderr=False,
        headers=[],
    ),
]


def export() -> list[dict]:
    endpoint = SimpleNamespace(flow_port=7020, reply_port=7021)
    return build(CASES) + mqtt_flow(1883) + udp_flow(endpoint) + EXTRA


def test_every_node_of_the_export_runs_here(registry):
    entries = import_report(export(), registry)
    assert [e for e in entries if e["status"] == CANNOT_RUN] == []
    caveats = {e["id"]: e["reasons"] for e in entries if e["status"] == CAVEAT}
    assert "SOFIAFLOW_EXEC_ENABLED" in caveats.pop("x")[0]
    functions = {e["id"] for e in entries if e["type"] == "function"}
    assert set(caveats) <= functions, caveats  # only JavaScript functions beyond the exec node
    kinds = {e["type"] for e in entries if e["status"] == RUNS}
    for kind in (
        "csv",
        "html",
        "xml",
        "yaml",
        "file",
        "file in",
        "watch",
        "tcp in",
        "tcp out",
        "tcp request",
        "udp in",
        "udp out",
        "inject",
        "debug",
        "sort",
        "batch",
        "change",
        "switch",
        "template",
        "join",
        "split",
        "http request",
        "tls-config",
        "http proxy",
        "mqtt in",
        "mqtt out",
        "mqtt-broker",
    ):
        assert kind in kinds, f"{kind} is not reported as running"


def test_the_text_report_counts_them(registry):
    entries = import_report(export(), registry)
    last = format_report(entries).splitlines()[-1]
    runs = sum(e["status"] == RUNS for e in entries)
    assert last.startswith(f"{runs} run, ") and last.endswith(", 0 cannot run")
