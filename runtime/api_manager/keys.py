"""API keys: issued per user, shown once, stored only as sha256 hashes in the config DB, revocable.

Consumers send a key as `X-OP-APIKey` (or `X-SOFIA2-APIKey`); `user_of(key)` answers from memory after the first
look-up, and forgets on revoke.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Engine, String, Table, insert, select, update

from sofiaflow.runtime.data.config_db import metadata
from sofiaflow.runtime.errors import AuthError

PREFIX = "sfk_"
MAX_LABEL = 200
MAX_KEY_LENGTH = 200
_CACHE_LIMIT = 10_000

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("username", String(200), nullable=False, index=True),
    Column("label", String(MAX_LABEL), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("revoked", DateTime(timezone=True)),
)


class UnknownKeyError(AuthError, LookupError):
    """An unknown or revoked API key."""


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """Who a valid key belongs to."""

    key_id: str
    user: str


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


class ApiKeys:
    """The API key table; see the module docstring."""

    def __init__(self, db: Engine) -> None:
        metadata.create_all(db, tables=[api_keys])
        self._db = db
        self._cache: dict[str, KeyOwner | None] = {}
        self._lock = threading.Lock()

    def create(self, user: str, label: str = "") -> dict[str, Any]:
        """A new key for `user`: {"id", "key", "label", "user", "created"}; the key itself is never shown again."""
        if not isinstance(label, str) or len(label) > MAX_LABEL:
            raise ValueError(f"label: a string of at most {MAX_LABEL} characters")
        key_id = secrets.token_hex(8)
        key = PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(UTC)
        with self._db.begin() as conn:
            conn.execute(
                insert(api_keys).values(
                    id=key_id, key_hash=_hash(key), username=user, label=label, created=created
                )
            )
        with self._lock:
            self._cache.pop(_hash(key), None)
        return {"id": key_id, "key": key, "label": label, "user": user, "created": _iso(created)}

    def list(self, user: str | None = None) -> list[dict[str, Any]]:
        """Keys (never the key text) of `user`, or of everyone; newest first."""
        query = select(api_keys).order_by(api_keys.c.created.desc())
        if user is not None:
            query = query.where(api_keys.c.username == user)
        with self._db.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "label": r.label,
                "user": r.username,
                "created": _iso(r.created),
                "revoked": _iso(r.revoked) if r.revoked else None,
            }
            for r in rows
        ]

    def owner_of_id(self, key_id: str) -> str | None:
        with self._db.connect() as conn:
            row = conn.execute(select(api_keys.c.username).where(api_keys.c.id == key_id)).first()
        return row[0] if row else None

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id; False when there is no such active key."""
        with self._db.begin() as conn:
            done = conn.execute(
                update(api_keys)
                .where((api_keys.c.id == key_id) & api_keys.c.revoked.is_(None))
                .values(revoked=datetime.now(UTC))
            ).rowcount
        with self._lock:
            self._cache.clear()
        return bool(done)

    def user_of(self, key: str) -> KeyOwner:
        """The owner of an active key; UnknownKeyError otherwise."""
        if not key or len(key) > MAX_KEY_LENGTH:
            raise UnknownKeyError("invalid API key")
        digest = _hash(key)
        with self._lock:
            if digest in self._cache:
                owner = self._cache[digest]
                if owner is None:
                    raise UnknownKeyError("invalid API key")
                return owner
        with self._db.connect() as conn:
            row = conn.execute(
                select(api_keys.c.id, api_keys.c.username).where(
                    (api_keys.c.key_hash == digest) & api_keys.c.revoked.is_(None)
                )
            ).first()
        owner = KeyOwner(row[0], row[1]) if row else None
        with self._lock:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[digest] = owner
        if owner is None:
            raise UnknownKeyError("invalid API key")
        return owner


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return value.isoformat().replace("+00:00", "Z")
