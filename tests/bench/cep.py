"""CEP benchmark: a keyed 1-minute sliding average over 1,000 keys (one event per key per second), by the window
node and by the cep query node, beside Node-RED doing the same in function nodes.

sofiaflow, in-process through its engine (virtual clock, moved on a second every 1,000 events, at most 1,000
messages in flight):
  - the window state alone, the window node's handler alone, the window node through the engine;
  - the cep query `from Temp#window.time(1 min) select deviceId, avg(value) as avgValue group by deviceId
    insert into Avg` through the engine, and the example query (filter, 5-minute window, having);
  - the harness: the same feeding loop delivering to a junction that sends nothing on;
  - memory per 1,000 keys once the windows are full (60 events each), window store and query.
Node-RED 4 (if installed), in its own process through its own engine: a function node feeds the events in
batches of 1,000 (at most 1,000 in flight), a function node computes the same thing from its context (the
keyed sliding average; the example query's logic), a function node counts what comes out; the harness alone
is the feeder wired to the counter. Event times are the messages' own (1 per key per second), as sofiaflow's
virtual clock gives them, so both hold the same windows.

Every event is counted on both sides (events in, rows out; the row counts must agree). Rates are events per
wall-clock second and per CPU second of the process doing the work (the second is steadier on a busy
machine). No figure is asserted.

Run: python tests/bench/cep.py [events]        (--profile: a cProfile of the window node through the engine;
--no-nodered: sofiaflow only)
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it off sys.path, ahead of which the standard library must stay
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parents[1]))

from sofiaflow.nodes.cep.query_grammar import parse  # noqa: E402
from sofiaflow.nodes.cep.query_plan import WindowQuery  # noqa: E402
from sofiaflow.nodes.cep.state import Spec, WindowStore  # noqa: E402
from sofiaflow.runtime.core.clock import VirtualClock  # noqa: E402
from sofiaflow.runtime.core.engine import Engine  # noqa: E402
from sofiaflow.runtime.flows.deploy import Deployer  # noqa: E402
from sofiaflow.runtime.flows.registry import default_registry  # noqa: E402
from sofiaflow.runtime.security.credentials import CredentialStore  # noqa: E402
from tests.bench.nodered import NodeRed, find_node_red  # noqa: E402

KEYS = 1_000
SPEC = Spec("sliding", "time", 60_000, "avg")
AVG_QUERY = (
    "from Temp#window.time(1 min) select deviceId, avg(value) as avgValue group by deviceId insert into Avg"
)
EXAMPLE_QUERY = (
    "from Temp[value > 30]#window.time(5 min) select deviceId, avg(value) as avgValue group by deviceId "
    "having avgValue > 35 insert into Alerts"
)
TOPICS = [f"device-{k}" for k in range(KEYS)]
CYCLE = KEYS * 30
IN_FLIGHT = 1_000
"""At most this many messages in flight, on both sides (a larger backlog outlives the young garbage collector
generations and makes sofiaflow pay for full collections: 10,000 in flight halve its rates)."""


def value_of(i: int) -> float:
    """The i-th event's value: 20 to 49, so the example query's filter and having both matter (a cycle of
    CYCLE events, which the feeders hold ready-made)."""
    i %= CYCLE
    return float(20 + (i * 7 + i // KEYS) % 30)


def flow() -> list[dict]:
    tab = {"id": "t1", "type": "tab", "label": "bench"}
    window = {
        "id": "w",
        "type": "window",
        "z": "t1",
        "key": "topic",
        "window": "sliding",
        "measure": "time",
        "size": 1,
        "units": "minutes",
        "aggregate": "avg",
        "emit": "event",
        "wires": [["sink"]],
    }
    queries = [
        {"id": qid, "type": "cep-query", "z": "t1", "query": text, "wires": [["sink"]]}
        for qid, text in (("q", AVG_QUERY), ("x", EXAMPLE_QUERY))
    ]
    return [
        tab,
        window,
        *queries,
        {"id": "sink", "type": "junction", "z": "t1", "wires": []},
        {
            "id": "h",
            "type": "junction",
            "z": "t1",
            "wires": [["sink"]],
        },  # the harness alone: passes events on
    ]


# ----- sofiaflow ----------------------------------------------------------------------------------------------
def bench_state(events: int) -> float:
    store = WindowStore(SPEC, arrival=True)
    add = store.add
    started = time.perf_counter()
    for i in range(events):
        add(TOPICS[i % KEYS], (i // KEYS) * 1000.0, value_of(i))
    return events / (time.perf_counter() - started)


def _bytes_held(fill) -> float:
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    kept = fill()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    del kept
    return sum(stat.size_diff for stat in after.compare_to(before, "filename"))


def memory_per_thousand_keys() -> tuple[float, float]:
    """MB held per 1,000 keys with full 1-minute windows (60 events each): the window store, the avg query."""

    def window():
        store = WindowStore(SPEC, arrival=True)
        for i in range(KEYS * 61):
            store.add(TOPICS[i % KEYS], (i // KEYS) * 1000.0, value_of(i))
        return store

    def query():
        plan = WindowQuery(parse(AVG_QUERY), True, 0, 10_000, 100_000)
        for i in range(KEYS * 61):
            plan.take({"deviceId": TOPICS[i % KEYS], "value": value_of(i)}, (i // KEYS) * 1000.0)
        return plan

    scale = 1_000 / KEYS / 1e6
    return _bytes_held(window) * scale, _bytes_held(query) * scale


def _message(target: str, i: int) -> dict:
    if target in ("w", "h"):
        return {"_msgid": "m", "topic": TOPICS[i % KEYS], "payload": value_of(i)}
    return {"_msgid": "m", "topic": "Temp", "payload": {"deviceId": TOPICS[i % KEYS], "value": value_of(i)}}


async def _through_engine(engine: Engine, clock: VirtualClock, target: str, events: int) -> dict:
    """Deliver `events` to node `target` as the runtime would, all handled; counted in and out."""
    node = engine.nodes[target]
    sink = engine.nodes["sink"]
    ins, outs = node.count_in, sink.count_in
    messages = [_message(target, i) for i in range(CYCLE)]  # built before the clock starts
    deliver = engine.deliver
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(events):
        if i % KEYS == 0:
            clock.advance(1.0)
        if engine.pending >= IN_FLIGHT:
            await engine.idle()
        deliver(target, messages[i % len(messages)].copy())
    await engine.idle()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    counted = node.count_in - ins
    assert counted == events, f"{target}: {counted} of {events} events handled"
    return {"wall": events / wall, "cpu": events / cpu, "rows": sink.count_in - outs}


async def bench_sofiaflow(events: int, profile: bool) -> dict:
    from cryptography.fernet import Fernet

    clock = VirtualClock()
    engine = Engine(clock=clock, high_water=10**9)
    deployer = Deployer(engine, default_registry(), CredentialStore(None, Fernet.generate_key()))
    deployer.state = "start"
    await deployer.deploy(flow())
    try:
        node = engine.nodes["w"]
        handler = node._handler
        wires, node._wires = node._wires, ()  # the handler alone: what it sends goes nowhere
        messages = [_message("w", i) for i in range(CYCLE)]
        started = time.perf_counter()
        for i in range(events):
            if i % KEYS == 0:
                clock.advance(1.0)
            handler(messages[i % CYCLE].copy())
        handler_rate = events / (time.perf_counter() - started)
        node._wires = wires
        out = {"handler": handler_rate}
        for name, target in (("harness", "h"), ("window", "w"), ("query", "q"), ("example", "x")):
            out[name] = await _through_engine(engine, clock, target, events)
        if profile:
            profiler = cProfile.Profile()
            profiler.enable()
            await _through_engine(engine, clock, "w", events)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
        return out
    finally:
        await deployer.stop()


def expected_example_rows(events: int) -> int:
    """The example query's rows, counted from scratch (5-minute windows of values above 30, avg above 35)."""
    windows: dict[str, list[tuple[int, float]]] = {}
    rows = 0
    second = 0
    for i in range(events):
        if i % KEYS == 0:
            second += 1
        value = value_of(i)
        if value <= 30:
            continue
        held = windows.setdefault(TOPICS[i % KEYS], [])
        held.append((second, value))
        while held[0][0] <= second - 300:
            held.pop(0)
        rows += sum(v for _, v in held) / len(held) > 35
    return rows


