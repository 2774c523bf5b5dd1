"""The runtime's small error hierarchy. Code branches on the type, never on the text."""

from __future__ import annotations

from dataclasses import dataclass, field


class SofiaflowError(Exception):
    """Base of every error the runtime raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a flow set, located as precisely as possible."""

    message: str
    node_id: str | None = None
    node_type: str | None = None
    field: str | None = None
    severity: str = "error"  # "error" refuses the deploy; "not-runnable" keeps the node's tab stopped

    def __str__(self) -> str:
        where = []
        if self.node_id is not None:
            where.append(f"node {self.node_id!r}")
        if self.node_type:
            where.append(f"({self.node_type})")
        if self.field:
            where.append(f"field {self.field!r}")
        prefix = " ".join(where)
        return f"{prefix}: {self.message}" if prefix else self.message

    def as_dict(self) -> dict[str, str | None]:
        return {
            "message": self.message,
            "id": self.node_id,
            "type": self.node_type,
            "field": self.field,
            "severity": self.severity,
        }


class FlowFormatError(SofiaflowError):
    """The document is not a flow set at all (not JSON, not a list of objects)."""


@dataclass
class FlowValidationError(SofiaflowError):
    """A flow set was refused whole; `problems` lists every reason."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.problems)} problem(s):\n" + "\n".join(f"- {p}" for p in self.problems)


@dataclass
class StaleRevisionError(SofiaflowError):
    """A deploy named a revision that is no longer the current one."""

    given: str
    current: str

    def __str__(self) -> str:
        return f"deploy against revision {self.given!r}, but the current revision is {self.current!r}"


class UnknownNodeTypeError(SofiaflowError):
    """No node type of that name is registered."""


class NodeError(SofiaflowError):
    """Raised by a node to fail the current message with a plain message (no traceback needed)."""


class AuthError(SofiaflowError):
    """Credentials are missing, wrong or expired."""
