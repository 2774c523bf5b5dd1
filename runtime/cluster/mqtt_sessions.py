"""Each worker's own MQTT session on the cluster's broker, and its takeover by a survivor when that worker dies.

A `platform` mqtt-broker node connects to the cluster's Mosquitto with a persistent session (clean session off)
under a client id of its own per worker and config node (`client_id`), its subscriptions shared with the other
workers (`$share/`). Mosquitto gives a member of a shared subscription its share of the messages even while that
member is disconnected: it queues them for the client id (persistent session) and hands them to nobody else. So
when a worker dies, a survivor takes over its session: it connects with the dead worker's client id, drains what
Mosquitto held through the same flow (acknowledging each message once the flow is done with it), and gives the
session back (disconnects) once the worker's heartbeat is there again.

Who may connect with a client id is a fenced lease in Redis, as the leader's (runtime/cluster/leader.py):
`sofiaflow:mqtt-session:<client id>` holds `<worker>|<token>` (`SET NX PX`, the token from `INCR`, larger for
every new holder), renewed every third of the lease. The owner claims its own lease before every connect
(`claim_own`, waiting while a survivor holds it); a survivor claims the lease of a session whose worker has no
heartbeat and whose lease has expired, and lets it go (after disconnecting) when that worker beats again. A
holder that finds its lease gone to someone else stops using the client id (Mosquitto has already closed its
connection: a second CONNECT with the same client id takes the session over). The sessions of the cluster are
listed in the hash `sofiaflow:mqtt-sessions` (client id -> owner worker and config node id).

The config nodes with a session are this worker's MQTT intakes: a deploy holds them (`hold(True)`: what arrives is
kept, not handed to the flows nor acknowledged) while the old revision drains, and lets go of them once the new
revision runs (runtime/cluster/drain.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sofiaflow.runtime.cluster.lease import RELEASE, parse_lease
from sofiaflow.runtime.cluster.membership import live_workers

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("sofiaflow.cluster")

SESSIONS_KEY = "sofiaflow:mqtt-sessions"
LEASE_PREFIX = "sofiaflow:mqtt-session:"
TOKEN_KEY = "sofiaflow:mqtt-session-token"

_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then
  if string.sub(held, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. '|' then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return held
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. '|' .. token
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
"""
"""Take the lease for holder ARGV[1] (or keep it when it holds it already): its value, or false (someone else)."""
_RENEW = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
"""Renew the lease ARGV[1]; a lease that expired meanwhile (Redis was away) is taken again; 0: another holds it."""


class Intake(Protocol):
    """A config node taking messages in on this worker's sessions (nodes/mqtt/mqtt_broker.py)."""

    def hold_intake(self, on: bool) -> None: ...

    @property
    def unfinished(self) -> int: ...

    def forsake(self) -> None: ...


Takeover = Callable[[str], Awaitable["Handle"]]
"""What a config node offers: open a connection with a dead worker's client id; returns its handle."""


class Handle:
    """A running takeover connection (the config node's); `stop()` disconnects it."""

    async def stop(self) -> None:  # pragma: no cover - the node's implementation replaces it
        raise NotImplementedError


def client_id(worker: str, config_id: str) -> str:
    """The client id of `worker`'s session for the mqtt-broker config node `config_id` (stable across restarts)."""
    return re.sub(r"[^A-Za-z0-9_.:-]", "_", f"sofiaflow-{worker}-{config_id}")


@dataclass(slots=True)
class _Held:
    """A dead worker's session this worker has taken over."""

    owner: str
    config: str
    value: str
    handle: Handle


