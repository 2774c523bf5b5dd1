"""Digital-client sessions: JOIN gives a random session key that expires after an idle time."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sofiaflow.runtime.onesait.ssap import AUTHENTICATION, SsapError

MAX_SESSIONS = 100_000
SWEEP_EVERY = 256  # joins between two sweeps of expired sessions


@dataclass
class Session:
    key: str
    client: Any  # the device (digital client) as authenticated at JOIN
    instance: str | None
    token_id: str
    last_used: float
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def client_name(self) -> str:
        return self.client.name


class SessionStore:
    """Sessions by key; each use resets its idle clock; an idle one is refused (AUTENTICATION) and forgotten."""

    def __init__(self, idle_timeout: float, clock: Callable[[], float] = time.monotonic) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._joins = 0

    @classmethod
    def create(
        cls,
        idle_timeout: float,
        clock: Callable[[], float] = time.monotonic,
        redis: Any = None,
        namespace: str = "",
    ) -> SessionStore:
        """In-process sessions, or, given the cluster's REDIS service, sessions every worker shares
        (runtime/cluster/shared_sessions.py; `namespace`: the ssap-broker's id)."""
        if redis is None:
            return cls(idle_timeout, clock)
        from sofiaflow.runtime.cluster.shared_sessions import RedisSessionStore, sync_twin

        return RedisSessionStore(sync_twin(redis), idle_timeout, namespace, clock)  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, client: Any, instance: str | None, token_id: str, renew: str | None = None) -> Session:
        """A session for `client`; `renew`, a live key of the same client, is kept and refreshed."""
        now = self.clock()
        old = self._sessions.get(renew) if renew else None
        if old is not None and old.client_name == client.name and now - old.last_used <= self.idle_timeout:
            old.client, old.instance, old.token_id, old.last_used = (
                client,
                instance or old.instance,
                token_id,
                now,
            )
            return old
        self._joins += 1
        if self._joins % SWEEP_EVERY == 0 or len(self._sessions) >= MAX_SESSIONS:
            self.sweep()
        if len(self._sessions) >= MAX_SESSIONS:
            raise SsapError(AUTHENTICATION, f"too many open sessions (at most {MAX_SESSIONS})")
        session = Session(str(uuid.uuid4()), client, instance, token_id, now)
        self._sessions[session.key] = session
        return session

    def use(self, key: Any) -> Session:
        """The live session of `key` (its idle clock reset); SsapError(AUTENTICATION) otherwise."""
        session = self._sessions.get(key) if isinstance(key, str) else None
        if session is None:
            raise SsapError(AUTHENTICATION, "unknown session key: JOIN first")
        now = self.clock()
        if now - session.last_used > self.idle_timeout:
            del self._sessions[key]
            raise SsapError(
                AUTHENTICATION, f"session {key} expired after {self.idle_timeout:g} s idle: JOIN again"
            )
        session.last_used = now
        return session

    def peek(self, key: str) -> Session | None:
        """The live session of `key` without touching its idle clock (None when gone or expired)."""
        session = self._sessions.get(key)
        if session is None or self.clock() - session.last_used > self.idle_timeout:
            return None
        return session

    def close(self, key: Any) -> Session | None:
        return self._sessions.pop(key, None) if isinstance(key, str) else None

    def drop_client(self, name: str, token_id: str | None = None) -> int:
        """Forget the sessions of a client (of one token of it); how many."""
        gone = [
            k
            for k, s in self._sessions.items()
            if s.client_name == name and (token_id is None or s.token_id == token_id)
        ]
        for key in gone:
            del self._sessions[key]
        return len(gone)

    def sweep(self) -> int:
        now = self.clock()
        gone = [k for k, s in self._sessions.items() if now - s.last_used > self.idle_timeout]
        for key in gone:
            del self._sessions[key]
        return len(gone)
