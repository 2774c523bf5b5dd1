"""JavaScript function node benchmark: the isolate in the server process vs in a sandbox worker process.

One node whose body is `msg.payload = msg.payload + 1; return msg;` gets a backlog of messages (calls/s until
the last result is out), then single messages one after the other (latency, median and 99th percentile).
In the worker the engine hands the node what waits in its inbox, so a backlog crosses in batches.

Run: python tests/bench/js_function.py [messages]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parents[1]))

from cpu import CpuMeter, per_10k  # noqa: E402

from sofiaflow.runtime.flows.registry import default_registry  # noqa: E402
from tests.js_sandbox_helpers import js_tester  # noqa: E402

BODY = "msg.payload = msg.payload + 1;\nreturn msg;"
TAB = {"id": "t", "type": "tab", "label": "bench"}
FLOWS = [TAB, {"id": "f", "type": "function", "z": "t", "func": BODY, "outputs": 1, "wires": [[]]}]


async def measure(mode: str, messages: int, singles: int = 300) -> tuple[float, float, float, float, float]:
    """(calls/s under a backlog, median and p99 latency in ms of single messages, CPU seconds per 10,000 messages
    of the backlog in this process and in the sandbox worker) for `mode`."""
    async with js_tester(FLOWS, default_registry(), mode=mode) as t:
        for i in range(200):  # warm up: worker started, isolate open, code compiled
            t.inject("f", {"payload": i})
        await t.idle()
        t.clear()
        meter = CpuMeter(os.getpid())
        started = time.perf_counter()
        for i in range(messages):
            t.inject("f", {"payload": i})
        await t.idle()
        rate = messages / (time.perf_counter() - started)
        spent = meter.spent()
        assert t.payloads("f") == [i + 1 for i in range(messages)]
        latencies = []
        for i in range(singles):
            started = time.perf_counter()
            t.inject("f", {"payload": i})
            await t.idle()
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        return (
            rate,
            statistics.median(latencies),
            latencies[int(len(latencies) * 0.99) - 1],
            per_10k(spent["server"], messages),
            per_10k(spent["workers"], messages),
        )


async def main(messages: int) -> None:
    print(f"JavaScript function 'add 1', {messages} messages of backlog, then single messages")
    print(
        f"{'where the isolate runs':<28}{'calls/s':>12}{'median ms':>12}{'p99 ms':>10}"
        f"{'CPU s/10k: host':>17}{'worker':>8}"
    )
    for mode, label in (("in-process", "server process"), ("process", "sandbox worker process")):
        rate, median, p99, host, worker = await measure(mode, messages)
        print(f"{label:<28}{rate:>12,.0f}{median:>12.3f}{p99:>10.3f}{host:>17.3f}{worker:>8.3f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
