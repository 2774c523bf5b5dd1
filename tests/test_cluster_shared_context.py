"""The redis context store in cluster mode: one counter incremented by three processes ends exact, python
function bodies on two workers share it, and a worker with SOFIAFLOW_REDIS_URL offers it (default by setting)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from redis_server import (
    redis_per_module,  # noqa: F401 - the redis_url fixture
)
from test_node_python_function import TAB, fn

from sofiaflow.runtime.core.context import ContextError, ContextManager, MemoryStore
from sofiaflow.runtime.core.context_redis import RedisContextStore
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.settings import Settings
from sofiaflow.runtime.testing import FlowTester

WORKER = textwrap.dedent(
    """
    import sys
    from sofiaflow.runtime.core.context import ContextManager
    from sofiaflow.runtime.core.context_redis import RedisContextStore

    url, rounds = sys.argv[1], int(sys.argv[2])
    scope = ContextManager({"redis": RedisContextStore(url)}, default="redis").scope("global:alice")
    scope.get("hits")  # connected
    print("ready", flush=True)
    sys.stdin.readline()  # all start together
    for _ in range(rounds):
        scope.incr("hits")  # Redis's own HINCRBY
        scope.incr("per.worker", 2)  # inside a key: WATCH/MULTI, retried under contention
    print("done", flush=True)
    """
)


def test_a_counter_incremented_from_three_processes_ends_exact(redis_url: str) -> None:
    rounds = 300
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, redis_url, str(rounds)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            out, _ = p.communicate(timeout=120)
            assert p.returncode == 0 and out.strip() == "done"
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    scope = ContextManager({"redis": RedisContextStore(redis_url)}, default="redis").scope("global:alice")
    assert scope.get("hits") == 3 * rounds
    assert scope.get("per") == {"worker": 3 * 2 * rounds}


async def test_python_function_incr_on_two_workers_counts_each_message_once(redis_url: str) -> None:
    body = "msg['payload'] = flow.incr('seen', 1, 'redis')\nreturn msg"
    flows = [TAB, fn(body, wires=[["out"]]), {"id": "out", "type": "junction", "z": "t1", "wires": [[]]}]
    stores_a = {"memory": MemoryStore(), "redis": RedisContextStore(redis_url, prefix="fn-incr")}
    stores_b = {"memory": MemoryStore(), "redis": RedisContextStore(redis_url, prefix="fn-incr")}
    async with FlowTester(flows, stores=stores_a) as a, FlowTester(flows, stores=stores_b) as b:
        for i in range(10):
            (a if i % 2 else b).inject("f", {"payload": None})
            await (a if i % 2 else b).idle()
        seen = sorted(a.payloads("f") + b.payloads("f"))
        assert seen == list(range(1, 11))
        assert not a.errors() and not b.errors()
        assert a.contexts.scope("flow:t1").get("#:(redis)::seen") == 10


async def test_python_function_incr_of_a_word_is_a_catchable_error(redis_url: str) -> None:
    body = "flow.set('w', 'text', 'redis')\nflow.incr('w', 1, 'redis')\nreturn msg"
    flows = [TAB, fn(body)]
    stores = {"memory": MemoryStore(), "redis": RedisContextStore(redis_url, prefix="fn-word")}
    async with FlowTester(flows, stores=stores) as t:
        t.inject("f", {"payload": 1})
        await t.idle()
        assert "incr of 'w': the value there is not a number" in str(t.errors())


async def test_a_worker_with_a_redis_url_offers_the_redis_store_and_takes_it_as_default(
    redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path,
        mqtt_port=0,
        history_interval=3600,
        ontologies_dir=None,
        default_flows=None,
        redis_url=redis_url,
        context_default="redis",
    )
    runtime = Runtime(settings)
    await runtime.start()
    try:
        assert runtime.contexts is not None
        assert runtime.contexts.default == "redis"
        runtime.contexts.scope("global:bob").set("shared", {"v": 1})
    finally:
        await runtime.stop()
    other = ContextManager({"redis": RedisContextStore(redis_url)}, default="redis").scope("global:bob")
    assert other.get("shared.v") == 1


def test_redis_as_default_without_a_redis_url_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="default context store 'redis' is not configured"):
        ContextManager({"memory": MemoryStore()}, default="redis")


def test_single_process_mode_loads_nothing_of_the_redis_store() -> None:
    code = (
        "import sys\n"
        "from sofiaflow.runtime.runtime import Runtime\n"
        "assert 'sofiaflow.runtime.core.context_redis' not in sys.modules\n"
        "assert 'redis' not in sys.modules, 'redis loaded'\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SOFIAFLOW_REDIS_URL"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


@pytest.mark.parametrize("mode", ["in-process", "process"])
async def test_javascript_function_incr_on_two_workers_adds_each_message_once(
    redis_url: str, mode: str
) -> None:
    from js_sandbox_helpers import js_tester

    prefix = f"js-incr-{uuid.uuid4().hex[:6]}"
    body = "flow.incr('seen', 1, 'redis'); flow.incr('by.two', 2, 'redis'); context.incr('mine'); return msg;"
    flows = [TAB, {**fn(body), "type": "function"}]
    stores_a = {"memory": MemoryStore(), "redis": RedisContextStore(redis_url, prefix=prefix)}
    stores_b = {"memory": MemoryStore(), "redis": RedisContextStore(redis_url, prefix=prefix)}
    async with (
        js_tester(flows, stores=stores_a, mode=mode) as a,
        js_tester(flows, stores=stores_b, mode=mode) as b,
    ):
        for i in range(10):
            (a if i % 2 else b).inject("f", {"payload": i})
        await a.idle()
        await b.idle()
        assert not a.errors() and not b.errors()
        flow = a.contexts.scope("flow:t1")
        assert flow.get("#:(redis)::seen") == 10
        assert flow.get("#:(redis)::by.two") == 20
        assert a.node("f").context.get("mine") == 5  # the memory store: each worker its own
        assert b.node("f").context.get("mine") == 5


async def test_javascript_function_incr_of_a_word_is_an_error_of_the_node(redis_url: str) -> None:
    from js_sandbox_helpers import js_tester

    body = "flow.set('w', 'text'); flow.incr('w'); return msg;"
    async with js_tester([TAB, {**fn(body), "type": "function"}], mode="in-process") as t:
        t.inject("f", {"payload": 1})
        await t.idle()
        assert "incr of 'w': the value there is not a number" in str(t.errors())
        assert t.node("f").flow.get("w") == "text"


def test_a_redis_store_whose_redis_is_away_fails_with_a_context_error_naming_it() -> None:
    from rtdb_servers import free_port

    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    scope = ContextManager({"redis": RedisContextStore(url)}, default="redis").scope("flow:f1")
    for action in (lambda: scope.get("k"), lambda: scope.set("k", 1), lambda: scope.incr("k")):
        with pytest.raises(ContextError, match=rf"context store 'redis' \(Redis at {url}\) failed"):
            action()
