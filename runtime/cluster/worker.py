"""This worker's part in the cluster: its heartbeat, the leader lease, run-once firing slots and deploy sync.

Settings (environment): SOFIAFLOW_WORKER_ID (default `<hostname>:<port>`), SOFIAFLOW_CLUSTER_HEARTBEAT (seconds
between heartbeats, 1), SOFIAFLOW_CLUSTER_LEASE (seconds of the leader lease, 3),
SOFIAFLOW_CLUSTER_DEPLOY_TIMEOUT (seconds a deploy waits for every worker to run it, 10), SOFIAFLOW_CLUSTER_DRAIN
(seconds a deploy lets the old revision finish what it has in hand, 5: runtime/cluster/drain.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.cluster.deploy_sync import DeploySync
from sofiaflow.runtime.cluster.drain import DeployDrain
from sofiaflow.runtime.cluster.leader import Leadership, current_leader
from sofiaflow.runtime.cluster.membership import Membership, Rate, live_workers, worker_id
from sofiaflow.runtime.cluster.slots import FiringSlots

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sofiaflow.runtime.runtime import Runtime

log = logging.getLogger("sofiaflow.cluster")


def _seconds(variable: str, default: float) -> float:
    text = os.environ.get(variable)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{variable}: expected seconds (a number), not {text!r}") from None
    if value <= 0:
        raise ValueError(f"{variable}: expected a positive number of seconds, not {text!r}")
    return value


@dataclass
class ClusterSettings:
    heartbeat: float = field(default_factory=lambda: _seconds("SOFIAFLOW_CLUSTER_HEARTBEAT", 1.0))
    lease: float = field(default_factory=lambda: _seconds("SOFIAFLOW_CLUSTER_LEASE", 3.0))
    deploy_timeout: float = field(default_factory=lambda: _seconds("SOFIAFLOW_CLUSTER_DEPLOY_TIMEOUT", 10.0))
    drain: float = field(default_factory=lambda: _seconds("SOFIAFLOW_CLUSTER_DRAIN", 5.0))

    @property
    def heartbeat_ttl(self) -> float:
        return max(3 * self.heartbeat, 3.0)


class ClusterWorker:
    """Built by the runtime in cluster mode (`redis_url` set); `open()` before the flows start, `sync()` after."""

    def __init__(self, runtime: Runtime, redis: Redis, settings: ClusterSettings | None = None) -> None:
        self.runtime = runtime
        self.redis = redis
        self.settings = settings or ClusterSettings()
        port = runtime.settings.port
        self.id = worker_id(port)
        self.address = f"{runtime.settings.host}:{port}"
        self.leadership = Leadership(
            redis, self.id, self.settings.lease, on_elected=self._elected, on_deposed=self._deposed
        )
        self.sync: DeploySync | None = None
        self.drain = DeployDrain(lambda: self.runtime.engine, self.settings.drain)
        self._seq = 0
        self.slots = FiringSlots(
            redis, self.id, self.revision, lambda: self.leadership.token, self._revision_settled
        )
        self.membership = Membership(
            redis, self.id, self.address, self.status, self.settings.heartbeat, self.settings.heartbeat_ttl
        )
        self._rate: Rate | None = None
        self._mover: asyncio.Task | None = None
        self._reconcile: asyncio.Task | None = None

    def revision(self) -> int:
        """The sequence number of the flow revision this worker runs."""
        return self.sync.seq if self.sync is not None else self._seq

    async def _revision_settled(self) -> None:
        """Wait (at most 30 s) until the revision being deployed or applied here has its number."""
        if self.sync is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.sync.settled.wait(), 30)

    def status(self) -> dict[str, Any]:
        deployer = self.runtime.deployer
        engine = self.runtime.engine
        if self._rate is None and engine is not None:
            self._rate = Rate(lambda: engine.messages_total)
        return {
            "rev": deployer.rev if deployer is not None else None,
            "state": deployer.state if deployer is not None else None,
            "revision": self.revision(),
            "msgs_per_s": self._rate.read() if self._rate is not None else 0.0,
            "leads": ["singletons"] if self.leadership.leading else [],
            "fencing_token": self.leadership.token,
        }

    async def open(self) -> None:
        """Join: first heartbeat, then the leader lease (firings need neither; they claim their slots)."""
        store = self.runtime.flowstore
        if store is not None and (head := store.head()) is not None:
            self._seq = head.seq
        await self.membership.start()
        await self.leadership.start()

    async def sync_deploys(self) -> None:
        """Start following deploys (the flows are running)."""
        store = self.runtime.flowstore
        assert store is not None
        self.sync = DeploySync(
            self.redis,
            store,
            self.runtime.apply_revision,
            self.membership.beat,
            self.settings.heartbeat,
            self.settings.deploy_timeout,
            (lambda: self.runtime.state, self.runtime.set_state_here),
            self.drain.hold,
        )
        await self.sync.follow_state()  # the cluster's flows may be stopped
        await self.sync.start()
        await self.membership.beat()

    async def close(self) -> None:
        if self.sync is not None:
            await self.sync.stop()
        await self.slots.close()
        await self.leadership.stop()
        await self.membership.stop()

    async def describe(self) -> dict[str, Any]:
        """GET /cluster: the mode, this worker, the leader and every live worker."""
        leader = await current_leader(self.redis)
        return {
            "mode": "cluster",
            "self": self.id,
            "leader": leader[0] if leader else None,
            "fencing_token": leader[1] if leader else None,
            "workers": await live_workers(self.redis),
        }

    # ----- singletons --------------------------------------------------------------------------------------
    async def _elected(self) -> None:
        token = self.leadership.token
        if token is not None:
            self._mover = asyncio.get_running_loop().create_task(
                self._move_history(token), name="cluster-mover"
            )
            self._reconcile = asyncio.get_running_loop().create_task(
                self._reconcile_devices(), name="cluster-device-reconcile"
            )
        await self.membership.beat()

    async def _reconcile_devices(self) -> None:
        """A new leader puts Mosquitto's device clients right again (a drift left by a request that failed half
        way is repaired on every failover, not only at the next start)."""
        from sofiaflow.runtime.cluster.dynsec import DEVICE_SYNC

        engine = self.runtime.engine
        sync = engine.services.get(DEVICE_SYNC) if engine is not None else None
        if sync is None:
            return
        try:
            report = await sync.reconcile()
        except Exception:  # noqa: BLE001 - logged; requests and the next election try again
            log.exception("devices: reconciling Mosquitto's clients on election failed")
            return
        log.info("devices: reconciled Mosquitto's clients on election: %s", report)

    async def _deposed(self) -> None:
        reconcile, self._reconcile = self._reconcile, None
        if reconcile is not None and not reconcile.done():
            reconcile.cancel()
        mover, self._mover = self._mover, None
        if mover is not None:
            mover.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await mover
        history = self._history()
        if history is not None:
            await history.stop()  # a move in progress finishes its batch

    async def _move_history(self, token: int) -> None:
        """The history mover, every `history_interval` seconds, while `token` still holds the lease in Redis
        (checked before each pass: a leader that was stopped and comes back does not move after its successor)."""
        history = self._history()
        if history is None or history.interval <= 0:
            return
        while True:
            await asyncio.sleep(history.interval)
            if not self.leadership.leading or not await self.leadership.holds(token):
                return
            try:
                report = await history.run_now()
            except Exception:  # noqa: BLE001 - a failed pass is logged; the next one tries again
                log.exception("history: the scheduled move failed")
                continue
            for name, error in report.errors.items():
                log.error("history: ontology %s: %s", name, error)

    def _history(self) -> Any:
        from sofiaflow.runtime.core.services import HISTORY

        engine = self.runtime.engine
        return engine.services.get(HISTORY) if engine is not None else None
