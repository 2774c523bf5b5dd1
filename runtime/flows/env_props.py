"""`${VAR}` in node properties: look-ups, substitution before the config is checked, and errors that name it.

Node-RED replaces a property whose whole value is `${NAME}` (or `$(NAME)`) with the env variable's value when it
creates the node, before the node (or anything else) checks the value; a variable that is not set leaves the
property as written. So `"port": "${PORT}"` with PORT=1883 is the number 1883, and sofiaflow does the same:
the deployer substitutes with the node's real scope and then validates the config (deploy.py), and the flow
set's checks before that (model.validate) substitute with what the flow set and the process environment say,
so that output counts and claimed resources are those of the values, and leave any property they cannot fill
to the build.

A variable is looked up as Node-RED's `getSetting` does: NR_NODE_ID/NAME/PATH, NR_FLOW_ID/NAME, NR_GROUP_ID/NAME,
then the node's group(s) (innermost first), its subflow instance and definition, its tab, the `global-config`
node's env, and the process environment. Each `$parent.` before a name skips one of those levels.

The stored flows keep `${VAR}`: only the copies built into nodes carry values.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.core.env import evaluate_env, substitute_properties, whole_env_ref
from sofiaflow.runtime.types import NodeDict

if TYPE_CHECKING:
    from sofiaflow.runtime.core.flow_scope import FlowScope
    from sofiaflow.runtime.flows.model import FlowSet

Lookup = Callable[[str], Any]
_NOT_WALKED = ("id", "type", "z", "wires")  # as substitute_properties: never substituted
_PARENT = "$parent."
_SHOWN_CHARS = 60


@dataclass(frozen=True)
class EnvRef:
    """A property (`path` in the node object) whose whole value `written` names the env variable `name`."""

    path: tuple[str | int, ...]
    name: str
    written: str

    @property
    def prop(self) -> str:
        return ".".join(str(p) for p in self.path)


def env_refs(raw: NodeDict) -> list[EnvRef]:
    """Every property of `raw` that is a whole `${VAR}` or `$(VAR)`, at any depth."""
    if not any(map(_may_name, (v for k, v in raw.items() if k not in _NOT_WALKED))):
        return []  # the usual case, without building a path for every value
    found: list[EnvRef] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [
        ((k,), v) for k, v in raw.items() if k not in _NOT_WALKED
    ]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            name = whole_env_ref(value)
            if name is not None:
                found.append(EnvRef(path, name, value))
        elif isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
    found.sort(key=lambda r: [str(p) for p in r.path])
    return found


def _may_name(value: Any) -> bool:
    if isinstance(value, str):
        return value[:1] == "$"
    if isinstance(value, dict):
        return any(map(_may_name, value.values()))
    if isinstance(value, list):
        return any(map(_may_name, value))
    return False


def level_lookup(levels: Iterable[Mapping[str, Any] | Lookup], builtins: Mapping[str, Any]) -> Lookup:
    """A look-up through `levels` (innermost first; a mapping, or a function for the last one), after the
    NR_ built-ins; `$parent.NAME` skips one level per prefix, as Node-RED's flows and groups do."""
    chain = list(levels)

    def lookup(name: str) -> Any:
        if name in builtins and builtins[name] is not None:
            return builtins[name]
        skip = 0
        while name.startswith(_PARENT):
            name, skip = name[len(_PARENT) :], skip + 1
        for level in chain[skip:]:
            if callable(level):
                value = level(name)
                if value is not None:
                    return value
            elif name in level:
                return level[name]
        return None

    return lookup


class PropertyEnv:
    """The `${VAR}` properties of one node, their values (None: not set) and the node built from them."""

    def __init__(
        self,
        raw: NodeDict,
        lookup: Lookup,
        hidden: frozenset[str] = frozenset(),
        refs: list[EnvRef] | None = None,
    ) -> None:
        self.refs = env_refs(raw) if refs is None else refs
        self.values = {ref.name: lookup(ref.name) for ref in self.refs}
        self.hidden = hidden
        self.raw = raw

    @classmethod
    def of(
        cls, raw: NodeDict, lookup_for: Callable[[NodeDict], Lookup], hidden: frozenset[str] = frozenset()
    ) -> PropertyEnv | None:
        """The node's `${VAR}` properties, or None when it names no variable (its look-up is not made)."""
        refs = env_refs(raw)
        return cls(raw, lookup_for(raw), hidden, refs) if refs else None

    def substituted(self) -> NodeDict:
        """A copy of the node with each named variable's value (the node itself when it names none)."""
        if not self.refs:
            return self.raw
        return substitute_properties(self.raw, self.values.get)

    def ref_at(self, loc: Iterable[Any]) -> EnvRef | None:
        """The `${VAR}` property at (or above) a pydantic error location, if any."""
        loc = tuple(loc)
        for ref in self.refs:
            if loc[: len(ref.path)] == ref.path:
                return ref
        return None

    def is_unset(self, ref: EnvRef) -> bool:
        return self.values.get(ref.name) is None

    def describe(self, ref: EnvRef) -> str:
        """`${PORT} is env variable PORT = 'abc'`, or that it is not set."""
        if self.is_unset(ref):
            return (
                f"{ref.written} names env variable {ref.name}, which is not set (in the node's group, flow, "
                "subflow or global env, or the process environment), so the property stays as written"
            )
        return f"{ref.written} is env variable {ref.name} = {self.shown(ref)}"

    def shown(self, ref: EnvRef) -> str:
        if ref.name in self.hidden or ref.name.removeprefix(_PARENT) in self.hidden:
            return "(a credential, not shown)"
        text = repr(self.values.get(ref.name))
        return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."

    def invalid(self, loc: Iterable[Any], msg: str) -> tuple[str, EnvRef] | None:
        """The message for a config error at `loc` on a `${VAR}` property, or None when `loc` is not one."""
        ref = self.ref_at(loc)
        if ref is None:
            return None
        return f"{self.describe(ref)}: {msg}", ref

    def mentioned(self, message: str) -> list[EnvRef]:
        """The `${VAR}` properties a node's own error message names (`'port'`, `port`), or whose value it
        quotes."""
        found = []
        for ref in self.refs:
            top = str(ref.path[0])
            value = self.values.get(ref.name)
            if re.search(rf"(?<![\w.]){re.escape(top)}(?![\w])", message) or (
                value is not None and not isinstance(value, bool) and repr(value) in message
            ):
                found.append(ref)
        return found

    def annotate(self, message: str) -> tuple[str, list[EnvRef]]:
        """A node's setup error with the `${VAR}` properties it is about, and those properties."""
        refs = self.mentioned(message)
        if not refs:
            return message, []
        notes = "; ".join(f"{ref.prop}: {self.describe(ref)}" for ref in refs)
        return f"{message} ({notes})", refs


