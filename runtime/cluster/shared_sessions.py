"""SSAP digital-client sessions in Redis, so a session key JOINed on one worker is good on every worker.

A session is a hash `sofiaflow:ssap:<broker>:s:<key>` (the client as authenticated at JOIN, its instance
and token id) that expires after the broker's idle time; each use sets that time again. A set per client
name (`...:c:<name>`) finds a client's sessions when its device is revoked or disabled, on any worker.
Calls are synchronous like the in-process SessionStore's (one round trip each).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sofiaflow.runtime.onesait.sessions import Session
from sofiaflow.runtime.onesait.ssap import AUTHENTICATION, SsapError
from sofiaflow.runtime.security.devices import Device

PRUNE_OVER = 64
"""A client's set of session keys is cleaned of expired ones when it grows past this."""


def sync_twin(client: Any) -> Any:
    """A synchronous redis-py client to the server the asyncio `client` talks to (str answers)."""
    from redis import Redis
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    kw = client.connection_pool.connection_kwargs
    options: dict[str, Any] = {
        "db": kw.get("db", 0),
        "username": kw.get("username"),
        "password": kw.get("password"),
        "decode_responses": True,
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
        "health_check_interval": 10,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),  # short: the event loop waits
    }
    if kw.get("path"):
        options["unix_socket_path"] = kw["path"]
    else:
        options.update(host=kw.get("host", "localhost"), port=kw.get("port", 6379))
        if "SSL" in client.connection_pool.connection_class.__name__:
            options["ssl"] = True
    return Redis(**options)


def _client_json(client: Any) -> str:
    created = getattr(client, "created", None)
    return json.dumps(
        {
            "name": client.name,
            "enabled": bool(getattr(client, "enabled", True)),
            "topics": list(getattr(client, "topics", None) or []),
            "ontologies": dict(getattr(client, "ontologies", None) or {}),
            "created": created.isoformat() if isinstance(created, datetime) else None,
            "owner": getattr(client, "owner", None),
        }
    )


def _device(text: str) -> Device:
    d = json.loads(text)
    created = datetime.fromisoformat(d["created"]) if d.get("created") else datetime.fromtimestamp(0)
    return Device(d["name"], d["enabled"], d["topics"], d["ontologies"], created, owner=d.get("owner"))


class RedisSessionStore:
    """SessionStore's interface (runtime/onesait/sessions.py) over Redis; see the module docstring."""

    def __init__(
        self,
        client: Any,
        idle_timeout: float,
        namespace: str,
        clock: Callable[[], float] = time.monotonic,
        prefix: str = "sofiaflow:ssap",
    ) -> None:
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, got {idle_timeout!r}")
        self._redis = client
        self.idle_timeout = idle_timeout
        self.clock = clock
        self._ttl_ms = max(int(idle_timeout * 1000), 1)
        self._prefix = f"{prefix}:{namespace}:"

    def _session_key(self, key: str) -> str:
        return f"{self._prefix}s:{key}"

    def _client_key(self, name: str) -> str:
        return f"{self._prefix}c:{name}"

    def __len__(self) -> int:
        return sum(1 for _ in self._redis.scan_iter(match=self._session_key("*"), count=500))

    def _session(self, key: str, fields: dict[str, str]) -> Session | None:
        if not fields or "client" not in fields:
            return None
        instance = fields.get("instance") or None
        return Session(key, _device(fields["client"]), instance, fields.get("token_id", ""), self.clock())

    def _save(self, key: str, client: Any, instance: str | None, token_id: str) -> None:
        name = self._session_key(key)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(
            name, mapping={"client": _client_json(client), "instance": instance or "", "token_id": token_id}
        )
        pipe.pexpire(name, self._ttl_ms)
        pipe.sadd(self._client_key(client.name), key)
        pipe.execute()

    def open(self, client: Any, instance: str | None, token_id: str, renew: str | None = None) -> Session:
        """A session for `client`; `renew`, a live key of the same client, is kept and refreshed."""
        old = self.peek(renew) if isinstance(renew, str) and renew else None
        if old is not None and old.client_name == client.name:
            instance = instance or old.instance
            self._save(old.key, client, instance, token_id)
            return Session(old.key, client, instance, token_id, self.clock())
        key = str(uuid.uuid4())
        self._save(key, client, instance, token_id)
        if self._redis.scard(self._client_key(client.name)) > PRUNE_OVER:
            self._prune(client.name)
        return Session(key, client, instance, token_id, self.clock())

    def _prune(self, name: str) -> None:
        """Take the keys of expired sessions out of a client's set."""
        keys = list(self._redis.smembers(self._client_key(name)))
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.exists(self._session_key(key))
        stale = [k for k, alive in zip(keys, pipe.execute(), strict=True) if not alive]
        if stale:
            self._redis.srem(self._client_key(name), *stale)

    def use(self, key: Any) -> Session:
        """The live session of `key` (its idle time set again); SsapError(AUTENTICATION) otherwise."""
        session = None
        if isinstance(key, str) and key:
            pipe = self._redis.pipeline(transaction=True)
            pipe.hgetall(self._session_key(key))
            pipe.pexpire(self._session_key(key), self._ttl_ms)
            fields, _ = pipe.execute()
            session = self._session(key, fields)
        if session is None:
            raise SsapError(
                AUTHENTICATION,
                f"unknown session key, or idle longer than {self.idle_timeout:g} s: JOIN again",
            )
        return session

    def peek(self, key: str) -> Session | None:
        """The live session of `key` without touching its idle time (None when gone or expired)."""
        if not isinstance(key, str) or not key:
            return None
        return self._session(key, self._redis.hgetall(self._session_key(key)))

    def close(self, key: Any) -> Session | None:
        session = self.peek(key)
        if session is not None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self._session_key(key))
            pipe.srem(self._client_key(session.client_name), key)
            pipe.execute()
        return session

    def drop_client(self, name: str, token_id: str | None = None) -> int:
        """Forget the sessions of a client (of one token of it), whichever worker opened them; how many."""
        keys = list(self._redis.smembers(self._client_key(name)))
        if not keys:
            return 0
        pipe = self._redis.pipeline(transaction=False)
        for key in keys:
            pipe.hget(self._session_key(key), "token_id")
        tokens = pipe.execute()
        gone = [
            k
            for k, t in zip(keys, tokens, strict=True)
            if t is not None and (token_id is None or t == token_id)
        ]
        stale = [k for k, t in zip(keys, tokens, strict=True) if t is None]
        pipe = self._redis.pipeline(transaction=True)
        for key in gone:
            pipe.delete(self._session_key(key))
        if gone or stale:
            pipe.srem(self._client_key(name), *gone, *stale)
        pipe.execute()
        return len(gone)

    def sweep(self) -> int:
        """Nothing to do: Redis expires idle sessions itself."""
        return 0
