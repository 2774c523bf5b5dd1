"""The error hierarchy of sofiaflow. Callers (the HTTP layer, the CLI, nodes) branch on the type, never on the text.

Every exception class the code base defines derives from `SofiaflowError`, through one of a few bases that say
what went wrong and so what the caller should do (the admin API's status in brackets, mapped in one place:
`sofiaflow.runtime.http.error_status`):

- `ValidationError` (400): bad input; the message names what and where. Also a `ValueError`.
- `AuthError` (401): credentials missing, wrong or expired.
- `PermissionDenied` (403): the caller is known but may not do this. Also a `PermissionError`.
- `NotFound` (404): no such thing (ontology, device, node type...). Also a `LookupError`.
- `Conflict` (409): the request clashes with what is stored (exists already, stale revision, in use).
- `ServiceUnavailable` (503): a service did not answer: a sandbox worker crashed or timed out, a broker or
  remote server is unreachable. Retrying later may work.
- `NodeError`: a node failed the current message; it goes to catch nodes, not to an HTTP caller.

Areas group their errors under a family base (`OntologyError`, `DeviceError`, `RtdbError`, `SandboxError`...)
deriving from `SofiaflowError`; each concrete error also takes the meaning base that fits. A few errors carry
their own answer (`ApiError`, the API Manager's `CallError`, SSAP's `SsapError`) and derive from `SofiaflowError`
directly. Library errors are wrapped with `raise ... from err`, so the cause stays in the traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SofiaflowError(Exception):
    """Base of every error sofiaflow raises on purpose."""


class ValidationError(SofiaflowError, ValueError):
    """Bad input: the message names what is wrong and where (field, node, position)."""


class AuthError(SofiaflowError):
    """Credentials are missing, wrong or expired."""


class PermissionDenied(SofiaflowError, PermissionError):
    """The caller is known but lacks the right; the message names who, which right and on what."""


class NotFound(SofiaflowError, LookupError):
    """No such thing; the message names what was looked for."""


class Conflict(SofiaflowError):
    """The request clashes with the stored state (exists already, stale revision, still in use)."""


class ServiceUnavailable(SofiaflowError):
    """A service did not answer (crashed, timed out, unreachable, not started); retrying later may work."""


class NodeError(SofiaflowError):
    """Raised by a node to fail the current message with a plain message (no traceback needed)."""


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


class FlowFormatError(ValidationError):
    """The document is not a flow set at all (not JSON, not a list of objects)."""


@dataclass
class FlowValidationError(ValidationError):
    """A flow set was refused whole; `problems` lists every reason."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{len(self.problems)} problem(s):\n" + "\n".join(f"- {p}" for p in self.problems)


@dataclass
class StaleRevisionError(Conflict):
    """A deploy named a revision that is no longer the current one."""

    given: str
    current: str

    def __str__(self) -> str:
        return f"deploy against revision {self.given!r}, but the current revision is {self.current!r}"


class UnknownNodeTypeError(NotFound):
    """No node type of that name is registered."""
