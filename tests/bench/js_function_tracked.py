"""JavaScript function node under messages whose source waits for the flows to finish them (`mqtt in` at QoS 1).

One node whose body is `msg.payload = msg.payload + 1; return msg;` gets a backlog of messages, untracked (QoS 0)
and tracked as `mqtt in` tracks a QoS 1 message (runtime/core/completion.py: the acknowledgement goes out once the
message and what it caused are done). Prints calls/s until the last message is acknowledged and the CPU seconds
per 10,000 messages in this process and in the sandbox worker, for the isolate in the server process and in a
worker. Wall-clock rates swing on a shared machine; the CPU figures much less.

Run: python tests/bench/js_function_tracked.py [messages]
"""

from __future__ import annotations

import asyncio
import os
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
FLOWS = [
    TAB,
    {"id": "f", "type": "function", "z": "t", "func": BODY, "outputs": 1, "wires": [["end"]]},
    {"id": "end", "type": "junction", "z": "t", "wires": [[]]},
]


async def measure(mode: str, messages: int, tracked: bool) -> tuple[float, float, float]:
    """(messages/s until the last is finished, CPU seconds per 10,000 messages in this process and in the sandbox
    worker) for a backlog of `messages` in `mode`, tracked or not."""
    async with js_tester(FLOWS, default_registry(), mode=mode) as t:
        for i in range(200):  # warm up: worker started, isolate open, code compiled
            t.inject("f", {"payload": i})
        await t.idle()
        t.clear()
        acked = [0]

        def ack() -> None:
            acked[0] += 1

        meter = CpuMeter(os.getpid())
        started = time.perf_counter()
        for i in range(messages):
            msg = {"_msgid": f"m{i}", "payload": i}
            if tracked:
                t.engine.completion.track(msg, ack)
            t.engine.deliver("f", msg)
            if tracked:
                t.engine.completion.release(msg)
        await t.idle()
        rate = messages / (time.perf_counter() - started)
        spent = meter.spent()
        assert t.payloads("end") == [i + 1 for i in range(messages)]
        assert acked[0] == (messages if tracked else 0), acked[0]
        assert t.engine.completion.tickets == {}
        return rate, per_10k(spent["server"], messages), per_10k(spent["workers"], messages)


async def main(messages: int) -> None:
    print(
        f"JavaScript function 'add 1', a backlog of {messages} messages, untracked (QoS 0) and tracked (QoS 1)"
    )
    print(f"{'where the isolate runs':<26}{'messages':>10}{'msgs/s':>10}{'CPU s/10k: host':>17}{'worker':>8}")
    for mode, label in (("in-process", "server process"), ("process", "sandbox worker process")):
        for tracked in (False, True):
            rate, host, worker = await measure(mode, messages, tracked)
            kind = "QoS 1" if tracked else "QoS 0"
            print(f"{label:<26}{kind:>10}{rate:>10,.0f}{host:>17.3f}{worker:>8.3f}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
