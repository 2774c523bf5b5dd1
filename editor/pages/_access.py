"""Who may do what on the control-panel pages (the admin API's rules), and their audit entries.

Roles: administrators do everything; developers create and change devices and ontologies, and change
the ontologies they own; users only read. Reading an ontology's data needs the QUERY right.
"""

from __future__ import annotations

from typing import Any

from sofiaflow.editor.context import get_context
from sofiaflow.editor.session import current_user

WRITERS = ("administrator", "developer")


def current_role() -> str | None:
    """The role of this browser's user (None when not logged in or unknown)."""
    user = current_user()
    if user is None:
        return None
    try:
        return get_context().auth.role_of(user)
    except Exception:  # noqa: BLE001 - an unknown user reads nothing
        return None


def may_write() -> bool:
    """Whether the user may create and change devices and ontologies."""
    return current_role() in WRITERS


def may_change_ontology(owner: str | None) -> bool:
    """Changing an existing ontology is for its owner and administrators."""
    role = current_role()
    return role == "administrator" or (role in WRITERS and owner is not None and owner == current_user())


def query_refusal(ontology: str) -> str | None:
    """Why the user may not read `ontology`'s data, or None when they may."""
    engine = get_context().runtime.engine
    permissions = engine.services.get("permissions") if engine is not None else None
    if permissions is None:
        return None
    try:
        permissions.check(current_user(), ontology, "QUERY")
    except PermissionError as exc:
        audit("query ontology data", ontology, "denied", {"message": str(exc)})
        return str(exc)
    return None


def audit(action: str, target: str | None = None, outcome: str = "ok", detail: Any = None) -> None:
    """An audit-log entry for the user (when the runtime keeps a log)."""
    log = getattr(get_context().runtime, "audit", None)
    if log is not None:
        log.record(current_user(), action, target, outcome, detail)
