"""Keyed-partition benchmark: msgs/s through `partition -> sink` on one worker (the PARTITIONS service on a real
redis-server, append-only), the whole keyed path: XADD (pipelined per batch), fenced XREADGROUP of every held
partition, the flow, and one XACK per partition batch once the flow is done. Also the same flow alone (no Redis:
messages pass on). Prints msgs/s; the keyed figure is checked against 10,000 msgs/s only when asked (--check).

Run: python tests/bench/cluster_keyed.py [count] [--check]     (default 20000 messages, 1000 keys, 64 partitions)
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
# this folder holds http.py: keep it behind the standard library on sys.path (tests/bench/cluster.py imports this)
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [
    str(HERE),
    str(TESTS),
    str(TESTS.parent),
]

from redis_server import start_redis  # noqa: E402

from sofiaflow.runtime.api import PARTITIONS, Node, NodeConfig  # noqa: E402
from sofiaflow.runtime.cluster.membership import HEARTBEAT_PREFIX  # noqa: E402
from sofiaflow.runtime.cluster.partitions import Partitions  # noqa: E402
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry  # noqa: E402
from sofiaflow.runtime.testing import FlowTester  # noqa: E402

TARGET = 10_000.0
KEYS = 1000
PARTITIONS_N = 64


class CountConfig(NodeConfig):
    pass


class CountNode(Node[CountConfig]):
    type = "bench-count"
    total = 0

    def on_input(self, msg: dict[str, Any]) -> None:
        CountNode.total += 1


def flows() -> list[dict[str, Any]]:
    return [
        {"id": "t", "type": "tab"},
        {
            "id": "part",
            "type": "partition",
            "z": "t",
            "key": "device",
            "keyType": "msg",
            "partitions": PARTITIONS_N,
            "inflight": 200,
            "wires": [["count"]],
        },
        {"id": "count", "type": "bench-count", "z": "t", "wires": []},
    ]


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    base = default_registry()
    for cls in base.types():
        reg.register(cls, base.origin(cls.type))
    reg.register(CountNode, "bench")
    return reg


async def run(count: int, url: str | None) -> float:
    """msgs/s of `count` messages from the first inject until the sink has them all (and, keyed, acked)."""
    tester = FlowTester(flows(), registry=registry())
    redis = None
    if url is not None:
        from redis.asyncio import Redis

        redis = Redis.from_url(url, decode_responses=True)
        await redis.set(HEARTBEAT_PREFIX + "bench", json.dumps({"id": "bench"}), px=600_000)
        tester.engine.services[PARTITIONS] = Partitions(redis, "bench", lease=5.0)
    CountNode.total = 0
    async with tester:
        if redis is not None:
            group = tester.engine.services[PARTITIONS].groups["part"]
            deadline = time.monotonic() + 30
            while len(group.held) < PARTITIONS_N and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        msgs = [{"device": f"d{i % KEYS}", "payload": {"seq": i // KEYS, "v": i}} for i in range(count)]
        started = time.perf_counter()
        for i, msg in enumerate(msgs):
            tester.inject("part", msg)
            if i % 2000 == 1999:
                await asyncio.sleep(0)  # let the writer and the readers run, as a source would
        deadline = time.monotonic() + 120
        while CountNode.total < count and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if redis is not None:
            while group.stats.processed < count and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        if CountNode.total < count:
            raise SystemExit(f"only {CountNode.total} of {count} messages within 120 s")
    if redis is not None:
        await redis.aclose()
    return count / elapsed


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 20_000
    server = start_redis()
    try:
        alone = asyncio.run(run(count, None))
        keyed = asyncio.run(run(count, server.url))
    finally:
        server.stop()
    print(f"partition alone (no Redis):           {alone:>10,.0f} msgs/s")
    print(f"partition keyed (Redis streams, 1 w): {keyed:>10,.0f} msgs/s   (aim {TARGET:,.0f})")
    if "--check" in sys.argv and keyed < TARGET:
        raise SystemExit(f"keyed path: {keyed:,.0f} msgs/s, under {TARGET:,.0f}")


if __name__ == "__main__":
    main()
