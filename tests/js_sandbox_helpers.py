"""Test helpers: a FlowTester whose JavaScript function nodes run in process or in a real sandbox worker."""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.sandbox import SandboxPool
from sofiaflow.runtime.sandbox.limits import WorkerLimits, default_identity
from sofiaflow.runtime.testing import FlowTester

MODES = ("in-process", "process")
_mode = {"current": MODES[0]}


def set_mode(mode: str) -> None:
    """Where the next testers run function nodes: "in-process", or "process" (a sandbox worker)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}")
    _mode["current"] = mode


def worker_limits() -> WorkerLimits:
    """Limits a worker running V8 can live with: RLIMIT_DATA (V8 cannot start under RLIMIT_AS)."""
    uid, gid = default_identity()
    return WorkerLimits(memory_kind="data", memory_mb=1024, user=uid, group=gid)


class JsTester(FlowTester):
    """A FlowTester with a sandbox pool (its own, closed on exit) when the mode is "process"."""

    def __init__(self, *args: Any, mode: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = mode or _mode["current"]
        self.pool: SandboxPool | None = None
        if self.mode == "process":
            self.pool = SandboxPool(worker_limits())
            self.engine.services["sandbox"] = self.pool
            self.engine.node_settings.setdefault("functionIsolation", "process")
        else:
            self.engine.node_settings.setdefault("functionIsolation", "in-process")

    async def __aexit__(self, *exc: object) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            if self.pool is not None:
                await self.pool.close()


def js_tester(*args: Any, **kwargs: Any) -> JsTester:
    return JsTester(*args, **kwargs)
