"""Function node benchmark: calls/s of a trivial JavaScript function node, of the same logic as a
Python function node, and of Node-RED's own function node, on this machine.

Each runtime gets a burst of messages into one node whose body is `msg.payload = msg.payload + 1;
return msg;` and the time until the last result is out is measured inside the runtime.
sofiaflow runs in-process (FlowTester); Node-RED runs its own process, driven by an http request
that makes a function node send the burst and answers when a counter has seen every result.
Also prints the memory of 100 JavaScript function nodes (one V8 isolate each), and the python function
in process beside the same node with its body in a sandbox worker process (functionIsolation "process"):
calls/s under a backlog and the latency of a single message.

Run: python tests/bench/function.py [messages]      (Node-RED figures need Node-RED; see README)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parents[1]))

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


def node_red_flow(count: int) -> list[dict]:
    driver = (
        "var start = Date.now(); flow.set('start', start); flow.set('seen', 0); flow.set('res', msg.res);"
        f"for (var i = 0; i < {count}; i++) {{ node.send({{payload: i}}); }} return null;"
    )
    counter = (
        f"var seen = flow.get('seen') + 1; flow.set('seen', seen); if (seen === {count}) {{"
        " var m = {payload: {ms: Date.now() - flow.get('start')}, res: flow.get('res')}; return m; }"
        " return null;"
    )

    def fn(id_, body, wires):
        return {
            "id": id_,
            "type": "function",
            "z": "t",
            "func": body,
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

    return [
        TAB,
        {
            "id": "in",
            "type": "http in",
            "z": "t",
            "url": "/bench",
            "method": "get",
            "upload": False,
            "swaggerDoc": "",
            "x": 1,
            "y": 1,
            "wires": [["driver"]],
        },
        fn("driver", driver, [["f"]]),
        fn("f", JS_BODY, [["count"]]),
        fn("count", counter, [["out"]]),
        {
            "id": "out",
            "type": "http response",
            "z": "t",
            "statusCode": "",
            "headers": {},
            "x": 1,
            "y": 1,
            "wires": [],
        },
    ]


def node_red_calls_per_second(count: int) -> float | None:
    """Calls/s of the trivial function node inside Node-RED (the driver and counter nodes add their share)."""
    if find_node_red() is None:
        return None
    with NodeRed(node_red_flow(count)) as nr:
        nr.request("GET", "/bench", timeout=120)  # warm up
        status, body = nr.request("GET", "/bench", timeout=120)
        if status != 200:
            raise RuntimeError(f"Node-RED answered {status}: {body[:300]!r}")
        ms = json.loads(body)["ms"]
    return count / (ms / 1000) if ms else float("inf")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    js = asyncio.run(sofiaflow_calls_per_second("function", JS_BODY, count))
    py = asyncio.run(sofiaflow_calls_per_second("python function", PY_BODY, count))
    py_worker = asyncio.run(sofiaflow_calls_per_second("python function", PY_BODY, count, "process"))
    latency = asyncio.run(single_message_latency_ms(None))
    latency_worker = asyncio.run(single_message_latency_ms("process"))
    memory, deploy_ms = asyncio.run(isolate_memory())
    nr = node_red_calls_per_second(count)
    print(f"function node calls/s ({count} messages, one node, this machine)")
    print(f"  sofiaflow JavaScript function : {js:>10,.0f}")
    print(f"  sofiaflow python function     : {py:>10,.0f}")
    print(
        f"  Node-RED function             : {nr:>10,.0f}"
        if nr
        else "  Node-RED function             : (Node-RED not installed)"
    )
    print(f"100 JavaScript function nodes: +{memory:.0f} MB RSS, deployed in {deploy_ms:.0f} ms")
    print(f"python function                    {'in process':>14} {'sandbox worker':>16}")
    print(f"  calls/s, backlog of {count:<7,}      {py:>14,.0f} {py_worker:>16,.0f}")
    print(
        f"  one message, median / p99 ms     {latency[0]:>6.3f} / {latency[1]:<6.3f}"
        f" {latency_worker[0]:>7.3f} / {latency_worker[1]:<6.3f}"
    )


if __name__ == "__main__":
    main()
