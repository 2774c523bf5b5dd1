"""Engine benchmark: sofiaflow beside Node-RED on the same flow JSON, on this machine.

* msgs/s through a chain of 10 alternating change and switch nodes, fed a burst of 100,000
  messages (all at once, and with at most 1,000 in flight);
* the time of a full deploy of 1,000 such nodes (plus their inject nodes) and the RSS after it.

Run: python tests/bench/engine.py [count]      (Node-RED figures need Node-RED from npm; see README)
"""

from __future__ import annotations

import asyncio
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


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


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


async def _deploy_run(n_nodes: int) -> dict:
    from cryptography.fernet import Fernet

    from sofiaflow.runtime.core.engine import Engine
    from sofiaflow.runtime.flows.deploy import Deployer
    from sofiaflow.runtime.flows.registry import default_registry
    from sofiaflow.runtime.security.credentials import CredentialStore

    flows = deploy_flow(n_nodes)
    registry = default_registry()
    engine = Engine()
    deployer = Deployer(engine, registry, CredentialStore(None, Fernet.generate_key()))
    deployer.state = "start"
    await asyncio.sleep(0.5)
    before = _rss_mb()
    started = time.perf_counter()
    await deployer.deploy(flows)
    deploy_s = time.perf_counter() - started
    await asyncio.sleep(2.0)
    after = _rss_mb()
    nodes = len(engine.nodes)
    await deployer.stop()
    return {"deploy_s": deploy_s, "rss_mb_before": before, "rss_mb_after": after, "nodes": nodes}


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


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 100_000
    ours_flood = _in_subprocess(f"_chain_run({count}, 0)")
    ours_window = _in_subprocess(f"_chain_run({count}, 1000)")
    ours_deploy = _in_subprocess("_deploy_run(1000)")
    nr = None
    if find_node_red() is not None:
        nr = {
            "flood": measure_chain(count),
            "window": measure_chain(count, window=1000),
            "deploy": measure_deploy(),
        }
    rows = [
        (
            "10-node change/switch chain, burst, msgs/s",
            ours_flood["msgs_per_s"],
            nr and nr["flood"]["msgs_per_s"],
            "{:,.0f}",
        ),
        (
            "same, at most 1,000 in flight, msgs/s",
            ours_window["msgs_per_s"],
            nr and nr["window"]["msgs_per_s"],
            "{:,.0f}",
        ),
        (
            "full deploy of 1,000 nodes + 100 injects, s",
            ours_deploy["deploy_s"],
            nr and nr["deploy"]["deploy_s"],
            "{:.3f}",
        ),
        (
            "RSS before deploy, MB",
            ours_deploy["rss_mb_before"],
            nr and nr["deploy"]["rss_mb_before"],
            "{:.1f}",
        ),
        ("RSS after deploy, MB", ours_deploy["rss_mb_after"], nr and nr["deploy"]["rss_mb_after"], "{:.1f}"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"engine benchmark, {count:,} messages, {os.cpu_count()} cores")
    print(f"  {'measure':<{width}}  {'sofiaflow':>12}  {'Node-RED':>12}  ratio")
    for label, ours, theirs, fmt in rows:
        ratio = f"{ours / theirs:.2f}x" if theirs else ""
        theirs_text = fmt.format(theirs) if theirs else "not measured"
        print(f"  {label:<{width}}  {fmt.format(ours):>12}  {theirs_text:>12}  {ratio}")
    if nr is None:
        print(
            "  Node-RED was not found (npm install node-red@4.1.15; see tests/bench/nodered.py): not measured"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
