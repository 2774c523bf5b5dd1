"""Engine benchmark: sofiaflow beside Node-RED on the same flow JSON, on this machine.

* msgs/s through a chain of 10 alternating change and switch nodes, fed a burst of 100,000
  messages (all at once, and with at most 1,000 in flight). Each system is fed by its own
  harness (sofiaflow: a loop delivering to the first node in-process, counted at the last;
  Node-RED: a feeder and a counter function node), so each harness is also timed alone, with no
  chain, and printed, and the chain's rate net of its harness is printed beside the raw one.
  Every run checks that all messages arrived.
* both as servers: the time a running, empty server takes to answer POST /flows with a full
  deploy of 1,000 such nodes (plus their 100 inject nodes), and its RSS before and after.

Run: python tests/bench/engine.py [count]      (Node-RED figures need Node-RED from npm; see README)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parents[1]))

from nodered import find_node_red  # noqa: E402
from nodered_chain import chain_flow, deploy_flow, measure_chain, measure_deploy  # noqa: E402
from sofiaflow_server import SofiaflowServer  # noqa: E402


async def _chain_run(count: int, window: int) -> dict:
    from cryptography.fernet import Fernet

    from sofiaflow.runtime.core.engine import Engine
    from sofiaflow.runtime.flows.deploy import Deployer
    from sofiaflow.runtime.flows.registry import default_registry
    from sofiaflow.runtime.security.credentials import CredentialStore

    chain = chain_flow(10).chain
    z = chain[0]["z"]
    flows = [{"id": z, "type": "tab", "label": "bench"}, *chain]
    engine = Engine(high_water=window or 10**9)
    deployer = Deployer(engine, default_registry(), CredentialStore(None, Fernet.generate_key()))
    deployer.state = "start"
    await deployer.deploy(flows)
    first, last = engine.nodes[chain[0]["id"]], engine.nodes[chain[-1]["id"]]
    for warm in range(2000):
        engine.deliver(first.id, {"_msgid": "w", "payload": warm})
    await engine.idle()
    base = last.count_in
    started = time.perf_counter()
    for i in range(count):
        if window and engine.pending >= window:
            await engine.wait_capacity()
        engine.deliver(first.id, {"_msgid": f"{i:016x}", "payload": i})
    await engine.idle()
    elapsed = time.perf_counter() - started
    assert last.count_in - base == count, (last.count_in, count)
    await deployer.stop()
    return {"msgs_per_s": count / elapsed, "elapsed_s": elapsed, "count": count}


async def _harness_run(count: int, window: int) -> dict:
    """The in-process harness alone: the same loop delivering to one junction node, counted there."""
    from cryptography.fernet import Fernet

    from sofiaflow.runtime.core.engine import Engine
    from sofiaflow.runtime.flows.deploy import Deployer
    from sofiaflow.runtime.flows.registry import default_registry
    from sofiaflow.runtime.security.credentials import CredentialStore

    flows = [{"id": "bench", "type": "tab", "label": "bench"}, {"id": "j", "type": "junction", "z": "bench"}]
    engine = Engine(high_water=window or 10**9)
    deployer = Deployer(engine, default_registry(), CredentialStore(None, Fernet.generate_key()))
    deployer.state = "start"
    await deployer.deploy(flows)
    node = engine.nodes["j"]
    for warm in range(2000):
        engine.deliver("j", {"_msgid": "w", "payload": warm})
    await engine.idle()
    base = node.count_in
    started = time.perf_counter()
    for i in range(count):
        if window and engine.pending >= window:
            await engine.wait_capacity()
        engine.deliver("j", {"_msgid": f"{i:016x}", "payload": i})
    await engine.idle()
    elapsed = time.perf_counter() - started
    assert node.count_in - base == count, (node.count_in, count)
    await deployer.stop()
    return {"msgs_per_s": count / elapsed, "elapsed_s": elapsed, "count": count}


def _deploy_server(n_nodes: int, settle_s: float = 2.0) -> dict:
    """Full deploy of deploy_flow(n_nodes) to a running, empty `sofiaflow run`: time and RSS, as for Node-RED."""
    flow = deploy_flow(n_nodes)
    with SofiaflowServer([], env={"SOFIAFLOW_DEFAULT_FLOWS": "none"}) as sf:
        sf.request("GET", "/sofiaflow-ping")  # the first 404 builds the router's state: not part of a deploy
        time.sleep(settle_s)
        before = sf.rss_mb()
        started = time.perf_counter()
        status, body = sf.request("POST", "/flows", flow)
        deploy_s = time.perf_counter() - started
        if status not in (200, 204):
            raise RuntimeError(f"deploy failed: {status} {body[:500]}")
        sf.request("GET", "/sofiaflow-ping")  # served once the event loop is free again
        ready_s = time.perf_counter() - started
        time.sleep(settle_s)
        after = sf.rss_mb()
        status, body = sf.request("GET", "/flows")
        deployed = len(json.loads(body)) if status == 200 else -1
        if deployed != len(flow):
            raise RuntimeError(f"sofiaflow holds {deployed} of the {len(flow)} deployed objects")
    return {"deploy_s": deploy_s, "ready_s": ready_s, "rss_mb_before": before, "rss_mb_after": after}


def _in_subprocess(call: str) -> dict:
    """Run `call` (e.g. "_chain_run(100000, 0)") in a fresh interpreter, so RSS and caches are its own."""
    code = (
        f"import asyncio, json, sys; sys.path.append({str(HERE)!r}); import engine; "
        f"print(json.dumps(asyncio.run(engine.{call})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def _net(run: dict, harness: dict) -> float:
    """msgs/s of the chain net of its harness: count over (elapsed - the harness's elapsed for as many)."""
    net = run["elapsed_s"] - harness["elapsed_s"] * run["count"] / harness["count"]
    return run["count"] / net if net > 0 else float("nan")


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 100_000
    ours = {
        "flood": _in_subprocess(f"_chain_run({count}, 0)"),
        "window": _in_subprocess(f"_chain_run({count}, 1000)"),
        "harness": _in_subprocess(f"_harness_run({count}, 0)"),
        "harness_window": _in_subprocess(f"_harness_run({count}, 1000)"),
        "deploy": _deploy_server(1000),
    }
    nr = None
    if find_node_red() is not None:
        nr = {
            "flood": measure_chain(count),
            "window": measure_chain(count, window=1000),
            "harness": measure_chain(count, n_nodes=0),
            "harness_window": measure_chain(count, n_nodes=0, window=1000),
            "deploy": measure_deploy(),
        }

    def row(label: str, pick, fmt: str) -> tuple:
        return (label, pick(ours), nr and pick(nr), fmt)

    rows = [
        row("10-node change/switch chain, burst, msgs/s", lambda r: r["flood"]["msgs_per_s"], "{:,.0f}"),
        row("  harness alone (no chain), msgs/s", lambda r: r["harness"]["msgs_per_s"], "{:,.0f}"),
        row("  chain net of harness, msgs/s", lambda r: _net(r["flood"], r["harness"]), "{:,.0f}"),
        row("same, at most 1,000 in flight, msgs/s", lambda r: r["window"]["msgs_per_s"], "{:,.0f}"),
        row("  harness alone (no chain), msgs/s", lambda r: r["harness_window"]["msgs_per_s"], "{:,.0f}"),
        row("  chain net of harness, msgs/s", lambda r: _net(r["window"], r["harness_window"]), "{:,.0f}"),
        row("server: POST /flows, 1,000 nodes + 100 injects, s", lambda r: r["deploy"]["deploy_s"], "{:.3f}"),
        row("  until the next request is served, s", lambda r: r["deploy"]["ready_s"], "{:.3f}"),
        row("server: RSS before deploy, MB", lambda r: r["deploy"]["rss_mb_before"], "{:.1f}"),
        row("server: RSS after deploy, MB", lambda r: r["deploy"]["rss_mb_after"], "{:.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"engine benchmark, {count:,} messages, {os.cpu_count()} cores (all messages arrived in every run)")
    print(f"  {'measure':<{width}}  {'sofiaflow':>12}  {'Node-RED':>12}  ratio")
    for label, mine, theirs, fmt in rows:
        ratio = f"{mine / theirs:.2f}x" if theirs else ""
        theirs_text = fmt.format(theirs) if theirs else "not measured"
        print(f"  {label:<{width}}  {fmt.format(mine):>12}  {theirs_text:>12}  {ratio}")
    print(
        "  harness: sofiaflow, a loop delivering in-process and counting at the last node; Node-RED, a feeder"
        " and a counter function node (global context per message)"
    )
    if nr is None:
        print(
            "  Node-RED was not found (npm install node-red@4.1.15; see tests/bench/nodered.py): not measured"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
