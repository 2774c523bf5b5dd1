"""The import report: for each node of a flow set, whether it runs here, runs with a caveat, or cannot run.

    entries = import_report(flows, registry)
    # [{"id": "a1", "type": "function", "name": "", "z": "t1", "status": "caveat",
    #   "reasons": ["Buffer has from/isBuffer/alloc/concat/toString only"]}, ...]

Nothing is deployed. `sofiaflow flows import FILE --report` prints it; the editor's import dialog
calls `import_report` before it deploys. Reasons come from validation (bad config, types that are
not installed), from a node type's optional `import_caveats(config)` classmethod, and from the
known differences from Node-RED listed in `KNOWN_CAVEATS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from sofiaflow.runtime.errors import FlowFormatError
from sofiaflow.runtime.flows import model as flowmodel
from sofiaflow.runtime.flows.registry import NodeRegistry

RUNS = "runs"
CAVEAT = "caveat"
CANNOT_RUN = "cannot-run"

NODE_RED_CORE_TYPES = frozenset(
    {
        "inject",
        "debug",
        "complete",
        "catch",
        "status",
        "link in",
        "link out",
        "link call",
        "comment",
        "junction",
        "global-config",
        "unknown",
        "function",
        "switch",
        "change",
        "range",
        "template",
        "delay",
        "trigger",
        "exec",
        "rbe",
        "tls-config",
        "http proxy",
        "mqtt-broker",
        "mqtt in",
        "mqtt out",
        "http in",
        "http response",
        "http request",
        "websocket-listener",
        "websocket-client",
        "websocket in",
        "websocket out",
        "tcp in",
        "tcp out",
        "tcp request",
        "udp in",
        "udp out",
        "csv",
        "html",
        "json",
        "xml",
        "yaml",
        "split",
        "join",
        "sort",
        "batch",
        "file",
        "file in",
        "watch",
    }
)
"""Node types Node-RED 4 ships; any other unknown type comes from a contrib package."""

KNOWN_CAVEATS: dict[str, str] = {}
"""Per type: a difference from Node-RED that applies to every node of that type."""


@dataclass
class ReportEntry:
    """One node of the report."""

    id: str
    type: str
    name: str = ""
    z: str | None = None
    status: str = RUNS
    reasons: list[str] = field(default_factory=list)

    def worsen(self, status: str, reason: str) -> None:
        order = (RUNS, CAVEAT, CANNOT_RUN)
        if order.index(status) > order.index(self.status):
            self.status = status
        if reason not in self.reasons:
            self.reasons.append(reason)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def import_report(flows: list[dict], registry: NodeRegistry) -> list[dict[str, Any]]:
    """One entry per flow node and config node of `flows` (see the module docstring)."""
    if not isinstance(flows, list):
        raise FlowFormatError("flows must be a JSON array of node objects")
    fs = flowmodel.load(flows, registry)
    entries: dict[str, ReportEntry] = {}
    for obj in list(fs.flow_nodes.values()) + list(fs.configs.values()):
        entries[obj["id"]] = ReportEntry(
            obj["id"], str(obj.get("type", "")), obj.get("name") or "", obj.get("z")
        )
    for problem in flowmodel.validate(fs, registry):
        entry = entries.get(problem.node_id or "")
        if entry is None:
            continue
        if problem.severity == "warning":
            entry.worsen(CAVEAT, problem.message)
        else:
            message = (
                f"{problem.field}: {problem.message}"
                if problem.field and problem.field != "type"
                else problem.message
            )
            entry.worsen(CANNOT_RUN, _explain(entry.type, message, registry))
    for entry in entries.values():
        if entry.status == CANNOT_RUN:
            continue
        for reason in _caveats(fs.by_id[entry.id], registry):
            entry.worsen(CAVEAT, reason)
    return [e.as_dict() for e in entries.values()]


def _explain(kind: str, message: str, registry: NodeRegistry) -> str:
    if registry.find(kind) is not None or kind.startswith("subflow:"):
        return message
    if kind in NODE_RED_CORE_TYPES:
        return f"Node-RED core node type {kind!r} is not available in sofiaflow"
    return f"node type {kind!r} is not installed (it comes from a Node-RED contrib package)"


def _caveats(obj: dict, registry: NodeRegistry) -> list[str]:
    kind = str(obj.get("type", ""))
    reasons = [KNOWN_CAVEATS[kind]] if kind in KNOWN_CAVEATS else []
    cls = registry.find(kind)
    hook = getattr(cls, "import_caveats", None) if cls is not None else None
    if hook is not None:
        try:
            reasons.extend(hook(cls.Config.model_validate(obj)))
        except ValidationError:
            pass
    return reasons


def format_report(entries: list[dict[str, Any]]) -> str:
    """The report as text, one line per node (and one per reason), counts at the end."""
    lines = []
    for e in entries:
        label = f"{e['type']} {e['id']}" + (f" ({e['name']})" if e["name"] else "")
        lines.append(f"{e['status']:<10} {label}")
        lines.extend(f"{'':<10}   - {reason}" for reason in e["reasons"])
    counts = {s: sum(1 for e in entries if e["status"] == s) for s in (RUNS, CAVEAT, CANNOT_RUN)}
    lines.append(f"{counts[RUNS]} run, {counts[CAVEAT]} run with a caveat, {counts[CANNOT_RUN]} cannot run")
    return "\n".join(lines)