# ----- Node-RED --------------------------------------------------------------------------------------------------
FEEDER_JS = """
const total = Number(msg.payload.count), kind = msg.payload.kind, KEYS = 1000, WINDOW = 1000;
global.set('bench_total', total);
global.set('bench_in', 0);
global.set('bench_out', 0);
global.set('bench_elapsed_ms', null);
global.set('bench_t0', Date.now());
global.set('bench_reset', true);  // each run starts with empty windows, as sofiaflow's fresh nodes do
let i = 0;
function value(i) { i %= 30000; return 20 + (i * 7 + Math.floor(i / KEYS)) % 30; }
function batch() {
    const room = WINDOW - (i - global.get('bench_in'));
    const end = Math.min(i + Math.max(room, 0), total);
    for (; i < end; i++) {
        const ts = (Math.floor(i / KEYS) + 1) * 1000, device = 'device-' + (i % KEYS);
        if (kind === 'query') node.send([{topic: 'Temp', payload: {deviceId: device, value: value(i), ts: ts}}, null], false);
        else node.send([{topic: device, payload: value(i), ts: ts}, null], false);
    }
    if (i < total) setTimeout(batch, 0);
}
batch();
msg.payload = {started: total};
return [null, msg];
"""

COUNT_IN_JS = """
if (global.get('bench_reset')) { context.set('keys', new Map()); global.set('bench_reset', false); }
const c = global.get('bench_in') + 1;
global.set('bench_in', c);
if (c === global.get('bench_total')) global.set('bench_elapsed_ms', Date.now() - global.get('bench_t0'));
"""

