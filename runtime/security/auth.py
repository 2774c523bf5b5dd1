"""Admin users and bearer tokens for the admin API, kept in the config DB.

Passwords are argon2 hashes; tokens are random strings stored only as sha256 hashes, valid for
`settings.token_lifetime` seconds. Failed logins are rate-limited in memory per (username, client
address), so a stranger failing logins from elsewhere cannot lock the owner out, and per client address
over every username, so one address cannot spray guesses across accounts. A password change revokes
the user's tokens (API and editor sessions); deleting a user first runs the `on_user_deleted` callbacks,
which release what the user owned and held.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, insert, select, update

from sofiaflow.runtime.data.config_db import tokens as tokens_table
from sofiaflow.runtime.data.config_db import users as users_table
from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.settings import Settings

ADMIN_USER = "admin"
SCOPES = ("*", "read")
ROLES = ("administrator", "developer", "user")
"""administrator: everything; developer: builds and deploys flows, ontologies, devices; user: reads only."""
_ROLE_ALIASES = {"admin": "administrator"}
_ANY_USER = "\x00any"
"""The user-name part of the per-address failure counter (no user name contains a NUL)."""


def check_role(role: object) -> str:
    """The role name (`admin` is taken as `administrator`); AuthError for anything else."""
    if isinstance(role, str):
        role = _ROLE_ALIASES.get(role, role)
        if role in ROLES:
            return role
    raise AuthError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")


class TooManyAttemptsError(AuthError):
    """Too many failed logins for this username from this client; retry later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"too many attempts: retry in {int(retry_after) + 1} s")
        self.retry_after = retry_after


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _aware(value: datetime) -> datetime:
    """SQLite hands datetimes back naive; they were written in UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class AuthService:
    """Users, password checks and tokens (see the module docstring)."""

    def __init__(
        self,
        engine_db: Engine,
        settings: Settings,
        max_failures: int = 5,
        window: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        max_address_failures: int = 30,
    ) -> None:
        self._db = engine_db
        self.settings = settings
        self.max_failures = max_failures
        self.max_address_failures = max_address_failures
        self._deleted_callbacks: list[Callable[[str], None]] = []
        self.window = window
        self._monotonic = monotonic
        self._hasher = PasswordHasher()
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    # ----- users ---------------------------------------------------------------------------------
    def ensure_admin(self) -> str | None:
        """Create user `admin` on first start; returns the password only when it was generated here."""
        if self.user_exists(ADMIN_USER):
            return None
        generated = None
        password = self.settings.admin_password
        if not password:
            password = generated = secrets.token_urlsafe(12)
        self.add_user(ADMIN_USER, password)
        return generated

    def user_exists(self, username: str) -> bool:
        with self._db.connect() as conn:
            row = conn.execute(
                select(users_table.c.username).where(users_table.c.username == username)
            ).first()
        return row is not None

    def add_user(self, username: str, password: str, role: str = "administrator") -> None:
        """Create a user (raises AuthError when the name is taken, the password empty or the role unknown)."""
        role = check_role(role)
        if not username or not password:
            raise AuthError("a user needs a non-empty username and password")
        if "\x00" in username:
            raise AuthError("a username must not contain a NUL character")
        if self.user_exists(username):
            raise AuthError(f"user {username!r} already exists")
        with self._db.begin() as conn:
            conn.execute(
                insert(users_table).values(
                    username=username,
                    password_hash=self._hasher.hash(password),
                    role=role,
                    created=datetime.now(UTC),
                )
            )

    def users(self) -> list[dict[str, str]]:
        """Every user with role and creation time (never a password hash)."""
        with self._db.connect() as conn:
            rows = conn.execute(
                select(users_table.c.username, users_table.c.role, users_table.c.created).order_by(
                    users_table.c.username
                )
            ).all()
        return [
            {"username": r[0], "role": check_role(r[1]), "created": _aware(r[2]).isoformat()} for r in rows
        ]

    def role_of(self, username: str) -> str:
        with self._db.connect() as conn:
            row = conn.execute(select(users_table.c.role).where(users_table.c.username == username)).first()
        if row is None:
            raise AuthError(f"no user {username!r}")
        return check_role(row[0])

    def set_role(self, username: str, role: str) -> None:
        """Change a user's role; the last administrator keeps theirs."""
        role = check_role(role)
        if (
            role != "administrator"
            and self.role_of(username) == "administrator"
            and self._administrators() == 1
        ):
            raise AuthError(f"{username!r} is the last administrator; make another one first")
        with self._db.begin() as conn:
            conn.execute(update(users_table).where(users_table.c.username == username).values(role=role))

    def on_user_deleted(self, callback: Callable[[str], None]) -> None:
        """Call `callback(username)` when a user is deleted, before the user row goes (a failing callback keeps
        the user, so the deletion can be retried)."""
        if callback not in self._deleted_callbacks:
            self._deleted_callbacks.append(callback)

    def delete_user(self, username: str) -> None:
        """Delete a user and their tokens after the `on_user_deleted` callbacks released what they owned and
        held; the last administrator cannot be deleted."""
        if self.role_of(username) == "administrator" and self._administrators() == 1:
            raise AuthError(f"{username!r} is the last administrator and cannot be deleted")
        for callback in list(self._deleted_callbacks):
            callback(username)
        with self._db.begin() as conn:
            conn.execute(delete(tokens_table).where(tokens_table.c.username == username))
            conn.execute(delete(users_table).where(users_table.c.username == username))

    def _administrators(self) -> int:
        return sum(1 for user in self.users() if user["role"] == "administrator")

    def set_password(self, username: str, password: str) -> None:
        """Change a user's password and revoke every token they hold (API tokens and editor sessions)."""
        if not password:
            raise AuthError("the password must not be empty")
        with self._db.begin() as conn:
            done = conn.execute(
                update(users_table)
                .where(users_table.c.username == username)
                .values(password_hash=self._hasher.hash(password))
            ).rowcount
            conn.execute(delete(tokens_table).where(tokens_table.c.username == username))
        if not done:
            raise AuthError(f"no user {username!r}")

    def verify_password(self, username: str, password: str) -> bool:
        with self._db.connect() as conn:
            row = conn.execute(
                select(users_table.c.password_hash).where(users_table.c.username == username)
            ).first()
        if row is None:
            self._hasher.hash(password or "-")  # spend the same time as for a real user
            return False
        try:
            return self._hasher.verify(row[0], password)
        except (VerificationError, InvalidHashError):
            return False

    # ----- tokens --------------------------------------------------------------------------------
    def issue_token(
        self, username: str, password: str, scope: str = "*", client: str = ""
    ) -> tuple[str, int]:
        """A new bearer token and its lifetime in seconds; AuthError on bad credentials."""
        if scope not in SCOPES:
            raise AuthError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
        key = (username, client)
        address = (_ANY_USER, client)
        self._check_rate(address, self.max_address_failures)
        self._check_rate(key, self.max_failures)
        if not self.verify_password(username, password):
            self._record_failure(key)
            self._record_failure(address)
            raise AuthError("invalid username or password")
        with self._lock:
            self._failures.pop(key, None)
        token = secrets.token_urlsafe(32)
        lifetime = int(self.settings.token_lifetime)
        expires = datetime.now(UTC) + timedelta(seconds=lifetime)
        with self._db.begin() as conn:
            conn.execute(delete(tokens_table).where(tokens_table.c.expires < datetime.now(UTC)))
            conn.execute(
                insert(tokens_table).values(
                    token_hash=_hash_token(token), username=username, scope=scope, expires=expires
                )
            )
        return token, lifetime

    def token_info(self, token: str) -> tuple[str, str]:
        """(username, scope) of a valid token; AuthError when it is unknown or expired."""
        if not token:
            raise AuthError("no token given")
        digest = _hash_token(token)
        with self._db.connect() as conn:
            row = conn.execute(
                select(tokens_table.c.username, tokens_table.c.scope, tokens_table.c.expires).where(
                    tokens_table.c.token_hash == digest
                )
            ).first()
        if row is None:
            raise AuthError("unknown token")
        if _aware(row[2]) <= datetime.now(UTC):
            self.revoke(token)
            raise AuthError("the token has expired")
        return row[0], row[1]

    def identity(self, token: str) -> tuple[str, str, str]:
        """(username, scope, role) of a valid token; AuthError when it is unknown or expired."""
        username, scope = self.token_info(token)
        return username, scope, self.role_of(username)

    def check_token(self, token: str) -> str:
        """The username a valid token belongs to; AuthError when it is unknown or expired."""
        return self.token_info(token)[0]

    def revoke(self, token: str) -> None:
        """Forget a token (unknown tokens are ignored)."""
        with self._db.begin() as conn:
            conn.execute(delete(tokens_table).where(tokens_table.c.token_hash == _hash_token(token or "")))

    # ----- rate limiting -------------------------------------------------------------------------
    def _recent(self, key: tuple[str, str]) -> deque[float]:
        cutoff = self._monotonic() - self.window
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= cutoff:
            times.popleft()
        return times

    def _check_rate(self, key: tuple[str, str], limit: int) -> None:
        with self._lock:
            times = self._recent(key)
            if len(times) >= limit:
                raise TooManyAttemptsError(times[0] + self.window - self._monotonic())
            if not times:
                self._failures.pop(key, None)

    def _record_failure(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._recent(key).append(self._monotonic())
            if len(self._failures) > 10_000:  # bound memory under a spray of usernames
                cutoff = self._monotonic() - self.window
                self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > cutoff}
