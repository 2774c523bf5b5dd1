"""A context store in Redis, shared by every worker of a cluster (`#:(redis)::key`).

Each scope ("global:<tenant>", "flow:<id>", "node:<flow>:<node>") is one Redis hash,
`sofiaflow:ctx:<store>:<scope>`; each top-level key of the scope is a field holding its value as JSON.
Reads and writes go to Redis on every call (no cache, so every worker sees the last write of any
worker); they are synchronous like the rest of the context API, one round trip each.

Writing a top-level key replaces that field only. Writing inside one (`a.b[0]`) and `incr` are
atomic read-modify-writes of the field (WATCH/MULTI, retried when another worker changed it first);
`incr` of a top-level key is Redis's own HINCRBY / HINCRBYFLOAT.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from sofiaflow.runtime.core import props
from sofiaflow.runtime.core.context import MISSING_KEY, ContextError, check_step, incr_value, top_key
from sofiaflow.runtime.core.encoding import UNDEFINED

if TYPE_CHECKING:
    from redis import Redis

F = TypeVar("F", bound=Callable[..., Any])


_MAX_RETRIES = 1000


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "Buffer", "data": list(bytes(value))}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(type(value).__name__)


def _unavailable(method: F) -> F:
    """Redis failures of a store call become a ContextError naming the store (the node's error, catchable)."""

    @functools.wraps(method)
    def call(self: RedisContextStore, *args: Any, **kwargs: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return method(self, *args, **kwargs)
        except RedisError as exc:
            raise ContextError(f"context store {self.name!r} (Redis at {self.url}) failed: {exc}") from None

    return call  # type: ignore[return-value]


def _open_client(url: str) -> Redis:
    from redis import Redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=2,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),  # short: the event loop waits
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


class RedisContextStore:
    """Context that lives in Redis: shared by every worker, and kept across restarts by Redis."""

    keyed = True
    """ContextScope reads and writes this store key by key (read_key/write_key/update_key/incr)."""

    def __init__(self, url: str, name: str = "redis", prefix: str = "sofiaflow:ctx") -> None:
        self.url = url
        self.name = name
        self.prefix = f"{prefix}:{name}:"
        self._client: Any = None  # a redis.Redis answering str (decode_responses)
        self._handed_out: dict[str, dict[str, Any]] = {}

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = _open_client(self.url)
        return self._client

    def _hash(self, scope: str) -> str:
        return self.prefix + scope

    def _dumps(self, key: str, value: Any) -> str:
        try:
            return json.dumps(value, default=_default, allow_nan=True, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ContextError(
                f"context store {self.name!r} holds JSON values; {key!r} cannot hold a {exc}"
            ) from None

    @staticmethod
    def _loads(raw: str) -> Any:
        return json.loads(raw)

    # the store contract (runtime/core/context.py ContextStore)

    @_unavailable
    def get_scope(self, scope: str, create: bool = False) -> dict[str, Any] | None:
        """A copy of the scope as it is in Redis now; changes to it are written by `mark_dirty(scope)`."""
        raw = self.client.hgetall(self._hash(scope))
        if not raw and not create:
            return None
        data = {k: self._loads(v) for k, v in raw.items()}
        self._handed_out[scope] = {"base": dict(raw), "data": data}
        return data

    @_unavailable
    def mark_dirty(self, scope: str) -> None:
        """Write the fields of the copy `get_scope` gave that changed since it was read."""
        held = self._handed_out.pop(scope, None)
        if held is None:
            return
        base: dict[str, str] = held["base"]
        data: dict[str, Any] = held["data"]
        changed = {k: self._dumps(k, v) for k, v in data.items() if v is not UNDEFINED}
        changed = {k: v for k, v in changed.items() if base.get(k) != v}
        gone = [k for k in base if k not in data or data[k] is UNDEFINED]
        pipe = self.client.pipeline(transaction=True)
        if changed:
            pipe.hset(self._hash(scope), mapping=changed)
        if gone:
            pipe.hdel(self._hash(scope), *gone)
        pipe.execute()

    @_unavailable
    def delete_scope(self, scope: str) -> None:
        self._handed_out.pop(scope, None)
        self.client.delete(self._hash(scope))

    @_unavailable
    def scopes(self) -> Iterable[str]:
        n = len(self.prefix)
        return [k[n:] for k in self.client.scan_iter(match=self.prefix + "*", count=500)]

    async def open(self) -> None:
        try:
            self.client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means the store cannot serve
            raise ContextError(
                f"context store {self.name!r}: Redis at {self.url} does not answer: {exc}"
            ) from exc

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    # key by key (what ContextScope uses)

    @_unavailable
    def read_key(self, scope: str, key: str) -> Any:
        """The value of top-level `key`, or MISSING_KEY."""
        raw = self.client.hget(self._hash(scope), key)
        return MISSING_KEY if raw is None else self._loads(raw)

    @_unavailable
    def write_key(self, scope: str, key: str, value: Any) -> None:
        """Set top-level `key` (UNDEFINED removes it)."""
        if value is UNDEFINED:
            self.client.hdel(self._hash(scope), key)
        else:
            self.client.hset(self._hash(scope), key, self._dumps(key, value))

    @_unavailable
    def delete_key(self, scope: str, key: str) -> None:
        self.client.hdel(self._hash(scope), key)

    @_unavailable
    def keys(self, scope: str) -> list[str]:
        return list(self.client.hkeys(self._hash(scope)))

    @_unavailable
    def update_key(self, scope: str, key: str, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply `change` to `{key: current value}` (no entry when missing) atomically, write back what
        it leaves under `key` (removed when gone) and return what `change` returned."""
        from redis.exceptions import WatchError

        name = self._hash(scope)
        with self.client.pipeline(transaction=True) as pipe:
            for _ in range(_MAX_RETRIES):
                try:
                    pipe.watch(name)
                    raw = pipe.hget(name, key)
                    holder: dict[str, Any] = {} if raw is None else {key: self._loads(raw)}
                    result = change(holder)
                    new = holder.get(key, UNDEFINED)
                    pipe.multi()
                    if new is UNDEFINED:
                        pipe.hdel(name, key)
                    else:
                        pipe.hset(name, key, self._dumps(key, new))
                    pipe.execute()
                    return result
                except WatchError:
                    continue
        raise ContextError(
            f"context store {self.name!r}: {key!r} in {scope!r} kept changing; gave up after {_MAX_RETRIES} tries"
        )

    @_unavailable
    def incr(self, scope: str, key: str, by: int | float = 1) -> int | float:
        """Add `by` to the number at `key` (a property path; a missing one counts as 0) atomically; the
        new value."""
        check_step(key, by)
        top = top_key(key)
        if top == key:
            return self._incr_field(scope, key, by)

        def change(holder: dict[str, Any]) -> int | float:
            value = incr_value(key, props.get_path(holder, key, None), by)
            props.set_path(holder, key, value)
            return value

        return self.update_key(scope, top, change)

    def _incr_field(self, scope: str, key: str, by: int | float) -> int | float:
        from redis.exceptions import ResponseError

        name = self._hash(scope)
        try:
            if isinstance(by, int):
                return int(self.client.hincrby(name, key, by))
            value = float(self.client.hincrbyfloat(name, key, by))
        except ResponseError:
            # not a JSON integer Redis can add to (a float, a string, an object): the generic way
            def change(holder: dict[str, Any]) -> int | float:
                holder[key] = incr_value(key, holder.get(key), by)
                return holder[key]

            return self.update_key(scope, key, change)
        return value