# the window node's work: a keyed 1-minute sliding average, the message sent on with msg.window
WINDOW_JS = """
const SIZE = 60000;
let keys = context.get('keys');
if (!keys) { keys = new Map(); context.set('keys', keys); }
let k = keys.get(msg.topic);
if (!k) { k = {t: [], v: [], head: 0, sum: 0}; keys.set(msg.topic, k); }
const t = msg.ts;
k.t.push(t); k.v.push(msg.payload); k.sum += msg.payload;
while (k.t[k.head] <= t - SIZE) { k.sum -= k.v[k.head]; k.head++; }
if (k.head > 256 && k.head * 2 > k.t.length) { k.t = k.t.slice(k.head); k.v = k.v.slice(k.head); k.head = 0; }
const n = k.t.length - k.head;
msg.payload = k.sum / n;
msg.window = {key: msg.topic, start: t - SIZE, end: t, count: n, aggregate: 'avg', closed: false};
"""

# the example query: from Temp[value > 30]#window.time(5 min) select deviceId, avg(value) as avgValue
# group by deviceId having avgValue > 35 insert into Alerts
QUERY_JS = """
const SIZE = 300000;
const e = msg.payload;
if (msg.topic !== 'Temp' || !(e.value > 30)) return null;
let keys = context.get('keys');
if (!keys) { keys = new Map(); context.set('keys', keys); }
let k = keys.get(e.deviceId);
if (!k) { k = {t: [], v: [], head: 0, sum: 0}; keys.set(e.deviceId, k); }
const t = e.ts;
k.t.push(t); k.v.push(e.value); k.sum += e.value;
while (k.t[k.head] <= t - SIZE) { k.sum -= k.v[k.head]; k.head++; }
if (k.head > 256 && k.head * 2 > k.t.length) { k.t = k.t.slice(k.head); k.v = k.v.slice(k.head); k.head = 0; }
const avg = k.sum / (k.t.length - k.head);
if (!(avg > 35)) return null;
"""