def scope_lookup(scope: FlowScope, raw: NodeDict) -> Lookup:
    """How a node built in `scope` looks its `${VAR}` properties up: built-ins, its groups, the scope chain
    (subflow instance and definition, tab, global env), then the process environment."""
    groups = []
    group_id = raw.get("g")
    seen: set[str] = set()
    while isinstance(group_id, str) and group_id in scope.groups and group_id not in seen:
        seen.add(group_id)
        group = scope.groups[group_id]
        groups.append(group.get("env") or {})
        group_id = group.get("g")
    levels: list[Mapping[str, Any] | Lookup] = list(groups)
    current: FlowScope | None = scope
    while current is not None:
        merged: dict[str, Any] = {}
        for layer in reversed(current.env):  # the first layer (the instance) wins
            merged.update(layer)
        levels.append(merged)
        current = current.parent
    levels.append(os.environ.get)
    first_group = scope.groups.get(raw.get("g") or "") or {}
    builtins = {
        "NR_NODE_ID": raw.get("id"),
        "NR_NODE_NAME": raw.get("name"),
        "NR_NODE_PATH": f"{scope.id}/{raw.get('id')}",
        "NR_FLOW_ID": scope.id,
        "NR_FLOW_NAME": scope.label,
        "NR_GROUP_ID": raw.get("g"),
        "NR_GROUP_NAME": first_group.get("name"),
    }
    return level_lookup(levels, builtins)


def static_lookups(fs: FlowSet) -> Callable[[NodeDict], Lookup]:
    """For the checks before a deploy builds anything: each node's look-up from the flow set alone (a node of a
    subflow definition sees the definition's env: an instance may set other values, the build uses those)."""
    global_env: dict[str, Any] = {}
    for obj in fs.configs.values():
        if obj.get("type") == "global-config":
            global_env = _evaluated(obj.get("env"), os.environ.get)
    root = level_lookup([global_env, os.environ.get], {})
    containers: dict[str, dict[str, Any]] = {}
    groups: dict[str, dict[str, Any]] = {}

    def container_env(z: str) -> dict[str, Any]:
        if z not in containers:
            obj = fs.tabs.get(z) or fs.subflows.get(z) or {}
            containers[z] = _evaluated(obj.get("env"), root)
        return containers[z]

    def group_env(group_id: str) -> dict[str, Any]:
        if group_id not in groups:
            groups[group_id] = _evaluated(fs.groups[group_id].get("env"), lambda _name: None)
        return groups[group_id]

    def for_node(raw: NodeDict) -> Lookup:
        levels: list[Mapping[str, Any] | Lookup] = []
        group_id, seen = raw.get("g"), set()
        while isinstance(group_id, str) and group_id in fs.groups and group_id not in seen:
            seen.add(group_id)
            levels.append(group_env(group_id))
            group_id = fs.groups[group_id].get("g")
        z = raw.get("z")
        if isinstance(z, str):
            levels.append(container_env(z))
        levels.extend([global_env, os.environ.get])
        label = fs.container_label(z) if isinstance(z, str) else "global"
        builtins = {
            "NR_NODE_ID": raw.get("id"),
            "NR_NODE_NAME": raw.get("name"),
            "NR_NODE_PATH": f"{z}/{raw.get('id')}",
            "NR_FLOW_ID": z,
            "NR_FLOW_NAME": label,
            "NR_GROUP_ID": raw.get("g"),
            "NR_GROUP_NAME": (fs.groups.get(raw.get("g") or "") or {}).get("name"),
        }
        return level_lookup(levels, builtins)

    return for_node


def credential_env_names(objects: Iterable[Any]) -> frozenset[str]:
    """The names of `cred` env entries anywhere in a flow set: their values are never shown in a message."""
    names = set()
    for obj in objects:
        if isinstance(obj, dict) and isinstance(obj.get("env"), list):
            for entry in obj["env"]:
                if (
                    isinstance(entry, dict)
                    and entry.get("type") == "cred"
                    and isinstance(entry.get("name"), str)
                ):
                    names.add(entry["name"])
    return frozenset(names)


def _evaluated(entries: Any, parent: Lookup) -> dict[str, Any]:
    return evaluate_env(entries if isinstance(entries, list) else [], parent)
