"""Where a function node's code runs (python and JavaScript alike): in the server process or in a sandbox
worker of its flow's owner.

The setting `functionIsolation` decides:

- `"process"` (default): every flow's functions run in the sandbox worker of the flow's owner (one worker per
  owner; flows with no owner share the worker named `NO_OWNER`).
- `"admin-in-process"`: flows acting for the platform (`node.tenant` is None: administrators' flows and flows
  with no owner, deployed from the command line or before owners existed) run in the server process; every
  developer's in their worker.
- `"in-process"`: everything in the server process (unsafe: one script can stop the server).

A runtime without a sandbox service (an embedded engine, the test harness) runs everything in process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sofiaflow.runtime.api import SANDBOX, Node, NodeError

if TYPE_CHECKING:
    from sofiaflow.runtime.api import SandboxPool

ISOLATION_MODES = ("process", "admin-in-process", "in-process")
NO_OWNER = "(admin)"
"""The worker name of flows with no owner."""


def isolation_mode(node: Node) -> str:
    """The `functionIsolation` setting, checked."""
    mode = node.setting("functionIsolation", "process") or "process"
    if mode not in ISOLATION_MODES:
        raise NodeError(f"setting functionIsolation: {mode!r} is not one of {', '.join(ISOLATION_MODES)}")
    return mode


def worker_for(node: Node) -> tuple[SandboxPool, str] | None:
    """(the sandbox pool, the worker's name) when the node's code must run in a sandbox worker, else None."""
    mode = isolation_mode(node)
    if mode == "in-process" or (mode == "admin-in-process" and node.tenant is None):
        return None
    try:
        pool = node.service(SANDBOX)
    except NodeError:  # no sandbox in this runtime: in process
        return None
    return pool, node.owner if node.owner is not None else NO_OWNER
