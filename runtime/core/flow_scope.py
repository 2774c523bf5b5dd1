"""A flow scope: a tab, or one instance of a subflow, as the engine runs it: its context, its env chain (group env,
its own layers, the scopes it is in, the process environment), and its catch and status nodes, which hear the
errors and status of the nodes in it (and, through a subflow instance, in the scopes below it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.core.message import clone_message, new_msgid
from sofiaflow.runtime.types import Msg

if TYPE_CHECKING:
    from sofiaflow.runtime.core.context import ContextScope
    from sofiaflow.runtime.core.node import Node


class FlowScope:
    """A tab, or one instance of a subflow: its context, env chain and catch/status/complete nodes."""

    def __init__(
        self,
        flow_id: str,
        context: ContextScope,
        env: list[dict[str, Any]],
        parent: FlowScope | None = None,
        instance: Node | None = None,
        label: str = "",
    ) -> None:
        self.id = flow_id
        self.label = label
        self.context = context
        self.env = env
        self.parent = parent
        self.instance = instance
        self.listeners: dict[str, list[Node]] = {"error": [], "status": [], "complete": []}
        self.groups: dict[str, dict[str, Any]] = {}

    def env_get(self, name: str, node: Node | None = None, process: bool = True) -> Any:
        """Look `name` up through group env, this scope's chain, then (unless `process` is False) the process
        environment."""
        import os

        if node is not None:
            builtin = _builtin_env(name, node, self)
            if builtin is not None:
                return builtin
            group_id = node.config.g
            while group_id:
                group = self.groups.get(group_id)
                if group is None:
                    break
                if name in group.get("env", {}):
                    return group["env"][name]
                group_id = group.get("g")
        for layer in self.env:
            if name in layer:
                return layer[name]
        if self.parent is not None:
            return self.parent.env_get(name, process=process)
        return os.environ.get(name) if process else None

    # ----- its catch and status nodes, and those of the scopes it is in -----------------------------------------
    def throw(self, source: Node, error: dict, msg: Msg) -> bool:
        """Offer a failed message to the catch nodes of this scope (those not limited to uncaught errors first),
        else of the scopes it is in (the source becoming the subflow instance); True when one took it."""
        scope: FlowScope | None = self
        while scope is not None:
            catchers = [
                c for c in scope.listeners["error"] if not getattr(c, "uncaught", False) and c.accepts(source)
            ]
            if not catchers:
                catchers = [
                    c for c in scope.listeners["error"] if getattr(c, "uncaught", False) and c.accepts(source)
                ]
            if catchers:
                for catcher in catchers:
                    out = clone_message(msg)
                    if "error" in out:
                        out["_error"] = out.pop("error")
                    out["error"] = dict(error, source=dict(error["source"]))
                    catcher.on_event(out)
                return True
            if scope.instance is None:
                break
            source, scope = scope.instance, scope.parent
        return False

    def status_changed(self, node: Node, status: dict[str, Any]) -> None:
        """Hand `node`'s new status to the status nodes of this scope and of the scopes it is in."""
        scope: FlowScope | None = self
        source: Node = node
        while scope is not None:
            for listener in scope.listeners["status"]:
                if listener.accepts(source):
                    full = dict(status)
                    full["source"] = {"id": node.id, "type": node.type, "name": node.name}
                    listener.on_event({"_msgid": new_msgid(), "status": full})
            if scope.instance is None:
                break
            source, scope = scope.instance, scope.parent


def _builtin_env(name: str, node: Node, scope: FlowScope) -> Any:
    if not name.startswith("NR_"):
        return None
    return {
        "NR_NODE_ID": node.id,
        "NR_NODE_NAME": node.name,
        "NR_NODE_PATH": f"{scope.id}/{node.id}",
        "NR_FLOW_ID": scope.id,
        "NR_FLOW_NAME": scope.label,
        "NR_GROUP_ID": node.config.g,
    }.get(name)
