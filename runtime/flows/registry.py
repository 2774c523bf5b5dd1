"""The node type registry, filled from the `sofiaflow.nodes` entry point group.

Built-in nodes register the same way as third-party packages: each entry point names a `Node`
subclass (or a module or list of them). `pip install` a package that declares
`[project.entry-points."sofiaflow.nodes"]` and its types appear in the palette.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from sofiaflow.runtime.core.node import Node
from sofiaflow.runtime.data.config_db import settings_kv
from sofiaflow.runtime.errors import UnknownNodeTypeError

log = logging.getLogger("sofiaflow.registry")

ENTRY_POINT_GROUP = "sofiaflow.nodes"

NODE_RED_MODULE = "node-red"
NODE_RED_SETS: dict[str, tuple[str, ...]] = {
    "junction": ("junction",),
    "inject": ("inject",),
    "debug": ("debug",),
    "complete": ("complete",),
    "catch": ("catch",),
    "status": ("status",),
    "link": ("link in", "link out", "link call"),
    "comment": ("comment",),
    "global-config": ("global-config",),
    "unknown": ("unknown",),
    "function": ("function",),
    "switch": ("switch",),
    "change": ("change",),
    "range": ("range",),
    "template": ("template",),
    "delay": ("delay",),
    "trigger": ("trigger",),
    "exec": ("exec",),
    "rbe": ("rbe",),
    "tls": ("tls-config",),
    "httpproxy": ("http proxy",),
    "mqtt": ("mqtt in", "mqtt out", "mqtt-broker"),
    "httpin": ("http in", "http response"),
    "httprequest": ("http request",),
    "websocket": ("websocket in", "websocket out", "websocket-listener", "websocket-client"),
    "tcpin": ("tcp in", "tcp out", "tcp request"),
    "udp": ("udp in", "udp out"),
    "CSV": ("csv",),
    "HTML": ("html",),
    "JSON": ("json",),
    "XML": ("xml",),
    "YAML": ("yaml",),
    "split": ("split", "join"),
    "sort": ("sort",),
    "batch": ("batch",),
    "file": ("file", "file in"),
    "watch": ("watch",),
}
"""Node-RED 4.1's core node sets (module `node-red`) and the types each holds, in its palette order."""
_NODE_RED_SET_OF = {t: s for s, types in NODE_RED_SETS.items() for t in types}
DISABLED_SETS_KEY = "nodes.disabled"


class NodeRegistry:
    """Node types by type name, and where each came from."""

    def __init__(self) -> None:
        self._types: dict[str, type[Node]] = {}
        self._origin: dict[str, str] = {}
        self.load_errors: list[str] = []
        self.disabled_sets: set[str] = set()

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

    def set_id(self, type_name: str) -> str:
        """The node set holding a type: `node-red/<set>` for Node-RED's core types, `sofiaflow/<family>` for
        sofiaflow's own (its nodes/<family> package), `<distribution>/<type>` for third-party ones."""
        cls = self._types.get(type_name)
        origin = self._origin.get(type_name, "")
        if origin == "sofiaflow" and type_name in _NODE_RED_SET_OF:
            return f"{NODE_RED_MODULE}/{_NODE_RED_SET_OF[type_name]}"
        if cls is not None and origin == "sofiaflow" and cls.__module__.startswith("sofiaflow.nodes."):
            return f"sofiaflow/{cls.__module__.split('.')[2]}"
        return f"{origin or 'local'}/{type_name}"

    def disabled_set(self, type_name: str) -> str | None:
        """The disabled node set holding `type_name`, or None when the type may run."""
        if not self.disabled_sets or type_name not in self._types:
            return None
        set_id = self.set_id(type_name)
        return set_id if set_id in self.disabled_sets else None

    def set_enabled(self, set_id: str, enabled: bool) -> None:
        (self.disabled_sets.discard if enabled else self.disabled_sets.add)(set_id)

    def load_disabled(self, db: Engine) -> None:
        """Take the disabled node sets from the config DB (none when never set)."""
        with db.connect() as conn:
            raw = conn.execute(
                select(settings_kv.c.value).where(settings_kv.c.key == DISABLED_SETS_KEY)
            ).scalar()
        self.disabled_sets = set(json.loads(raw)) if raw else set()

    def save_disabled(self, db: Engine) -> None:
        value = json.dumps(sorted(self.disabled_sets))
        with db.begin() as conn:
            conn.execute(delete(settings_kv).where(settings_kv.c.key == DISABLED_SETS_KEY))
            conn.execute(insert(settings_kv).values(key=DISABLED_SETS_KEY, value=value))

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
