"""API Manager quotas counted in Redis, so a quota holds for the calls of every worker together.

Same rule as the in-process counter (runtime/api_manager/quota.py): a fixed window of one minute opens at
the first call of an (API, key) pair; calls over the limit in it are refused with the seconds left. One
Lua script per call counts and answers atomically; the window is a key that expires with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sofiaflow.runtime.api_manager.quota import WINDOW

if TYPE_CHECKING:
    from redis.asyncio import Redis

_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used >= tonumber(ARGV[1]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    left = tonumber(ARGV[2])
  end
  return left
end
if redis.call('INCR', KEYS[1]) == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisQuota:
    """`acquire((api node, key id), limit)`: 0 when the call is allowed, else the seconds until the window
    ends, counted across the cluster."""

    def __init__(self, redis: Redis, prefix: str = "sofiaflow:quota", window: float = WINDOW) -> None:
        self._redis = redis
        self.prefix = prefix
        self.window = window
        self._take = redis.register_script(_TAKE)

    async def acquire(self, key: tuple[str, str], limit: int) -> float:
        if limit <= 0:
            return 0.0
        api, key_id = key
        left_ms = await self._take(
            keys=[f"{self.prefix}:{api}:{key_id}"], args=[limit, int(self.window * 1000)]
        )
        return 0.0 if not left_ms else max(int(left_ms) / 1000, 0.001)

    def forget(self, match: Callable[[object], bool]) -> None:
        """Nothing to do: a redeployed or removed API's windows end on their own within one window (the
        others workers still count in them)."""
