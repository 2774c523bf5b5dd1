"""The worker's connection to the cluster's Redis (redis-py's asyncio client, one pool per worker)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis


def open_redis(url: str) -> Redis:
    """A client for `url` (redis://host:port/db) answering str; connections open on first use, and a dropped
    one is reopened by the next command (retry on connection errors and timeouts, with backoff)."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return Redis.from_url(
        url,
        decode_responses=True,
        health_check_interval=10,
        socket_connect_timeout=5,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=8),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


async def check_redis(client: Redis, url: str) -> None:
    """Ping Redis once at start; a clear error naming the URL when it does not answer."""
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means the worker cannot join
        raise RuntimeError(f"Redis at {url} (SOFIAFLOW_REDIS_URL) does not answer: {exc}") from exc
