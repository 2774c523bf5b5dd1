"""What catch, status and complete nodes share: a scope of nodes they listen to."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sofiaflow.runtime.api import Node, NodeConfig, NRBool


class ScopedConfig(NodeConfig):
    scope: list[str] | str | None = Field(
        None,
        title="Scope",
        description="Which nodes this node listens to.",
        json_schema_extra={"x-widget": "scope"},
    )
    uncaught: NRBool = Field(
        False,
        title="Only if no other catch node handled it",
        json_schema_extra={"x-show-if": {"scope": "all"}},
    )


class ScopedListener(Node[ScopedConfig]):
    """Listens to events of the nodes in `scope`: None = the whole flow, a list of ids, or "group"."""

    inputs = 0
    outputs = 1
    Config = ScopedConfig

    def setup(self) -> None:
        scope: Any = self.config.scope
        self.uncaught = bool(self.config.uncaught)
        self._ids = frozenset(scope) if isinstance(scope, list) else None
        self._group = scope == "group"

    def accepts(self, source: Node) -> bool:
        if self._group:
            return self._in_my_group(source)
        if self._ids is None:
            return True
        return source.id in self._ids or source.alias in self._ids

    def _in_my_group(self, source: Node) -> bool:
        mine = self.config.g
        if not mine:
            return False
        groups = self.flow_scope.groups
        group = source.config.g
        while group:
            if group == mine:
                return True
            group = (groups.get(group) or {}).get("g")
        return False
