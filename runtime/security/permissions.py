"""Who may do what with an ontology's data: owners, administrators, and grants to users.

Rights are onesait's: QUERY (read), INSERT (write: insert, update, delete) and ALL (both). An
ontology's owner and every administrator hold ALL; others hold what was shared with them
(`grant`). Devices carry their own rights (`runtime/security/devices.py`). Grants live in the config DB;
checks are cached in memory and the cache is dropped on every change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Engine, String, Table, delete, insert, select

from sofiaflow.runtime.data.config_db import metadata
from sofiaflow.runtime.errors import PermissionDenied  # raised here; importers find it here too

ACCESS = ("QUERY", "INSERT", "ALL")

ontology_grants = Table(
    "ontology_grants",
    metadata,
    Column("ontology", String(200), primary_key=True),
    Column("grantee", String(200), primary_key=True),
    Column("access", String(10), nullable=False),
    Column("granted_by", String(200)),
    Column("created", DateTime(timezone=True), nullable=False),
)


def covers(held: str | None, needed: str) -> bool:
    """Does right `held` (QUERY, INSERT, ALL or None) allow `needed` (QUERY or INSERT)?"""
    return held == "ALL" or held == needed


def check_access(access: object) -> str:
    if access not in ACCESS:
        raise ValueError(f"access {access!r} is not one of {', '.join(ACCESS)}")
    return access  # type: ignore[return-value]


class Permissions:
    """Ontology rights of users. `role_of(user)` and `owner_of(ontology)` come from the auth service and the
    ontology registry (None when unknown)."""

    def __init__(
        self, db: Engine, role_of: Callable[[str], str | None], owner_of: Callable[[str], str | None]
    ) -> None:
        metadata.create_all(db, tables=[ontology_grants])
        self._db = db
        self._role_of = role_of
        self._owner_of = owner_of
        self._cache: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()

    def role_of(self, user: str) -> str | None:
        """The role of `user` (None: no such user)."""
        return self._role_of(user)

    def access(self, user: str | None, ontology: str) -> str | None:
        """The right `user` holds on `ontology`: ALL, QUERY, INSERT or None. No user (the runtime itself,
        e.g. flows deployed before owners existed) holds ALL."""
        if user is None:
            return "ALL"
        key = (user, ontology)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        if self._role_of(user) == "administrator" or self._owner_of(ontology) == user:
            held: str | None = "ALL"
        else:
            with self._db.connect() as conn:
                row = conn.execute(
                    select(ontology_grants.c.access).where(
                        (ontology_grants.c.ontology == ontology) & (ontology_grants.c.grantee == user)
                    )
                ).first()
            held = row[0] if row else None
        with self._lock:
            self._cache[key] = held
        return held

    def check(self, user: str | None, ontology: str, needed: str) -> None:
        """Raise PermissionDenied unless `user` may `needed` (QUERY or INSERT) on `ontology`."""
        if not covers(self.access(user, ontology), needed):
            raise PermissionDenied(f"user {user!r} has no {needed} right on ontology {ontology!r}")

    def device_rights_refusal(self, user: str | None, role: str | None, rights: object) -> str | None:
        """Why `user` may not give a device `rights` ({ontology: QUERY|INSERT|ALL}), or None: nobody hands out a
        right they do not hold themselves (administrators hold every right)."""
        if role in (None, "administrator") or not isinstance(rights, dict):
            return None
        for ontology, right in rights.items():
            wanted = str(right).upper()
            held = self.access(user, ontology)
            if not all(
                covers(held, need) for need in (("QUERY", "INSERT") if wanted == "ALL" else (wanted,))
            ):
                return (
                    f"{user!r} cannot give a device the {wanted} right on ontology {ontology!r}: they hold "
                    f"{held or 'no right'} on it"
                )
        return None

    def grant(self, ontology: str, grantee: str, access: str, by: str | None = None) -> None:
        access = check_access(access)
        with self._db.begin() as conn:
            conn.execute(
                delete(ontology_grants).where(
                    (ontology_grants.c.ontology == ontology) & (ontology_grants.c.grantee == grantee)
                )
            )
            conn.execute(
                insert(ontology_grants).values(
                    ontology=ontology,
                    grantee=grantee,
                    access=access,
                    granted_by=by,
                    created=datetime.now(UTC),
                )
            )
        self.forget()

    def revoke(self, ontology: str, grantee: str) -> bool:
        with self._db.begin() as conn:
            done = conn.execute(
                delete(ontology_grants).where(
                    (ontology_grants.c.ontology == ontology) & (ontology_grants.c.grantee == grantee)
                )
            ).rowcount
        self.forget()
        return bool(done)

    def grants(self, ontology: str) -> list[dict[str, Any]]:
        with self._db.connect() as conn:
            rows = conn.execute(
                select(ontology_grants)
                .where(ontology_grants.c.ontology == ontology)
                .order_by(ontology_grants.c.grantee)
            ).all()
        return [{"grantee": r.grantee, "access": r.access, "granted_by": r.granted_by} for r in rows]

    def revoke_all(self, grantee: str) -> int:
        """Drop every grant held by `grantee` (a user being deleted); how many there were."""
        with self._db.begin() as conn:
            done = conn.execute(delete(ontology_grants).where(ontology_grants.c.grantee == grantee)).rowcount
        self.forget()
        return done

    def forget(self) -> None:
        """Drop cached answers (after a grant, a role or an owner change)."""
        with self._lock:
            self._cache.clear()
