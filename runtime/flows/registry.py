"""The node type registry, filled from the `sofiaflow.nodes` entry point group.

Built-in nodes register the same way as third-party packages: each entry point names a `Node`
subclass (or a module or list of them). `pip install` a package that declares
`[project.entry-points."sofiaflow.nodes"]` and its types appear in the palette.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from sofiaflow.runtime.core.node import Node
from sofiaflow.runtime.errors import UnknownNodeTypeError

log = logging.getLogger("sofiaflow.registry")

ENTRY_POINT_GROUP = "sofiaflow.nodes"


class NodeRegistry:
    """Node types by type name, and where each came from."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        self._origin: dict[str, str] = {}
        self.load_errors: list[str] = []

    def register(self, cls: type[Node], origin: str = "local") -> type[Node]:
        """Add a node type; a later registration of the same name replaces the earlier one."""
        if not (inspect.isclass(cls) and issubclass(cls, Node)) or not cls.type:
            raise TypeError(f"{cls!r} is not a Node subclass with a `type`")
        if cls.type in self._types and self._types[cls.type] is not cls:
            log.warning(
                "node type %r from %s replaces the one from %s", cls.type, origin, self._origin[cls.type]
            )
        self._types[cls.type] = cls
        self._origin[cls.type] = origin
        return cls

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Import every entry point of `group`; failures are kept in `load_errors`, not raised."""
        for ep in entry_points(group=group):
            try:
                obj = ep.load()
            except Exception as exc:  # a broken plugin must not stop the runtime
                self.load_errors.append(f"{ep.name} ({ep.value}): {exc}")
                log.error("cannot load node entry point %s: %s", ep.value, exc)
                continue
            origin = ep.dist.name if ep.dist is not None else ep.value
            for cls in _node_classes(obj):
                self.register(cls, origin)

    def get(self, type_name: str) -> type[Node]:
        try:
            return self._types[type_name]
        except KeyError:
            raise UnknownNodeTypeError(f"unknown node type {type_name!r}") from None

    def find(self, type_name: str) -> type[Node] | None:
        return self._types.get(type_name)

    def origin(self, type_name: str) -> str:
        return self._origin.get(type_name, "")

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._types

    def types(self) -> list[type[Node]]:
        return list(self._types.values())

    def describe(self) -> list[dict[str, Any]]:
        """The palette: one entry per type with its config JSON schema."""
        out = []
        for name, cls in sorted(self._types.items()):
            out.append(
                {
                    "type": name,
                    "category": cls.category,
                    "label": cls.palette_label(),
                    "help": cls.help,
                    "color": cls.color,
                    "inputs": cls.inputs,
                    "outputs": cls.outputs,
                    "config": cls.is_config_node,
                    "credentials": dict(cls.credentials_spec),
                    "module": self._origin.get(name, ""),
                    "schema": cls.Config.model_json_schema(),
                }
            )
        return out


def _node_classes(obj: Any) -> Iterable[type[Node]]:
    if inspect.isclass(obj) and issubclass(obj, Node):
        return [obj]
    if isinstance(obj, ModuleType):
        return [
            v
            for v in vars(obj).values()
            if inspect.isclass(v) and issubclass(v, Node) and v.type and v.__module__ == obj.__name__
        ]
    if isinstance(obj, (list, tuple)):
        return [c for c in obj if inspect.isclass(c) and issubclass(c, Node)]
    if callable(obj):
        return _node_classes(obj())
    return []


_default: NodeRegistry | None = None


def default_registry() -> NodeRegistry:
    """The process-wide registry, loaded from entry points on first use."""
    global _default
    if _default is None:
        _default = NodeRegistry()
        _default.load_entry_points()
    return _default
