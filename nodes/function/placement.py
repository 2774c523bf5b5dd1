"""Where a JavaScript function node's code runs: in the server process or in its tenant's sandbox worker.

The setting `functionIsolation` decides, as for the python function node:

- `"process"` (default): every flow's functions run in the sandbox worker of the flow's owner.
- `"admin-in-process"`: flows owned by administrators, or with no owner (deployed from the command
  line or before owners existed), run in the server process; everyone else's in their worker.
- `"in-process"`: everything in the server process (unsafe: one script can stop the server).

A runtime without a "sandbox" service (an embedded engine, the test harness) runs in process.
"""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.api import Node, NodeError

ISOLATION_MODES = ("process", "admin-in-process", "in-process")
HANDLER = "js"
HANDLER_MODULE = "sofiaflow.nodes.function.js_sandbox"
NO_OWNER = "(admin)"
"""Tenant name of flows with no owner."""


def isolation_mode(node: Node) -> str:
    """The `functionIsolation` setting, checked."""
    mode = node.setting("functionIsolation", "process") or "process"
    if mode not in ISOLATION_MODES:
        raise NodeError(f"setting functionIsolation: {mode!r} is not one of {', '.join(ISOLATION_MODES)}")
    return mode


def flow_owner(node: Node) -> str | None:
    """The user owning the tab the node is in (None: no owner)."""
    owner = getattr(node, "owner", _MISSING)
    if owner is not _MISSING:
        return owner
    owners = node._engine.services.get("flow-owners")
    if owners is None:
        return None
    scope = node.flow_scope  # up to the tab: the scope right below the global one
    while scope is not None and scope.parent is not None and scope.parent.parent is not None:
        scope = scope.parent
    return owners.owner(scope.id) if scope is not None and scope.parent is not None else None


def is_administrator(node: Node, user: str | None) -> bool:
    """Whether `user` is an administrator (no user: the runtime itself, trusted)."""
    if user is None:
        return True
    permissions = node._engine.services.get("permissions")
    role_of = getattr(permissions, "_role_of", None)
    return bool(role_of is not None and role_of(user) == "administrator")


def sandbox_for(node: Node) -> tuple[Any, str] | None:
    """(the sandbox pool, the tenant) when the node's code must run in a worker, else None."""
    mode = isolation_mode(node)
    pool = node._engine.services.get("sandbox")
    if mode == "in-process" or pool is None:
        return None
    owner = flow_owner(node)
    if mode == "admin-in-process" and is_administrator(node, owner):
        return None
    pool.register_handler(HANDLER, HANDLER_MODULE)
    return pool, owner if owner is not None else NO_OWNER


_MISSING: Any = object()
