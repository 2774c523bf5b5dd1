"""`Runtime.stop` is the exact reverse of `Runtime.start`: every service is closed, last started first; a start
that fails half-way closes what it had started; nothing (task, thread, socket, worker process) is left behind."""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from ports import free_port

from sofiaflow.runtime.core.context import ContextManager
from sofiaflow.runtime.core.metrics import ThroughputHistory
from sofiaflow.runtime.data.history import HistoryService
from sofiaflow.runtime.data.rtdb.sql_backend import SQLStore
from sofiaflow.runtime.errors import ServiceUnavailable
from sofiaflow.runtime.flows.deploy import Deployer
from sofiaflow.runtime.http.node_routes import NodeRoutes
from sofiaflow.runtime.mqtt.broker import EmbeddedBroker
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.sandbox import SandboxPool
from sofiaflow.runtime.settings import Settings

DIAG = "diagnostics"

# (what, class, the method that opens it, the method that closes it)
SERVICES = [
    ("config-db", None, None, "dispose"),  # the engine `connect` returns: spied on that one instance
    ("contexts", ContextManager, "open", "close"),
    ("metrics-history", ThroughputHistory, "__init__", "stop"),
    ("sandbox", SandboxPool, "__init__", "close"),
    ("http", NodeRoutes, "__init__", "shutdown"),
    ("rtdb", SQLStore, "__init__", "close"),
    ("history", HistoryService, "start", "stop"),
    ("mqtt-embedded", EmbeddedBroker, "start", "stop"),
    ("flows", Deployer, "__init__", "stop"),
]


def make_runtime(tmp_path, mqtt_port: int | None = None) -> Runtime:
    settings = Settings(
        data_dir=tmp_path,
        mqtt_port=free_port() if mqtt_port is None else mqtt_port,
        history_interval=3600,  # the mover's task runs (and must be stopped), but never moves anything here
        ontologies_dir=None,
        default_flows=None,
    )
    return Runtime(settings)


class Spy:
    """Records, in order, each service that was opened and each that was closed (by its real methods)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []
        for name, cls, opener, closer in SERVICES[1:]:
            if opener is not None:
                self._wrap(monkeypatch, cls, opener, name, self.opened)
            self._wrap(monkeypatch, cls, closer, name, self.closed)
        # the config DB is opened by `connect`, not by a method of the engine it returns
        import sofiaflow.runtime.runtime as runtime_module

        connect = runtime_module.connect

        def spied_connect(*args, **kwargs):
            engine = connect(*args, **kwargs)
            self.opened.append("config-db")
            dispose = engine.dispose

            def spied_dispose(*args, **kwargs):
                self.closed.append("config-db")
                return dispose(*args, **kwargs)

            engine.dispose = spied_dispose
            return engine

        monkeypatch.setattr(runtime_module, "connect", spied_connect)

    @staticmethod
    def _wrap(monkeypatch, cls, method: str, name: str, record: list[str]) -> None:
        real = getattr(cls, method)
        if inspect.iscoroutinefunction(real):

            async def spied(self, *args, **kwargs):
                record.append(name)
                return await real(self, *args, **kwargs)
        else:

            def spied(self, *args, **kwargs):
                record.append(name)
                return real(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, spied)


@contextmanager
def nothing_left_behind() -> Iterator[None]:
    """Fails when the block leaves a task, a thread, an open file or socket, or a child process."""
    process = psutil.Process()
    current = asyncio.current_task()
    tasks = set(asyncio.all_tasks()) - {current}
    threads = set(threading.enumerate())
    files = {f.path for f in process.open_files()}
    connections = {(c.laddr, c.raddr, c.status) for c in process.net_connections()}
    fds = process.num_fds()
    children = {p.pid for p in process.children(recursive=True)}
    yield
    assert [t for t in asyncio.all_tasks() if t not in tasks and t is not current] == []
    assert [
        t.name for t in threading.enumerate() if t not in threads and not t.name.startswith("asyncio_")
    ] == []
    assert [f.path for f in process.open_files() if f.path not in files] == []
    assert [c for c in process.net_connections() if (c.laddr, c.raddr, c.status) not in connections] == []
    assert [p.pid for p in process.children(recursive=True) if p.pid not in children] == []
    assert process.num_fds() == fds


async def warm_up(tmp_path) -> None:
    """One start and stop, so that what the libraries keep for the whole process is there before measuring."""
    runtime = make_runtime(tmp_path / "warm-up")
    await runtime.start()
    await runtime.stop()


async def use_a_sandbox_worker(runtime: Runtime) -> int:
    """Start a sandbox worker process through the runtime's pool; its pid."""
    pool = runtime.engine.services["sandbox"]
    pool.register_handler(DIAG, "sofiaflow.runtime.sandbox.diagnostics")
    identity = await pool.worker("alice").request(DIAG, "identity", None, timeout=30)
    return identity["pid"]


