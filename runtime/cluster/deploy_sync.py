"""Deploys reach every worker: the config DB's newest flow revision (its sequence number) is the truth.

A deploy on any worker runs under a cluster-wide lock (Redis `SET NX PX`, released by its token): the worker first
catches up with the DB's newest revision, so a `rev` sent by the client is checked against the DB's current
revision, and saves with a compare-and-set on that revision (FlowStore.expected_rev). It then publishes a hint on
`sofiaflow:deploys`. Every worker applies revisions newer than the one it runs, woken by the hint AND by a check
every `interval` seconds, so a missed hint or a worker that was away catches up from where it was. The deploy
answers when every live worker's heartbeat shows the new revision, or says which did not within `timeout`.

Under load, each worker applies a revision (its own deploy or another's) inside `drain()` when given one
(runtime/cluster/drain.py): intake stops, the old revision finishes what it has in hand (bounded), the nodes are
swapped, then intake resumes, so each message the flows acknowledge is answered by one revision."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.cluster.membership import live_workers

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sofiaflow.runtime.flows.store import FlowStore

log = logging.getLogger("sofiaflow.cluster")

CHANNEL = "sofiaflow:deploys"
LOCK_KEY = "sofiaflow:deploy-lock"
STATE_KEY = "sofiaflow:flows-state"
"""The cluster's run state of the flows ("start" or "stop", POST /flows/state): every worker follows it."""
LOCK_TTL = 120.0

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class DeploySync:
    """Applies newer revisions (`apply(flows, deploy_type)` of the runtime) and runs this worker's deploys."""

    def __init__(
        self,
        redis: Redis,
        store: FlowStore,
        apply: Callable[[list, str], Awaitable[None]],
        announce: Callable[[], Awaitable[None]],
        interval: float = 1.0,
        timeout: float = 10.0,
        run_state: tuple[Callable[[], str], Callable[[str], Awaitable[Any]]] | None = None,
        drain: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    ) -> None:
        self.redis = redis
        self._drain = drain or _no_drain
        self.store = store
        self._apply = apply
        self._announce = announce
        self._run_state = run_state
        self.interval = interval
        self.timeout = timeout
        head = store.head()
        self.seq = head.seq if head else 0
        """The sequence number of the revision this worker runs."""
        self.rev = head.rev if head else None
        self._lock = asyncio.Lock()
        self.settled = asyncio.Event()
        """Set while `seq` names the revision running here; clear while one is being applied or deployed."""
        self.settled.set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._listen(), name="cluster-deploy-hints"),
            loop.create_task(self._poll(), name="cluster-deploy-check"),
        ]

    async def stop(self) -> None:
        # the hint listener ends by itself within a second (redis-py's pubsub can swallow a cancellation
        # mid-read and retry, which left a stop waiting forever); cancelled only if it does not
        self._stopping = True
        listener, *others = self._tasks or [None]
        for task in others:
            task.cancel()
        if listener is not None:
            _done, pending = await asyncio.wait([listener], timeout=3.0)
            for task in pending:
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    async def catch_up(self) -> bool:
        """Apply the DB's newest revision when it is newer than the one this worker runs; whether it did."""
        async with self._lock:
            return await self._catch_up()

    async def set_state(self, state: str) -> None:
        """Start or stop the flows on every worker: the cluster's run state, then a hint; this worker now."""
        await self.redis.set(STATE_KEY, state)
        await self.follow_state()
        with contextlib.suppress(Exception):
            await self.redis.publish(CHANNEL, "state")

    async def follow_state(self) -> None:
        """Start or stop this worker's flows when the cluster's run state says otherwise."""
        if self._run_state is None:
            return
        current, change = self._run_state
        wanted = await self.redis.get(STATE_KEY)
        if wanted in ("start", "stop") and wanted != current():
            async with self._lock:
                if wanted != current():
                    log.info("cluster: the flows %s", "start" if wanted == "start" else "stop")
                    await change(wanted)
                    with contextlib.suppress(Exception):
                        await self._announce()

    async def _catch_up(self) -> bool:
        head = await asyncio.to_thread(self.store.head)
        if head is None or head.seq <= self.seq:
            return False
        flows = await asyncio.to_thread(self.store.load_seq, head.seq)
        if flows is None:  # trimmed meanwhile: a newer one exists, the next check takes it
            return False
        log.info("cluster: applying revision %s (%s, %s)", head.seq, head.rev[:12], head.deploy_type)
        self.settled.clear()
        try:
            async with self._drain():
                await self._apply(flows, head.deploy_type)
        finally:
            self.seq, self.rev = head.seq, head.rev
            self.settled.set()
            with contextlib.suppress(Exception):
                await self._announce()
        return True

    async def deploy(self, run: Callable[[], Awaitable[Any]], rev: str | None) -> tuple[Any, dict[str, Any]]:
        """Run this worker's deploy `run()` under the cluster's deploy lock; (its result, the cluster report)."""
        token = secrets.token_hex(8)
        deadline = time.monotonic() + LOCK_TTL
        while not await self.redis.set(LOCK_KEY, token, nx=True, px=int(LOCK_TTL * 1000)):
            if time.monotonic() > deadline:
                raise TimeoutError("cluster: another deploy holds the deploy lock")
            await asyncio.sleep(0.05)
        try:
            async with self._lock:
                await self._catch_up()
                head = await asyncio.to_thread(self.store.head)
                self.store.expected_rev = head.rev if head else _empty_rev()
                self.settled.clear()
                try:
                    async with self._drain():
                        result = await run()
                finally:
                    self.store.expected_rev = None
                    try:
                        head = await asyncio.to_thread(self.store.head)
                        if head is not None and head.seq > self.seq:
                            self.seq, self.rev = head.seq, head.rev
                    finally:
                        self.settled.set()
        finally:
            with contextlib.suppress(Exception):
                await self.redis.eval(_UNLOCK, 1, LOCK_KEY, token)
        with contextlib.suppress(Exception):
            await self._announce()
            await self.redis.publish(CHANNEL, str(self.seq))
        report = await self.wait_all(self.rev, self.timeout)
        return result, report

    async def wait_all(self, rev: str | None, timeout: float) -> dict[str, Any]:
        """Wait until every live worker's heartbeat shows `rev` (at most `timeout` s). The report: {revision, rev,
        applied, pending, gone}; `pending` names every worker seen live meanwhile that did not report `rev`, `gone`
        those of them whose heartbeat expired (stopped, cut off)."""
        deadline = time.monotonic() + timeout
        seen: set[str] = set()
        while True:
            workers = await live_workers(self.redis)
            live = {str(w["id"]) for w in workers}
            seen |= live
            applied = {str(w["id"]) for w in workers if w.get("rev") == rev}
            if live <= applied or time.monotonic() > deadline:
                return {
                    "revision": self.seq,
                    "rev": rev,
                    "applied": sorted(applied),
                    "pending": sorted(seen - applied),
                    "gone": sorted(seen - live),
                }
            await asyncio.sleep(0.05)

    def wake(self) -> None:
        self._wake.set()

    async def _listen(self) -> None:
        while not self._stopping:
            try:
                pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(CHANNEL)
                try:
                    # get_message with a timeout, not listen(): a listen() cancelled mid-read leaves the
                    # connection so that closing it never returns (the worker's stop hung)
                    while not self._stopping:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._wake.set()
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(pubsub.aclose(), 2.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the periodic check still catches up
                log.warning("cluster: deploy hints lost (%s); resubscribing", exc)
                await asyncio.sleep(self.interval)

    async def _poll(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()
            try:
                await self.catch_up()
                await self.follow_state()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - logged; the next check tries again
                log.exception("cluster: catching up with the newest revision failed")


@contextlib.asynccontextmanager
async def _no_drain() -> Any:
    yield None


def _empty_rev() -> str:
    from sofiaflow.runtime.flows.store import revision_of

    return revision_of([])
