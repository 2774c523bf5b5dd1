"""window benchmark: a keyed 1-minute sliding average over 1,000 keys (one event per key per second).

Prints events/s for the window state alone, for the node's handler (value, key and time read from the
message, the result sent on), and through the engine (messages delivered to a deployed window node and
routed on), then the memory the windows take per 1,000 keys once full (60 events each).

Run: python tests/bench/cep.py [events]        (add --profile for a cProfile of the node's handler)
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import sys
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it off sys.path, ahead of which the standard library must stay
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parents[1]))

from sofiaflow.nodes.cep.state import Spec, WindowStore  # noqa: E402
from sofiaflow.runtime.core.clock import VirtualClock  # noqa: E402
from sofiaflow.runtime.core.engine import Engine  # noqa: E402
from sofiaflow.runtime.flows.deploy import Deployer  # noqa: E402
from sofiaflow.runtime.flows.registry import default_registry  # noqa: E402
from sofiaflow.runtime.security.credentials import CredentialStore  # noqa: E402

KEYS = 1_000
SPEC = Spec("sliding", "time", 60_000, "avg")
FLOW = [
    {"id": "t1", "type": "tab", "label": "bench"},
    {
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
    },
    {"id": "sink", "type": "junction", "z": "t1", "wires": []},
]
TOPICS = [f"device-{k}" for k in range(KEYS)]


def bench_state(events: int) -> float:
    store = WindowStore(SPEC, arrival=True)
    add = store.add
    started = time.perf_counter()
    for i in range(events):
        add(TOPICS[i % KEYS], (i // KEYS) * 1000.0, float(i % 97))
    return events / (time.perf_counter() - started)


def memory_per_thousand_keys() -> float:
    """MB the windows of 1,000 keys hold with 60 events each (a full 1-minute window at one event a second)."""
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    store = WindowStore(SPEC, arrival=True)
    for i in range(KEYS * 61):
        store.add(TOPICS[i % KEYS], (i // KEYS) * 1000.0, float(i % 97))
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    size = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return size / 1e6 * (1_000 / KEYS)


async def _node_and_engine(events: int, profile: bool) -> tuple[float, float]:
    from cryptography.fernet import Fernet

    registry = default_registry()
    clock = VirtualClock()
    engine = Engine(clock=clock, high_water=10**9)
    deployer = Deployer(engine, registry, CredentialStore(None, Fernet.generate_key()))
    deployer.state = "start"
    await deployer.deploy(FLOW)
    try:
        node = engine.nodes["w"]
        msgs = [{"_msgid": "m", "topic": TOPICS[k], "payload": float(k % 97)} for k in range(KEYS)]
        handler = node.on_input
        wires, node._wires = node._wires, ()  # the handler alone: what it sends goes nowhere
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        started = time.perf_counter()
        for i in range(events):
            if i % KEYS == 0:
                clock.advance(1.0)
            handler(dict(msgs[i % KEYS]))
        handler_rate = events / (time.perf_counter() - started)
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
        node._wires = wires
        await engine.idle()
        deliver = engine.deliver
        started = time.perf_counter()
        for i in range(events):
            if i % KEYS == 0:
                clock.advance(1.0)
                if engine.pending > 10_000:
                    await engine.idle()
            deliver("w", dict(msgs[i % KEYS]))
        await engine.idle()
        engine_rate = events / (time.perf_counter() - started)
        return handler_rate, engine_rate
    finally:
        await deployer.stop()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    events = int(args[0]) if args else 300_000
    state = bench_state(events)
    handler, engine = asyncio.run(_node_and_engine(events, "--profile" in sys.argv))
    memory = memory_per_thousand_keys()
    print(f"keyed 1-minute sliding average, {KEYS:,} keys, {events:,} events")
    print(f"  window state alone        {state:12,.0f} events/s")
    print(f"  node handler              {handler:12,.0f} events/s")
    print(f"  through the engine        {engine:12,.0f} events/s")
    print(f"  memory per 1,000 keys     {memory:12.2f} MB (60 events per key)")


if __name__ == "__main__":
    main()