async def test_stop_closes_every_service_in_the_reverse_order_of_start(tmp_path, monkeypatch) -> None:
    spy = Spy(monkeypatch)
    runtime = make_runtime(tmp_path)
    steps: list[tuple[str, str]] = []
    runtime.events.subscribe("runtime/step", lambda _topic, data: steps.append((data["step"], data["state"])))
    await runtime.start()
    assert spy.opened == [name for name, *_ in SERVICES]
    assert spy.closed == []

    await runtime.stop()

    assert spy.closed == list(reversed(spy.opened))
    started = [step for step, state in steps if state == "started"]
    stopped = [step for step, state in steps if state == "stopped"]
    assert stopped == list(reversed(started))
    assert runtime.engine.services == {}


async def test_a_second_stop_does_nothing(tmp_path, monkeypatch) -> None:
    spy = Spy(monkeypatch)
    runtime = make_runtime(tmp_path)
    await runtime.start()
    await runtime.stop()
    closed = list(spy.closed)
    await runtime.stop()
    assert spy.closed == closed


async def test_start_and_stop_leave_no_task_thread_socket_file_or_worker_process(tmp_path) -> None:
    await warm_up(tmp_path)
    with nothing_left_behind():
        runtime = make_runtime(tmp_path / "data")
        await runtime.start()
        worker = await use_a_sandbox_worker(runtime)
        assert psutil.pid_exists(worker)
        port = runtime.engine.services["mqtt-embedded"].port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the broker listens while the runtime runs
        await runtime.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def _step_count(tmp_path) -> int:
    return len(make_runtime(tmp_path)._start_steps())


@pytest.mark.parametrize("failing", range(_step_count(Path("unused"))))  # one case per step of start()
async def test_a_failure_in_the_nth_step_closes_exactly_the_steps_started_before_it(
    tmp_path, monkeypatch, failing: int
) -> None:
    spy = Spy(monkeypatch)
    step_of: dict[str, int] = {}
    real_steps = Runtime._start_steps

    def steps_failing_at_n(self: Runtime):
        steps = []
        for index, step in enumerate(real_steps(self)):

            async def run(stack, index=index, step=step):
                if index == failing:
                    raise RuntimeError(f"step {index} failed")
                opened = len(spy.opened)
                await step(stack)
                for name in spy.opened[opened:]:
                    step_of[name] = index

            steps.append(run)
        return steps

    monkeypatch.setattr(Runtime, "_start_steps", steps_failing_at_n)
    runtime = make_runtime(tmp_path)
    with pytest.raises(RuntimeError, match=f"step {failing} failed"):
        await runtime.start()

    assert all(index < failing for index in step_of.values())
    expected = [name for name, *_ in SERVICES][: len(spy.opened)]
    assert spy.opened == expected  # the services of the steps before the failing one, in order
    assert spy.closed == list(reversed(spy.opened))
    await runtime.stop()  # nothing left to undo
    assert spy.closed == list(reversed(spy.opened))


async def test_a_broker_that_cannot_listen_closes_what_started_before_it_and_leaves_nothing(
    tmp_path, monkeypatch
) -> None:
    await warm_up(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with nothing_left_behind():
            spy = Spy(monkeypatch)
            runtime = make_runtime(tmp_path / "data", mqtt_port=port)
            with pytest.raises(ServiceUnavailable, match=f"cannot listen on 127.0.0.1:{port}"):
                await runtime.start()
    assert spy.opened[-1] == "mqtt-embedded"
    assert spy.closed == list(reversed(spy.opened[:-1]))


def test_sofiaflow_run_with_the_broker_port_in_use_says_so_and_exits_1(tmp_path) -> None:
    import os
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "SOFIAFLOW_MQTT_PORT": str(port), "SOFIAFLOW_DEFAULT_FLOWS": ""}
        done = subprocess.run(
            [sys.executable, "-m", "sofiaflow.runtime.cli", "run", "--data-dir", str(tmp_path)]
            + ["--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    last = done.stderr.strip().splitlines()[-1]  # the broker library logs its own failure before
    assert last.startswith(f"error: the embedded MQTT broker cannot listen on 127.0.0.1:{port}: ")
