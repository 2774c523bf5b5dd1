"""Workers of a cluster start one at a time: the first start creates the config DB's tables and user admin, and
two workers doing that at once collide (PostgreSQL refuses the second CREATE TABLE or INSERT). A Redis lock
(`SET NX PX`, released by its token; it expires on its own if its holder dies) gives each starting worker its turn.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from sofiaflow.runtime.cluster.lease import RELEASE

log = logging.getLogger("sofiaflow.cluster")

STARTUP_KEY = "sofiaflow:startup-lock"


class StartupTurn:
    """`await turn.acquire()` waits (at most `wait` seconds) for this worker's turn; `await turn.release()`."""

    def __init__(self, url: str, hold: float = 60.0, wait: float = 300.0) -> None:
        from sofiaflow.runtime.cluster.redis_link import open_redis

        self.url = url
        self.hold = hold
        self.wait = wait
        self._redis = open_redis(url)
        self._token = secrets.token_hex(8)
        self._held = False

    async def acquire(self) -> None:
        deadline = time.monotonic() + self.wait
        while not await self._redis.set(STARTUP_KEY, self._token, nx=True, px=int(self.hold * 1000)):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"another worker has been starting for over {self.wait:.0f} s ({self.url})"
                )
            await asyncio.sleep(0.1)
        self._held = True

    async def release(self) -> None:
        try:
            if self._held:
                await self._redis.eval(RELEASE, 1, STARTUP_KEY, self._token)
        except Exception as exc:  # noqa: BLE001 - it expires on its own
            log.warning("cluster: startup turn not released (it expires in %.0f s): %s", self.hold, exc)
        finally:
            self._held = False
            await self._redis.aclose()
