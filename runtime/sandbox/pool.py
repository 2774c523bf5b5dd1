"""The sandbox pool: one worker process per tenant (the owner of a flow), started lazily, restarted on death.

Registered as the runtime service "sandbox". A node gets its tenant's worker with
`self.service("sandbox").worker(tenant)` and sends it requests for a registered handler module; see
`worker` for the worker side and `framing` for the wire format.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from itertools import count
from typing import Any

from sofiaflow.runtime.sandbox import framing
from sofiaflow.runtime.sandbox.errors import SandboxError
from sofiaflow.runtime.sandbox.limits import WorkerLimits
from sofiaflow.runtime.sandbox.process import _UNSENDABLE, Handlers, Pending, WorkerProcess

_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 10.0


def worker_environment(home: str) -> dict[str, str]:
    """The whole environment of a worker: nothing of the host's (no secrets), only what Python needs."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": home}


class SandboxPool:
    """Runtime service (registered as service "sandbox"; nodes get it with self.service("sandbox"))."""

    def __init__(self, limits: WorkerLimits | None = None, *, python: str | None = None) -> None:
        self.limits = limits if limits is not None else WorkerLimits.for_host()
        self.python = python or sys.executable
        self._modules: dict[str, str] = {}
        self._preload: set[str] = set()
        self._workers: dict[str, SandboxWorker] = {}
        self._closed = False

    def register_handler(self, name: str, module: str, *, preload: Iterable[str] = ()) -> None:
        """Let workers import `module` (dotted path) to serve requests for handler `name`.

        `preload` names modules the handler's code may import later: workers started from now on import
        them before they drop privileges (as nobody, a worker may not be able to read the interpreter's
        directory any more).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a sandbox handler name must be a non-empty string, not {name!r}")
        for dotted in (module, *preload):
            if not isinstance(dotted, str) or not _MODULE_NAME.match(dotted):
                raise ValueError(f"sandbox handler {name!r}: {dotted!r} is not a dotted module path")
        self._preload.update(preload)
        if self._modules.get(name) == module:
            return
        self._modules[name] = module
        for worker in self._workers.values():
            worker._registered(name, module)

    def worker(self, tenant: str) -> SandboxWorker:
        """The tenant's worker (its process starts on the first request)."""
        if not isinstance(tenant, str):
            raise TypeError(f"a sandbox tenant is a string, not {type(tenant).__name__}")
        if self._closed:
            raise SandboxError("the sandbox pool is closed")
        worker = self._workers.get(tenant)
        if worker is None:
            worker = self._workers[tenant] = SandboxWorker(self, tenant)
        return worker

    @property
    def modules(self) -> dict[str, str]:
        return dict(self._modules)

    async def close(self) -> None:
        """Kill every worker process (requests in flight fail with SandboxError)."""
        self._closed = True
        workers, self._workers = list(self._workers.values()), {}
        await asyncio.gather(*(w.close() for w in workers))


class SandboxWorker:
    """One tenant's worker; see the module docstring."""

    def __init__(self, pool: SandboxPool, tenant: str) -> None:
        self.pool = pool
        self.tenant = tenant
        self._handlers = Handlers()
        self._process: WorkerProcess | None = None
        self._started = 0
        self._ids = count(1)
        self._start_lock = asyncio.Lock()
        self._early_deaths = 0
        self._closed = False

    @property
    def generation(self) -> int:
        """The process generation the next request goes to: +1 each time the process is (re)started, so
        handlers re-send their setup when it changes."""
        process = self._process
        if process is not None and not process.dead:
            return process.generation
        return self._started + 1

    @property
    def pid(self) -> int | None:
        """The running process's id, or None."""
        process = self._process
        return process.pid if process is not None and not process.dead else None

    def on_call(self, handler: str, fn: Callable[[str, Any], Any]) -> None:
        """Answer the worker's synchronous calls for `handler` with fn(op, payload) (on the host loop)."""
        self._handlers.calls[handler] = fn

    def on_event(self, handler: str, fn: Callable[[str, Any], None]) -> None:
        """Take the worker's one-way events for `handler` with fn(op, payload)."""
        self._handlers.events[handler] = fn

    async def request(
        self, handler: str, op: str, payload: Any, *, timeout: float, progress_timeout: float | None = None
    ) -> Any:
        """Send one request and wait for its answer (answered in order).

        Raises SandboxError with the handler's error text, SandboxCrashed when the process died,
        SandboxTimeout when no answer came within `timeout` seconds of reaching the head of the line (or,
        with `progress_timeout`, within that long of the worker's last progress report): the process is
        then killed. Either way the next request starts a new process.
        """
        if handler not in self.pool._modules:
            raise SandboxError(f"no sandbox handler named {handler!r} is registered")
        if not timeout or timeout <= 0:
            raise ValueError(f"a sandbox request needs a positive timeout, not {timeout!r}")
        request_id = next(self._ids)
        try:
            frame = framing.encode([framing.REQUEST, request_id, handler, op, payload])
        except _UNSENDABLE as exc:
            raise SandboxError(f"cannot send to the sandbox worker: {exc}") from None
        process = await self._running()
        future = asyncio.get_running_loop().create_future()
        process.send(frame, Pending(request_id, future, float(timeout), progress_timeout))
        await process.drain()
        return await future

    async def _running(self) -> WorkerProcess:
        process = self._process
        if process is not None and not process.dead:
            return process
        async with self._start_lock:
            process = self._process
            if process is not None and not process.dead:
                return process
            if self._closed or self.pool._closed:
                raise SandboxError("the sandbox pool is closed")
            if process is not None and not process.answered and not process.killed_by_host:
                self._early_deaths += 1  # died on its own before answering anything: crash-loop guard
                await asyncio.sleep(min(BACKOFF_FIRST * 2 ** (self._early_deaths - 1), BACKOFF_MAX))
            elif process is not None and process.answered:
                self._early_deaths = 0
            self._process = await self._spawn()
            return self._process

    async def _spawn(self) -> WorkerProcess:
        limits = self.pool.limits
        cwd = tempfile.mkdtemp(prefix="sofiaflow-sandbox-")
        if limits.user is not None and os.geteuid() == 0:
            os.chown(cwd, limits.user, limits.group if limits.group is not None else -1)
        options = json.dumps(
            {"handlers": self.pool.modules, "preload": sorted(self.pool._preload), "limits": limits.to_dict()}
        )
        proc = await asyncio.create_subprocess_exec(
            self.pool.python,
            "-I",
            "-m",
            "sofiaflow.runtime.sandbox.worker",
            options,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=cwd,
            env=worker_environment(cwd),
            close_fds=True,
            start_new_session=True,
        )
        self._started += 1
        return WorkerProcess(
            proc, self._started, cwd, self._handlers, limits.memory_mb, f"sandbox[{self.tenant or '-'}]"
        )

    def _registered(self, name: str, module: str) -> None:
        process = self._process
        if process is not None and not process.dead:
            process.post(framing.encode([framing.REGISTER, name, module]))

    async def close(self) -> None:
        """Kill the process; requests in flight fail with SandboxError."""
        self._closed = True
        process, self._process = self._process, None
        if process is not None:
            process.kill(SandboxError("the sandbox worker was closed"))
            await asyncio.gather(process.reader, return_exceptions=True)
