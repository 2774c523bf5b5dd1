"""Function node benchmark: calls/s of a trivial JavaScript function node, of the same logic as a
Python function node, and of Node-RED's own function node, on this machine.

The JavaScript node is compared with Node-RED's like for like: both run as servers (`sofiaflow run`, Node-RED)
with the same flow JSON, fed over HTTP: a driver function node sends a burst through the node whose body is
`msg.payload = msg.payload + 1; return msg;` to a counter function node that notes when the last one arrived. The
same flow without the benchmarked node is timed too (the harness alone), and the node's rate net of it is printed;
every message must arrive. One message's latency is GET /one -> the node -> http response, on both.
In process (FlowTester, no harness on the other side) the JavaScript and python function nodes are also timed.
Beside the rates, the CPU seconds per 10,000 messages of each server process (and of sofiaflow's sandbox worker,
where the JavaScript runs) during the burst: the steady figure on a shared machine (tests/bench/cpu.py).
Also prints the memory of 100 JavaScript function nodes (one V8 isolate each), and the python function
in process beside the same node with its body in a sandbox worker process (functionIsolation "process"):
calls/s under a backlog and the latency of a single message.

Run: python tests/bench/function.py [messages]      (Node-RED figures need Node-RED; see README)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parents[1]))

from cpu import CpuMeter, per_10k  # noqa: E402
from nodered import NodeRed, find_node_red  # noqa: E402

from sofiaflow.runtime.flows.registry import default_registry  # noqa: E402
from sofiaflow.runtime.sandbox import SandboxPool  # noqa: E402
from sofiaflow.runtime.testing import FlowTester  # noqa: E402

JS_BODY = "msg.payload = msg.payload + 1;\nreturn msg;"
PY_BODY = "msg['payload'] = msg['payload'] + 1\nreturn msg"
TAB = {"id": "t", "type": "tab", "label": "bench"}


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _tester(flows: list[dict], isolation: str | None) -> FlowTester:
    """A FlowTester; with isolation "process" the python function bodies run in a sandbox worker."""
    t = FlowTester(flows, default_registry())
    if isolation == "process":
        t.engine.services["sandbox"] = SandboxPool()
        t.engine.node_settings["functionIsolation"] = "process"
    return t


async def _close_pool(t: FlowTester) -> None:
    pool = t.engine.services.get("sandbox")
    if pool is not None:
        await pool.close()


async def sofiaflow_calls_per_second(
    node_type: str, body: str, count: int, isolation: str | None = None
) -> float:
    flows = [TAB, {"id": "f", "type": node_type, "z": "t", "func": body, "outputs": 1, "wires": [[]]}]
    t = _tester(flows, isolation)
    async with t:
        for i in range(200):  # warm up
            t.inject("f", {"payload": i})
        await t.idle()
        t.clear()
        started = time.perf_counter()
        for i in range(count):
            t.inject("f", {"payload": i})
        await t.idle()
        elapsed = time.perf_counter() - started
        assert len(t.outputs("f")[0]) == count, "every message must come out"
    await _close_pool(t)
    return count / elapsed


async def single_message_latency_ms(isolation: str | None, rounds: int = 500) -> tuple[float, float]:
    """(median, 99th percentile) ms from injecting one message to its result, nothing else queued."""
    flows = [
        TAB,
        {"id": "f", "type": "python function", "z": "t", "func": PY_BODY, "outputs": 1, "wires": [[]]},
    ]
    t = _tester(flows, isolation)
    times = []
    async with t:
        for i in range(50):  # warm up (starts the worker)
            t.inject("f", {"payload": i})
            await t.idle()
        for i in range(rounds):
            started = time.perf_counter()
            t.inject("f", {"payload": i})
            await t.idle()
            times.append((time.perf_counter() - started) * 1000)
    await _close_pool(t)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99)]


async def isolate_memory(nodes: int = 100) -> tuple[float, float]:
    """(MB of RSS added by `nodes` JavaScript function nodes, ms to deploy them)."""
    flows = [TAB] + [
        {"id": f"f{i}", "type": "function", "z": "t", "func": JS_BODY, "outputs": 1, "wires": [[]]}
        for i in range(nodes)
    ]
    before = _rss_mb()
    started = time.perf_counter()
    async with FlowTester(flows, default_registry()) as t:
        deployed = (time.perf_counter() - started) * 1000
        for i in range(nodes):
            t.inject(f"f{i}", {"payload": 1})
        await t.idle()
        return _rss_mb() - before, deployed


DRIVER_JS = """
const count = Number(msg.payload.count);
flow.set('seen', 0);
flow.set('total', count);
flow.set('ms', null);
flow.set('run', msg.payload.run);
flow.set('start', Date.now());
for (let i = 0; i < count; i++) { node.send({payload: i}); }
return null;
"""
COUNTER_JS = """
const seen = flow.get('seen') + 1;
flow.set('seen', seen);
if (seen === flow.get('total')) { flow.set('ms', Date.now() - flow.get('start')); }
return null;
"""
RESULT_JS = "msg.payload = {run: flow.get('run'), seen: flow.get('seen'), ms: flow.get('ms')};\nreturn msg;"


def server_flow(with_function: bool = True) -> list[dict]:
    """The same flow JSON for both servers. POST /bench {"count": N}: a driver function node sends N messages
    through the benchmarked function node `f` (left out for the harness alone) to a counter function node, which
    keeps in flow context when the last one arrived; GET /result answers {seen, ms}. GET /one: one message
    through `f` and back (latency)."""

    def fn(id_: str, body: str, wires: list) -> dict:
        return {
            "id": id_,
            "type": "function",
            "z": "t",
            "func": body.strip(),
            "outputs": 1,
            "timeout": 0,
            "noerr": 0,
            "initialize": "",
            "finalize": "",
            "libs": [],
            "x": 1,
            "y": 1,
            "wires": wires,
        }

    def http_in(id_: str, url: str, method: str, wires: list) -> dict:
        return {
            "id": id_,
            "type": "http in",
            "z": "t",
            "url": url,
            "method": method,
            "upload": False,
            "swaggerDoc": "",
            "x": 1,
            "y": 1,
            "wires": wires,
        }

    def response(id_: str) -> dict:
        return {"id": id_, "type": "http response", "z": "t", "statusCode": "", "headers": {}, "x": 1, "y": 1}

    return [
        TAB,
        http_in("start", "/bench", "post", [["driver", "ack"]]),
        response("ack"),
        fn("driver", DRIVER_JS, [["f" if with_function else "count"]]),
        *([fn("f", JS_BODY, [["count"]])] if with_function else []),
        fn("count", COUNTER_JS, [[]]),
        http_in("result", "/result", "get", [["read"]]),
        fn("read", RESULT_JS, [["answer"]]),
        response("answer"),
        http_in("one", "/one", "get", [["f1"]]),
        fn("f1", "msg.payload = String(Number(msg.payload.payload) + 1);\nreturn msg;", [["answer1"]]),
        response("answer1"),
    ]


_runs = itertools.count(1)


def _backlog_rate(call, count: int, timeout: float = 120.0) -> float:
    """Calls/s of one burst of `count` on a server (`call(method, path, body)` -> (status, bytes)): every message
    must reach the counter."""
    run = next(_runs)
    status, body = call("POST", "/bench", {"count": count, "run": run})
    if status != 200:
        raise RuntimeError(f"POST /bench: {status} {body[:300]!r}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = call("GET", "/result", None)
        result = json.loads(body) if status == 200 else {}
        if result.get("run") == run and result.get("ms") is not None:
            if result["seen"] != count:
                raise RuntimeError(f"{result['seen']} of {count} messages arrived")
            return count / (max(result["ms"], 1) / 1000)
        time.sleep(0.05)
    raise TimeoutError(f"the burst of {count} did not finish within {timeout} s")


def _latency_ms(url: str, rounds: int = 300) -> tuple[float, float]:
    """(median, 99th percentile) ms of GET /one, one request at a time on one kept-alive connection."""
    import http.client
    import urllib.parse

    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    times = []
    try:
        for i in range(rounds + 20):
            started = time.perf_counter()
            conn.request("GET", f"/one?payload={i}")
            answer = conn.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"GET /one: {answer.status}")
            if i >= 20:  # the first ones warm up
                times.append((time.perf_counter() - started) * 1000)
    finally:
        conn.close()
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


def _measure_server(start, count: int) -> dict:
    """Backlog calls/s with `f`, the harness alone (no `f`), and the latency of one message on a server that
    `start(flows)` runs (a context manager with .request and .url)."""
    out = {}
    for key, flows in (("with", server_flow(True)), ("harness", server_flow(False))):
        with start(flows) as server:

            def call(method, path, body, server=server):
                status, data = server.request(method, path, body)
                return status, data.encode() if isinstance(data, str) else data

            _backlog_rate(call, min(count, 2000))  # warm up
            meter = CpuMeter(server.proc.pid)
            out[key] = _backlog_rate(call, count)
            spent = meter.spent()
            out[key + "_cpu"] = per_10k(spent["server"], count)
            out[key + "_worker_cpu"] = per_10k(spent["workers"], count)
            if key == "with":
                out["latency"] = _latency_ms(server.url)
    out["net"] = 1 / (1 / out["with"] - 1 / out["harness"]) if out["with"] < out["harness"] else float("nan")
    for part in ("cpu", "worker_cpu"):
        out["net_" + part] = out["with_" + part] - out["harness_" + part]
    return out


def server_comparison(count: int) -> tuple[dict, dict | None]:
    """The JavaScript function node under a backlog and one message's latency, both systems as servers fed over
    HTTP with the same flow JSON (sofiaflow's isolate where `sofiaflow run` puts an administrator's flow)."""
    from sofiaflow_server import SofiaflowServer

    ours = _measure_server(
        lambda flows: SofiaflowServer(flows, env={"SOFIAFLOW_DEFAULT_FLOWS": "none"}), count
    )
    theirs = _measure_server(NodeRed, count) if find_node_red() is not None else None
    return ours, theirs


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    ours, theirs = server_comparison(count)
    js = asyncio.run(sofiaflow_calls_per_second("function", JS_BODY, count))
    py = asyncio.run(sofiaflow_calls_per_second("python function", PY_BODY, count))
    py_worker = asyncio.run(sofiaflow_calls_per_second("python function", PY_BODY, count, "process"))
    latency = asyncio.run(single_message_latency_ms(None))
    latency_worker = asyncio.run(single_message_latency_ms("process"))
    memory, deploy_ms = asyncio.run(isolate_memory())

    def cell(result: dict | None, key: str) -> str:
        return f"{result[key]:>12,.0f}" if result else f"{'not measured':>12}"

    print(f"JavaScript function node, both as servers fed over HTTP, the same flow JSON ({count:,} messages)")
    print(f"  {'':<46}{'sofiaflow':>12}{'Node-RED':>12}")
    print(f"  {'calls/s, burst with the function node':<46}{cell(ours, 'with')}{cell(theirs, 'with')}")
    print(
        f"  {'calls/s, the harness alone (no function)':<46}{cell(ours, 'harness')}{cell(theirs, 'harness')}"
    )
    print(f"  {'calls/s of the function node, net of harness':<46}{cell(ours, 'net')}{cell(theirs, 'net')}")

    def cpu(result: dict | None, key: str) -> str:
        return f"{result[key]:>12.3f}" if result else f"{'not measured':>12}"

    for label, part in (("server", "cpu"), ("sandbox worker", "worker_cpu")):
        for what in ("with", "net"):
            name = f"CPU s/10k msgs, {label}, {'burst' if what == 'with' else 'net of harness'}"
            print(f"  {name:<46}{cpu(ours, what + '_' + part)}{cpu(theirs, what + '_' + part)}")
    for label, index in (("median", 0), ("p99", 1)):
        mine = f"{ours['latency'][index]:>12.3f}"
        other = f"{theirs['latency'][index]:>12.3f}" if theirs else f"{'not measured':>12}"
        print(f"  {'one message over HTTP, ' + label + ' ms':<46}{mine}{other}")
    print("  (harness: an http in, a driver function node sending the burst and a counter function node)")
    print(
        "  (CPU s/10k msgs: CPU seconds of the process per 10,000 messages of the burst, steadier than calls/s on"
    )
    print(
        "   a busy machine; the sandbox worker runs sofiaflow's JavaScript, Node-RED runs it in its one process)"
    )
    print(f"function node calls/s in process, FlowTester ({count} messages, one node, this machine)")
    print(f"  sofiaflow JavaScript function : {js:>10,.0f}")
    print(f"  sofiaflow python function     : {py:>10,.0f}")
    print(f"100 JavaScript function nodes: +{memory:.0f} MB RSS, deployed in {deploy_ms:.0f} ms")
    print(f"python function                    {'in process':>14} {'sandbox worker':>16}")
    print(f"  calls/s, backlog of {count:<7,}      {py:>14,.0f} {py_worker:>16,.0f}")
    print(
        f"  one message, median / p99 ms     {latency[0]:>6.3f} / {latency[1]:<6.3f}"
        f" {latency_worker[0]:>7.3f} / {latency_worker[1]:<6.3f}"
    )


if __name__ == "__main__":
    main()
