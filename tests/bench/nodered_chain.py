"""Node-RED reference figures for the engine benchmark.

* chain throughput: messages/s through a chain of `change`/`switch` nodes (10 by default);
* deploy: time of a full deploy of 1,000 such nodes, and the RSS before/after it.

Run: python tests/bench/nodered_chain.py [count]
"""

from __future__ import annotations

import copy
import itertools
import json
import sys
import time
from typing import NamedTuple

try:
    from .nodered import NodeRed
except ImportError:  # run as a script, or imported with tests/bench on sys.path
    from nodered import NodeRed

RESULT_TIMEOUT = 120.0  # bound on waiting for one chain run

# Copy msg.payload to msg.hops: plain msg-to-msg semantics, no JSONata.
CHANGE_RULES = [{"t": "set", "p": "hops", "pt": "msg", "to": "payload", "tot": "msg"}]
# msg.payload >= 0 is always true for the fed messages: every message passes.
SWITCH_RULES = [{"t": "gte", "v": "0", "vt": "num"}]

# Feeder (function node, 2 outputs: chain, HTTP ack). The function sandbox has no setImmediate,
# so batches are separated by setTimeout(0): it yields a full event-loop turn, including the
# check phase in which Node-RED delivers queued messages (asynchronous delivery, one
# setImmediate per hop). Batches of 1000 keep the chain busy without starving the loop (100 or
# 10000 give the same figures within noise); each message is fresh, so node.send(..., false)
# skips the defensive clone.
# window=0 floods (as fast as possible). The switch node handles one message per event-loop
# turn and queues the rest, so a flood builds a backlog that slows Node-RED down as it grows
# (figures depend on count). window=W caps messages in flight at W: the sustainable rate.
FEEDER_JS = """
const total = Number(msg.payload && msg.payload.count) || 0;
const WINDOW = Number(msg.payload && msg.payload.window) || 0;  // 0: flood, no in-flight cap
const BATCH = 1000;
global.set('bench_total', total);
global.set('bench_count', 0);
global.set('bench_elapsed_ms', null);
global.set('bench_t0', Date.now());
let i = 0;
function batch() {
    const room = WINDOW ? WINDOW - (i - global.get('bench_count')) : BATCH;
    const end = Math.min(i + Math.min(BATCH, room), total);
    for (; i < end; i++) node.send([{payload: i}, null], false);
    if (i < total) setTimeout(batch, 0);
}
batch();
msg.payload = {started: total};
return [null, msg];
"""

# Counter at the end of the chain: stores elapsed ms when the last message arrives.
COUNTER_JS = """
const c = global.get('bench_count') + 1;
global.set('bench_count', c);
if (c === global.get('bench_total')) {
    global.set('bench_elapsed_ms', Date.now() - global.get('bench_t0'));
}
return null;
"""

RESULT_JS = """
msg.payload = {count: global.get('bench_count') || 0,
               total: global.get('bench_total') || 0,
               elapsed_ms: global.get('bench_elapsed_ms')};
return msg;
"""


class ChainFlow(NamedTuple):
    """`chain`: the chain nodes only (last one unwired); `flow`: tab + harness + chain."""

    chain: list[dict]
    flow: list[dict]


def _ids(prefix: str):
    """Deterministic 16-char node ids."""
    return (f"{prefix}{n:0{16 - len(prefix)}x}" for n in itertools.count(1))


def _chain(ids, z: str, n_nodes: int, y: int = 80, x0: int = 300) -> list[dict]:
    """`n_nodes` alternating change/switch nodes wired in a line (last one unwired)."""
    nodes = []
    for i in range(n_nodes):
        node = {"id": next(ids), "z": z, "x": x0 + 140 * i, "y": y, "wires": [[]]}
        if i % 2 == 0:
            node.update(
                type="change",
                name="",
                rules=copy.deepcopy(CHANGE_RULES),
                action="",
                property="",
                **{"from": ""},
                to="",
                reg=False,
            )
        else:
            node.update(
                type="switch",
                name="",
                property="payload",
                propertyType="msg",
                rules=copy.deepcopy(SWITCH_RULES),
                checkall="true",
                repair=False,
                outputs=1,
            )
        if nodes:
            nodes[-1]["wires"] = [[node["id"]]]
        nodes.append(node)
    return nodes