COUNTER_JS = "global.set('bench_out', global.get('bench_out') + 1);\nreturn null;"
RESULT_JS = """
msg.payload = {in: global.get('bench_in') || 0, out: global.get('bench_out') || 0,
               total: global.get('bench_total') || 0, elapsed_ms: global.get('bench_elapsed_ms')};
return msg;
"""


def _function(nid: str, code: str, outputs: int, wires: list) -> dict:
    return {
        "id": nid,
        "type": "function",
        "z": "nrtab",
        "name": nid,
        "func": code.strip(),
        "outputs": outputs,
        "timeout": 0,
        "noerr": 0,
        "initialize": "",
        "finalize": "",
        "libs": [],
        "x": 300,
        "y": 100,
        "wires": wires,
    }


def nodered_flow(subject: str) -> list[dict]:
    """Feeder -> subject (counts what comes in, then does its work) -> counter; POST /bench/start {count, kind},
    GET /bench/result."""
    body = {
        "harness": "return msg;",
        "window": WINDOW_JS + "return msg;",
        "query": QUERY_JS + "return {topic: 'Alerts', payload: {deviceId: e.deviceId, avgValue: avg}};",
    }[subject]
    http = {"type": "http in", "z": "nrtab", "upload": False, "swaggerDoc": "", "x": 100, "y": 40}
    response = {"type": "http response", "z": "nrtab", "statusCode": "", "headers": {}, "x": 500, "y": 40}
    return [
        {"id": "nrtab", "type": "tab", "label": "bench", "disabled": False, "info": ""},
        {**http, "id": "start", "url": "/bench/start", "method": "post", "wires": [["feeder"]]},
        _function("feeder", FEEDER_JS, 2, [["subject"], ["ack"]]),
        {**response, "id": "ack", "wires": []},
        _function("subject", COUNT_IN_JS + body, 1, [["counter"]]),
        _function("counter", COUNTER_JS, 1, [[]]),
        {**http, "id": "result", "url": "/bench/result", "method": "get", "wires": [["resultfn"]]},
        _function("resultfn", RESULT_JS, 1, [["resultout"]]),
        {**response, "id": "resultout", "wires": []},
    ]


def _node_process(nr: NodeRed):
    import psutil

    process = psutil.Process(nr.proc.pid)
    if "node" not in process.name():
        process = next((c for c in process.children(recursive=True) if "node" in c.name()), process)
    return process


def _nodered_run(nr: NodeRed, count: int, kind: str, deadline_s: float = 300.0) -> dict:
    process = _node_process(nr)
    cpu = sum(process.cpu_times()[:2])
    ready = time.monotonic() + 30  # /flows answers before the flows have started
    while True:
        status, body = nr.request("POST", "/bench/start", {"count": count, "kind": kind})
        if status != 404 or time.monotonic() > ready:
            break
        time.sleep(0.2)
    if status != 200:
        raise RuntimeError(f"/bench/start: HTTP {status} {body[:300]!r}")
    deadline = time.monotonic() + deadline_s
    result: dict = {}
    while time.monotonic() < deadline:
        status, body = nr.request("GET", "/bench/result", timeout=30)
        result = json.loads(body) if status == 200 else {}
        if result.get("elapsed_ms") is not None and result.get("in") == count:
            break
        time.sleep(0.05)
    else:
        raise TimeoutError(f"Node-RED run not finished within {deadline_s}s: {result}")
    cpu = sum(process.cpu_times()[:2]) - cpu
    return {
        "wall": count / max(result["elapsed_ms"] / 1000, 1e-3),
        "cpu": count / max(cpu, 1e-3),
        "rows": result["out"],
    }