class MqttSessions:
    """This worker's session leases (its own and those taken over); `start()` runs the loop, `stop()` lets go."""

    def __init__(self, redis: Redis, worker: str, lease: float = 3.0) -> None:
        if lease <= 0:
            raise ValueError(f"mqtt session lease: must be positive seconds, not {lease!r}")
        self.redis = redis
        self.worker = worker
        self.lease = lease
        self._own: dict[str, str] = {}  # client id -> lease value held
        self._held: dict[str, _Held] = {}  # client id -> taken-over session
        self._offers: dict[str, Takeover] = {}  # config node id -> how to take over its sessions
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self.intakes: dict[str, Intake] = {}  # config node id -> the running config node
        self.holding = False
        """Set while a deploy drains: every intake holds what arrives, those added meanwhile too."""

    # ----- a deploy's drain -------------------------------------------------------------------------------------
    def add_intake(self, config_id: str, intake: Intake) -> None:
        self.intakes[config_id] = intake
        if self.holding:
            intake.hold_intake(True)

    def remove_intake(self, config_id: str, intake: Intake) -> None:
        if self.intakes.get(config_id) is intake:
            del self.intakes[config_id]

    def hold(self, on: bool) -> None:
        """Hold (True) or let go of (False) what every intake takes in."""
        self.holding = on
        for intake in list(self.intakes.values()):
            intake.hold_intake(on)

    @property
    def unfinished(self) -> int:
        """Messages received on this worker's sessions and not acknowledged yet."""
        return sum(intake.unfinished for intake in self.intakes.values())

    def forsake(self) -> None:
        """Give up, unacknowledged, every message in hand (the connections holding one connect again)."""
        for intake in list(self.intakes.values()):
            intake.forsake()

    @property
    def _ms(self) -> str:
        return str(int(self.lease * 1000))

    def client_id(self, config_id: str) -> str:
        return client_id(self.worker, config_id)

    @property
    def owned(self) -> set[str]:
        """Client ids of this worker's own sessions whose lease it holds now."""
        return set(self._own)

    @property
    def taken_over(self) -> dict[str, str]:
        """Client id -> owner worker of every session this worker holds for a dead worker now."""
        return {cid: held.owner for cid, held in self._held.items()}

    # ----- the owner's side -------------------------------------------------------------------------------------
    async def claim_own(self, config_id: str) -> str:
        """Wait until this worker holds the lease on its own session for `config_id` (a survivor may hold it
        until this worker's heartbeat is back and it has drained); returns the client id to connect with."""
        cid = self.client_id(config_id)
        entry = json.dumps({"worker": self.worker, "config": config_id})
        while True:
            try:
                await self.redis.hset(SESSIONS_KEY, cid, entry)
                value = await self.redis.eval(
                    _ACQUIRE, 2, LEASE_PREFIX + cid, TOKEN_KEY, self.worker, self._ms
                )
            except Exception as exc:  # noqa: BLE001 - Redis away: try again
                log.warning("cluster: mqtt session %s: lease not taken: %s", cid, exc)
                value = None
            if value:
                self._own[cid] = value if isinstance(value, str) else value.decode()
                return cid
            await asyncio.sleep(self.lease / 3)

    async def release_own(self, config_id: str, forget: bool = False) -> None:
        """Let go of the lease on this worker's session (and with `forget`, of the session's listing)."""
        cid = self.client_id(config_id)
        value = self._own.pop(cid, None)
        with contextlib.suppress(Exception):
            if value is not None:
                await self.redis.eval(RELEASE, 1, LEASE_PREFIX + cid, value)
            if forget:
                await self.redis.hdel(SESSIONS_KEY, cid)

    # ----- the survivors' side ----------------------------------------------------------------------------------
    def offer(self, config_id: str, takeover: Takeover) -> None:
        """The config node `config_id` runs here: it can take over the other workers' sessions of it."""
        self._offers[config_id] = takeover

    async def withdraw(self, config_id: str) -> None:
        """The config node stops: give back the sessions of it this worker holds."""
        self._offers.pop(config_id, None)
        async with self._lock:
            for cid, held in list(self._held.items()):
                if held.config == config_id:
                    await self._give_back(cid)

    async def step(self) -> None:
        """Renew the leases held; give back the sessions whose worker beats again; take over those of dead ones."""
        async with self._lock:
            await self._renew_own()
            live = {str(w.get("id")) for w in await live_workers(self.redis)}
            for cid, held in list(self._held.items()):
                if held.owner in live or held.config not in self._offers:
                    await self._give_back(cid)
                elif not await self.redis.eval(_RENEW, 1, LEASE_PREFIX + cid, held.value, self._ms):
                    log.warning("cluster: mqtt session %s of %s: lease lost, letting it go", cid, held.owner)
                    self._held.pop(cid, None)
                    await held.handle.stop()
            if not self._offers:
                return
            sessions = await self.redis.hgetall(SESSIONS_KEY)
            for raw_cid, raw in sessions.items():
                cid = raw_cid if isinstance(raw_cid, str) else raw_cid.decode()
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                owner, config = str(entry.get("worker")), str(entry.get("config"))
                if owner == self.worker or owner in live or cid in self._held or config not in self._offers:
                    continue
                await self._take_over(cid, owner, config)

    async def _renew_own(self) -> None:
        for cid, value in list(self._own.items()):
            if not await self.redis.eval(_RENEW, 1, LEASE_PREFIX + cid, value, self._ms):
                log.warning("cluster: mqtt session %s: another worker holds it now", cid)
                self._own.pop(cid, None)

    async def _take_over(self, cid: str, owner: str, config: str) -> None:
        value = await self.redis.eval(_ACQUIRE, 2, LEASE_PREFIX + cid, TOKEN_KEY, self.worker, self._ms)
        if not value:
            return  # its owner (back) or another survivor holds it
        value = value if isinstance(value, str) else value.decode()
        held = parse_lease(value)
        log.info("cluster: %s takes over mqtt session %s of %s (token %s)", self.worker, cid, owner, held)
        try:
            handle = await self._offers[config](cid)
        except Exception as exc:  # noqa: BLE001 - the next step tries again
            log.warning("cluster: mqtt session %s of %s not taken over: %s", cid, owner, exc)
            await self.redis.eval(RELEASE, 1, LEASE_PREFIX + cid, value)
            return
        self._held[cid] = _Held(owner, config, value, handle)

    async def _give_back(self, cid: str) -> None:
        held = self._held.pop(cid, None)
        if held is None:
            return
        log.info("cluster: %s gives mqtt session %s back to %s", self.worker, cid, held.owner)
        try:
            await held.handle.stop()
        finally:
            with contextlib.suppress(Exception):
                await self.redis.eval(RELEASE, 1, LEASE_PREFIX + cid, held.value)

    # ----- lifecycle --------------------------------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="cluster-mqtt-sessions")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._lock:
            for cid in list(self._held):
                with contextlib.suppress(Exception):
                    await self._give_back(cid)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.step()
            except Exception as exc:  # noqa: BLE001 - Redis away: the next step tries again
                log.warning("cluster: mqtt session step failed: %s", exc)


def lease_holder(value: Any) -> str | None:
    """The worker holding a session lease value `<worker>|<token>`, or None."""
    if isinstance(value, bytes):
        value = value.decode()
    lease = parse_lease(value)
    return lease[0] if lease is not None else None