def _function(nid: str, z: str, code: str, outputs: int, x: int, y: int, wires) -> dict:
    return {
        "id": nid,
        "type": "function",
        "z": z,
        "name": "",
        "func": code.strip(),
        "outputs": outputs,
        "timeout": 0,
        "noerr": 0,
        "initialize": "",
        "finalize": "",
        "libs": [],
        "x": x,
        "y": y,
        "wires": wires,
    }


def chain_flow(n_nodes: int = 10) -> ChainFlow:
    """The benchmark chain, and the full one-tab flow with its HTTP harness.

    POST /bench/start {"count": N} feeds N messages {payload: i} into the chain;
    GET /bench/result answers {count, total, elapsed_ms} (elapsed_ms null until all arrived).
    n_nodes=0 wires the feeder straight to the counter: the harness-only baseline.
    """
    ids, tab = _ids("b"), "bench00000000tab"
    chain = _chain(ids, tab, n_nodes)
    start_in, feeder, ack, counter = (next(ids) for _ in range(4))
    result_in, result_fn, result_out = (next(ids) for _ in range(3))
    wired = copy.deepcopy(chain)
    if wired:
        wired[-1]["wires"] = [[counter]]
    first = wired[0]["id"] if wired else counter
    http_in = {"type": "http in", "name": "", "upload": False, "swaggerDoc": "", "z": tab}
    http_out = {"type": "http response", "name": "", "statusCode": "", "headers": {}, "z": tab, "wires": []}
    flow = [
        {"id": tab, "type": "tab", "label": "bench", "disabled": False, "info": ""},
        {
            **http_in,
            "id": start_in,
            "url": "/bench/start",
            "method": "post",
            "x": 100,
            "y": 40,
            "wires": [[feeder]],
        },
        _function(feeder, tab, FEEDER_JS, 2, 160, 80, [[first], [ack]]),
        {**http_out, "id": ack, "x": 320, "y": 40},
        *wired,
        _function(counter, tab, COUNTER_JS, 1, 300 + 140 * n_nodes, 80, [[]]),
        {
            **http_in,
            "id": result_in,
            "url": "/bench/result",
            "method": "get",
            "x": 100,
            "y": 160,
            "wires": [[result_fn]],
        },
        _function(result_fn, tab, RESULT_JS, 1, 300, 160, [[result_out]]),
        {**http_out, "id": result_out, "x": 480, "y": 160},
    ]
    return ChainFlow(chain, flow)


def _run(nr: NodeRed, count: int, window: int = 0) -> dict:
    """One timed run on a started Node-RED; polls /bench/result for at most RESULT_TIMEOUT."""
    status, body = nr.request("POST", "/bench/start", {"count": count, "window": window})
    if status != 200:
        raise RuntimeError(f"/bench/start: HTTP {status} {body[:300]!r}")
    deadline = time.monotonic() + RESULT_TIMEOUT
    while time.monotonic() < deadline:
        status, body = nr.request("GET", "/bench/result", timeout=10)
        res = json.loads(body) if status == 200 else {}
        if res.get("elapsed_ms") is not None:
            if res["count"] != count:
                raise RuntimeError(f"{res['count']:,} of {count:,} messages arrived")
            elapsed = max(res["elapsed_ms"], 1) / 1000
            return {
                "msgs_per_s": res["count"] / elapsed,
                "elapsed_s": elapsed,
                "count": res["count"],
                "window": window,
            }
        time.sleep(0.05)
    raise TimeoutError(f"chain run not finished within {RESULT_TIMEOUT}s (last: {body[:300]!r})")