def bench_nodered(events: int) -> dict:
    out = {}
    for subject, kind in (("harness", "window"), ("window", "window"), ("query", "query")):
        with NodeRed(nodered_flow(subject)) as nr:
            _nodered_run(nr, min(events, 60_000), kind)  # warm-up: V8 compiles the hot paths
            rss = _node_process(nr).memory_info().rss
            out[subject] = _nodered_run(nr, events, kind)
            out[subject]["rss_growth_mb"] = (_node_process(nr).memory_info().rss - rss) / 1e6
    return out


# ----- report -----------------------------------------------------------------------------------------------------
def _cost(rate: float, harness: float) -> str:
    return f"{max(1e6 / rate - 1e6 / harness, 0):6.2f} µs"


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    events = int(args[0]) if args else 300_000
    state = bench_state(events)
    ours = asyncio.run(bench_sofiaflow(events, "--profile" in sys.argv))
    window_mb, query_mb = memory_per_thousand_keys()
    theirs = None
    if "--no-nodered" not in sys.argv and find_node_red():
        theirs = bench_nodered(events)
    expected = expected_example_rows(events)
    assert ours["example"]["rows"] == expected, (ours["example"]["rows"], expected)
    assert ours["window"]["rows"] == ours["query"]["rows"] == events
    print(f"keyed 1-minute sliding average, {KEYS:,} keys, one event per key per second, {events:,} events")
    print(f"  window state alone                 {state:12,.0f} events/s")
    print(f"  window node handler alone          {ours['handler']:12,.0f} events/s")
    print(f"  memory per 1,000 keys, window      {window_mb:12.2f} MB (60 events per key)")
    print(f"  memory per 1,000 keys, avg query   {query_mb:12.2f} MB (60 events per key)")
    print()
    head = f"  {'through the engine':34} {'sofiaflow events/s':>20} {'(per CPU s)':>12} {'cost/event':>11}"
    if theirs:
        head += f" {'Node-RED events/s':>19} {'(per CPU s)':>12} {'cost/event':>11}"
    print(head)
    rows = [
        ("harness alone", "harness", "harness"),
        ("window node / function node", "window", "window"),
        ("cep query: 1-min avg by device", "query", None),
        ("cep query: the example / function", "example", "query"),
    ]
    for label, mine, other in rows:
        line = f"  {label:34} {ours[mine]['wall']:20,.0f} {ours[mine]['cpu']:12,.0f}"
        line += f" {_cost(ours[mine]['cpu'], ours['harness']['cpu']):>11}"
        if theirs and other:
            line += f" {theirs[other]['wall']:19,.0f} {theirs[other]['cpu']:12,.0f}"
            line += f" {_cost(theirs[other]['cpu'], theirs['harness']['cpu']):>11}"
        print(line)
    print(
        f"  rows out: window {ours['window']['rows']:,}, 1-min avg query {ours['query']['rows']:,}, example query"
    )
    print(f"    {ours['example']['rows']:,} (expected {expected:,})", end="")
    if theirs:
        print(f"; Node-RED: window {theirs['window']['rows']:,}, example query {theirs['query']['rows']:,}")
        assert theirs["window"]["rows"] == events and theirs["query"]["rows"] == expected
        growth = theirs["window"]["rss_growth_mb"]
        print(f"  Node-RED RSS growth over the window run (after a warm-up): {growth:.1f} MB")
    else:
        print("; Node-RED not installed (set SOFIAFLOW_NODE_RED)" if not find_node_red() else "")
    print(
        "  cost/event: CPU time per event above the harness alone (feeder -> pass-through -> counter); Node-RED's"
    )
    print(
        "    example query sends on fewer messages than its harness, so its cost shows as at most the harness's"
    )


if __name__ == "__main__":
    main()
