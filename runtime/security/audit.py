"""The audit log: who did what, when, and whether it was allowed, kept in the config DB.

Deploys, user and permission changes, and every refusal (403) are recorded; administrators read it
with `GET /audit`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, desc, insert, select

from sofiaflow.runtime.data.config_db import audit_log

log = logging.getLogger("sofiaflow.audit")
OUTCOMES = ("ok", "denied", "failed")


class AuditLog:
    """Append-only record of security-relevant actions."""

    def __init__(self, db: Engine) -> None:
        self._db = db

    def record(
        self,
        user: str | None,
        action: str,
        target: str | None = None,
        outcome: str = "ok",
        detail: Any = None,
    ) -> None:
        """Add an entry; `outcome` is ok, denied or failed; `detail` any JSON value."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of {', '.join(OUTCOMES)}")
        text = None if detail is None else json.dumps(detail, default=str)[:4000]
        with self._db.begin() as conn:
            conn.execute(
                insert(audit_log).values(
                    at=datetime.now(UTC),
                    user=user,
                    action=action,
                    target=target,
                    outcome=outcome,
                    detail=text,
                )
            )
        if outcome == "denied":
            log.warning("denied: %s %s %s", user, action, target)

    def entries(
        self, user: str | None = None, action: str | None = None, outcome: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The newest entries first, optionally only one user's, action's or outcome's."""
        query = select(audit_log).order_by(desc(audit_log.c.id)).limit(limit)
        if user is not None:
            query = query.where(audit_log.c.user == user)
        if action is not None:
            query = query.where(audit_log.c.action == action)
        if outcome is not None:
            query = query.where(audit_log.c.outcome == outcome)
        with self._db.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "at": _iso(r.at),
                "user": r.user,
                "action": r.action,
                "target": r.target,
                "outcome": r.outcome,
                "detail": None if r.detail is None else json.loads(r.detail),
            }
            for r in rows
        ]


def _iso(value: datetime) -> str:
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")