def measure_chain(count: int = 100_000, n_nodes: int = 10, warmup: int = 10_000, window: int = 0) -> dict:
    """Messages per second through the chain: count / elapsed.

    elapsed runs from the feeder's first send to the counter seeing the last message, so it
    includes the two harness function nodes (see n_nodes=0 for their cost alone).
    window=0 feeds as fast as possible; window=W keeps at most W messages in flight.
    A short warm-up run first lets V8 compile the hot paths.
    """
    with NodeRed(chain_flow(n_nodes).flow) as nr:
        if warmup:
            _run(nr, warmup, window)
        return _run(nr, count, window)


def deploy_flow(n_nodes: int = 1000, chain_len: int = 10, n_tabs: int = 4) -> list[dict]:
    """n_nodes change/switch nodes as chains of `chain_len`, each fed by a one-shot inject
    node (no repeat), spread round-robin over `n_tabs` tabs."""
    ids = _ids("d")
    tabs = [
        {"id": f"deploytab{t:07x}", "type": "tab", "label": f"deploy {t + 1}", "disabled": False, "info": ""}
        for t in range(n_tabs)
    ]
    nodes: list[dict] = []
    for c in range(n_nodes // chain_len):
        z, y = tabs[c % n_tabs]["id"], 40 + 40 * (c // n_tabs)
        chain = _chain(ids, z, chain_len, y=y, x0=260)
        nodes.append(
            {
                "id": next(ids),
                "type": "inject",
                "z": z,
                "name": "",
                "props": [{"p": "payload"}],
                "repeat": "",
                "crontab": "",
                "once": False,
                "onceDelay": 0.1,
                "topic": "",
                "payload": "0",
                "payloadType": "num",
                "x": 100,
                "y": y,
                "wires": [[chain[0]["id"]]],
            }
        )
        nodes.extend(chain)
    return tabs + nodes


def measure_deploy(n_nodes: int = 1000, settle_s: float = 2.0) -> dict:
    """Full deploy of deploy_flow(n_nodes) to a running, empty Node-RED: time and RSS.

    deploy_s: until POST /flows answered. Node-RED answers once the old flows are stopped and
    starts the new ones right after, so ready_s (until a follow-up request is served) bounds
    the time to nodes actually running.
    """
    flow = deploy_flow(n_nodes)
    with NodeRed([]) as nr:
        nr.request("GET", "/sofiaflow-ping")  # as on sofiaflow: the ping path warmed up before the deploy
        time.sleep(settle_s)
        before = nr.rss_bytes()
        t0 = time.perf_counter()
        deploy_s = nr.deploy(flow)
        nr.request("GET", "/sofiaflow-ping")  # 404, served once the event loop is free again
        ready_s = time.perf_counter() - t0
        time.sleep(settle_s)
        after = nr.rss_bytes()
        status, body = nr.request("GET", "/flows")
        deployed = len(json.loads(body)) if status == 200 else -1
        if deployed != len(flow):
            raise RuntimeError(f"Node-RED holds {deployed} of the {len(flow)} deployed objects")
    return {
        "deploy_s": deploy_s,
        "ready_s": ready_s,
        "rss_mb_before": before / 2**20,
        "rss_mb_after": after / 2**20,
        "nodes": sum(1 for n in flow if n["type"] != "tab"),
    }


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 100_000
    chain = measure_chain(count)
    paced = measure_chain(count, window=1000)
    base = measure_chain(count, n_nodes=0)
    dep = measure_deploy()
    rows = [
        ("chain 10 nodes, msgs/s", f"{chain['msgs_per_s']:,.0f}"),
        ("chain 10 nodes, elapsed s", f"{chain['elapsed_s']:.3f} for {chain['count']:,} msgs"),
        ("  same, <=1000 in flight, msgs/s", f"{paced['msgs_per_s']:,.0f}"),
        ("harness only (0 nodes), msgs/s", f"{base['msgs_per_s']:,.0f}"),
        (f"deploy {dep['nodes']:,} nodes (incl. injects), s", f"{dep['deploy_s']:.3f}"),
        ("  until next request served, s", f"{dep['ready_s']:.3f}"),
        ("RSS before deploy, MB", f"{dep['rss_mb_before']:.1f}"),
        ("RSS after deploy, MB", f"{dep['rss_mb_after']:.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"Node-RED reference ({count:,} messages)")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
