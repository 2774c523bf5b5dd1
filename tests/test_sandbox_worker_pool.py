"""The sandbox pool with real worker processes: isolation, limits, deadlines, crashes, calls and events."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.sandbox import SandboxCrashed, SandboxError, SandboxPool, SandboxTimeout
from sofiaflow.runtime.sandbox.limits import WorkerLimits
from sofiaflow.runtime.sandbox.pool import BACKOFF_FIRST

DIAG = "diagnostics"


@pytest.fixture
async def pool():
    pool = SandboxPool()
    pool.register_handler(DIAG, "sofiaflow.runtime.sandbox.diagnostics")
    yield pool
    await pool.close()


async def test_requests_run_in_another_process_with_none_of_the_host_environment(pool, monkeypatch):
    monkeypatch.setenv("SOFIAFLOW_SECRET_TEST", "do-not-leak")
    identity = await pool.worker("alice").request(DIAG, "identity", None, timeout=10)
    assert identity["pid"] != os.getpid()
    assert "SOFIAFLOW_SECRET_TEST" not in identity["environ"]
    assert set(identity["environ"]) <= {"PATH", "LANG", "LC_ALL", "HOME"}
    assert identity["limits"]["DATA"][0] == 512 * 1024 * 1024
    assert identity["limits"]["NOFILE"][0] == 64
    assert identity["limits"]["CORE"] == [0, 0]
    assert identity["nice"] >= 10
    assert identity["open_fds"][:3] == [0, 1, 2] and len(identity["open_fds"]) <= 5  # nothing inherited
    assert os.listdir(identity["cwd"]) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="privileges are dropped only when the host runs as root")
async def test_a_root_host_runs_workers_as_nobody_who_cannot_open_the_data_dir(pool, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "sofiaflow.db").write_bytes(b"secret")
    worker = pool.worker("alice")
    identity = await worker.request(DIAG, "identity", None, timeout=10)
    assert (identity["uid"], identity["euid"], identity["groups"]) == (65534, 65534, [])
    assert identity["limits"]["NPROC"][0] == 256
    with pytest.raises(SandboxError, match="PermissionError"):
        await worker.request(DIAG, "open", str(data / "sofiaflow.db"), timeout=10)
    with pytest.raises(SandboxError, match="PermissionError"):
        await worker.request(DIAG, "listdir", str(data), timeout=10)


async def test_each_tenant_has_its_own_process(pool):
    a = await pool.worker("alice").request(DIAG, "identity", None, timeout=10)
    b = await pool.worker("bob").request(DIAG, "identity", None, timeout=10)
    again = await pool.worker("alice").request(DIAG, "identity", None, timeout=10)
    assert a["pid"] != b["pid"] and a["pid"] == again["pid"]


async def test_handler_errors_come_back_as_text_and_the_worker_lives_on(pool):
    worker = pool.worker("alice")
    with pytest.raises(SandboxError, match="ValueError: bad input") as caught:
        await worker.request(DIAG, "fail", "bad input", timeout=10)
    assert type(caught.value) is SandboxError
    generation = worker.generation
    assert await worker.request(DIAG, "echo", 7, timeout=10) == 7
    assert worker.generation == generation


async def test_a_c_loop_past_the_deadline_is_killed_and_the_next_request_gets_a_new_process(pool):
    worker = pool.worker("alice")
    first = await worker.request(DIAG, "identity", None, timeout=10)
    generation = worker.generation
    queued = asyncio.ensure_future(worker.request(DIAG, "echo", "behind", timeout=10))
    with pytest.raises(SandboxTimeout, match="no answer within 0.5 s"):
        await worker.request(DIAG, "spin", 10**11, timeout=0.5)
    with pytest.raises(SandboxTimeout):
        await queued  # everything in flight fails with it
    assert worker.generation == generation + 1
    second = await worker.request(DIAG, "identity", None, timeout=10)
    assert second["pid"] != first["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(first["pid"], 0)


async def test_the_deadline_runs_from_the_head_of_the_line(pool):
    worker = pool.worker("alice")
    slow = asyncio.ensure_future(worker.request(DIAG, "sleep", 0.6, timeout=5))
    quick = asyncio.ensure_future(worker.request(DIAG, "echo", "after", timeout=0.5))
    assert await slow is None
    assert await quick == "after"


async def test_progress_reports_keep_a_long_request_alive_and_silence_ends_it(pool):
    worker = pool.worker("alice")
    steps = {"steps": 6, "each": 0.1}
    assert await worker.request(DIAG, "progress", steps, timeout=30, progress_timeout=0.5) is None
    with pytest.raises(SandboxTimeout):
        await worker.request(DIAG, "spin", 10**11, timeout=30, progress_timeout=0.5)


async def test_running_out_of_memory_is_reported_and_the_worker_restarts(pool):
    worker = pool.worker("alice")
    with pytest.raises(SandboxCrashed, match=r"ran out of memory \(512 MB\)"):
        await worker.request(DIAG, "allocate", 4096, timeout=30)
    assert await worker.request(DIAG, "echo", "alive", timeout=10) == "alive"


async def test_a_worker_that_exits_fails_its_request_with_the_exit_code(pool):
    worker = pool.worker("alice")
    with pytest.raises(SandboxCrashed, match="exited with code 3"):
        await worker.request(DIAG, "exit", 3, timeout=10)
    assert await worker.request(DIAG, "echo", 1, timeout=10) == 1


async def test_worker_calls_are_answered_by_the_host_callback(pool):
    worker = pool.worker("alice")
    seen = []

    def on_call(op, payload):
        seen.append((op, payload))
        if op == "boom":
            raise KeyError("no such key")
        return {"got": payload}

    worker.on_call(DIAG, on_call)
    assert await worker.request(DIAG, "call", {"op": "get", "payload": [1, 2]}, timeout=10) == {"got": [1, 2]}
    with pytest.raises(SandboxError, match="no such key"):
        await worker.request(DIAG, "call", {"op": "boom"}, timeout=10)
    assert seen == [("get", [1, 2]), ("boom", None)]


async def test_worker_events_reach_the_host_callback(pool):
    worker = pool.worker("alice")
    events = []
    worker.on_event(DIAG, lambda op, payload: events.append((op, payload)))
    await worker.request(DIAG, "event", {"op": "send", "payload": {"payload": 1}}, timeout=10)
    assert events == [("send", {"payload": 1})]


async def test_printing_in_the_worker_does_not_break_the_protocol(pool):
    worker = pool.worker("alice")
    await worker.request(DIAG, "print", "hello on stdout", timeout=10)
    assert await worker.request(DIAG, "echo", "still fine", timeout=10) == "still fine"


async def test_bad_requests_are_refused_on_the_host(pool):
    worker = pool.worker("alice")
    with pytest.raises(SandboxError, match="no sandbox handler named 'nope'"):
        await worker.request("nope", "echo", 1, timeout=10)
    with pytest.raises(SandboxError, match="cannot send"):
        await worker.request(DIAG, "echo", object(), timeout=10)
    with pytest.raises(ValueError, match="not a dotted module path"):
        pool.register_handler("x", "os; rm")


async def test_a_worker_that_dies_on_start_backs_off_and_says_why():
    pool = SandboxPool()
    pool.register_handler("broken", "sofiaflow.runtime.sandbox.no_such_module")
    worker = pool.worker("alice")
    try:
        with pytest.raises(SandboxCrashed, match="could not start: .*no_such_module"):
            await worker.request("broken", "x", None, timeout=10)
        started = time.monotonic()
        with pytest.raises(SandboxCrashed, match="could not start"):
            await worker.request("broken", "x", None, timeout=10)
        assert (
            time.monotonic() - started >= BACKOFF_FIRST
        )  # a lower bound: the guard waited before restarting
        assert worker.generation == 3
    finally:
        await pool.close()


async def test_closing_the_pool_fails_requests_in_flight_and_kills_the_processes(pool):
    worker = pool.worker("alice")
    pid = (await worker.request(DIAG, "identity", None, timeout=10))["pid"]
    pending = asyncio.ensure_future(worker.request(DIAG, "sleep", 30, timeout=60))
    await asyncio.sleep(0.1)
    await pool.close()
    with pytest.raises(SandboxError, match="closed"):
        await pending
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_the_address_space_limit_can_be_chosen_instead():
    pool = SandboxPool(WorkerLimits.for_host(memory_mb=256, memory_kind="as"))
    pool.register_handler(DIAG, "sofiaflow.runtime.sandbox.diagnostics")
    try:
        worker = pool.worker("alice")
        identity = await worker.request(DIAG, "identity", None, timeout=10)
        assert identity["limits"]["AS"][0] == 256 * 1024 * 1024
        with pytest.raises(SandboxCrashed, match=r"ran out of memory \(256 MB\)"):
            await worker.request(DIAG, "allocate", 1024, timeout=30)
    finally:
        await pool.close()


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError, match="memory_kind"):
        WorkerLimits(memory_kind="rss")


_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def echo_worker():
    """One event loop and one worker reused across hypothesis examples."""
    loop = asyncio.new_event_loop()
    pool = SandboxPool()
    pool.register_handler(DIAG, "sofiaflow.runtime.sandbox.diagnostics")
    worker = pool.worker("t")
    yield lambda value: loop.run_until_complete(worker.request(DIAG, "echo", value, timeout=10))
    loop.run_until_complete(pool.close())
    loop.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=_values)
def test_values_cross_unchanged(echo_worker, value):
    assert echo_worker(value) == value
