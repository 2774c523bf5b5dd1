"""runtime/cluster/mqtt_sessions.py on a real redis-server: a worker's own session lease, its takeover by one
survivor when the worker's heartbeat is gone (a larger fencing token), its return when the worker beats again
(the owner waits meanwhile), and a taken-over session dropped when its lease goes to someone else."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis_server import (
    redis_per_module,  # noqa: F401 - the redis_url fixture
)

from sofiaflow.runtime.cluster.lease import parse_lease
from sofiaflow.runtime.cluster.membership import HEARTBEAT_PREFIX
from sofiaflow.runtime.cluster.mqtt_sessions import (
    LEASE_PREFIX,
    SESSIONS_KEY,
    Handle,
    MqttSessions,
    client_id,
)
from sofiaflow.runtime.cluster.redis_link import open_redis

LEASE = 0.3


class Drain(Handle):
    """What a config node's takeover would be: records that it was opened and stopped."""

    def __init__(self, cid: str) -> None:
        self.cid = cid
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


def offer(sessions: MqttSessions, opened: list[Drain], config: str = "pb") -> None:
    async def take_over(cid: str) -> Drain:
        drain = Drain(cid)
        opened.append(drain)
        return drain

    sessions.offer(config, take_over)


async def beat(redis, worker: str) -> None:
    await redis.set(HEARTBEAT_PREFIX + worker, json.dumps({"id": worker}), px=60_000)


async def until(predicate, what: str, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(LEASE / 3)
    assert await predicate(), what


@given(st.text(max_size=40), st.text(min_size=1, max_size=40))
def test_client_ids_are_stable_and_plain(worker: str, config: str) -> None:
    cid = client_id(worker, config)
    assert cid == client_id(worker, config)
    assert cid.startswith("sofiaflow-")
    assert all(c.isascii() and (c.isalnum() or c in "_.:-") for c in cid)


def test_a_lease_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        MqttSessions(None, "w1", 0)  # type: ignore[arg-type]


async def test_a_dead_workers_session_is_taken_over_once_and_given_back(redis_url: str) -> None:
    redis = open_redis(redis_url)
    await redis.flushdb()
    owner = MqttSessions(open_redis(redis_url), "w1", LEASE)
    survivors = [MqttSessions(open_redis(redis_url), name, LEASE) for name in ("w2", "w3")]
    opened: list[Drain] = []
    for survivor in survivors:
        offer(survivor, opened)
        await beat(redis, survivor.worker)
    await beat(redis, "w1")
    cid = await owner.claim_own("pb")
    assert cid == client_id("w1", "pb")
    first = parse_lease(await redis.get(LEASE_PREFIX + cid))
    assert first is not None and first[0] == "w1"
    assert json.loads(await redis.hget(SESSIONS_KEY, cid)) == {"worker": "w1", "config": "pb"}

    # alive: nobody takes it, even once its lease has expired
    await redis.delete(LEASE_PREFIX + cid)
    for survivor in survivors:
        await survivor.step()
    assert opened == []

    # dead (no heartbeat, the lease expires): exactly one survivor takes over, with a larger token
    await redis.delete(HEARTBEAT_PREFIX + "w1")
    await asyncio.gather(*(s.step() for s in survivors))
    assert [d.cid for d in opened] == [cid]
    taker = next(s for s in survivors if s.taken_over)
    assert taker.taken_over == {cid: "w1"}
    lease = parse_lease(await redis.get(LEASE_PREFIX + cid))
    assert lease is not None and lease[0] == taker.worker and lease[1] > first[1]
    await asyncio.gather(*(s.step() for s in survivors))  # renewed, not taken twice
    assert len(opened) == 1 and not opened[0].stopped

    # the worker comes back: it waits for its lease while the survivor drains, then gets it
    back = MqttSessions(open_redis(redis_url), "w1", LEASE)
    await beat(redis, "w1")
    claim = asyncio.ensure_future(back.claim_own("pb"))
    await asyncio.sleep(LEASE)
    assert not claim.done()  # the survivor still holds it: the worker does not connect
    await taker.step()
    assert opened[0].stopped and taker.taken_over == {}
    assert await asyncio.wait_for(claim, 10) == cid
    assert parse_lease(await redis.get(LEASE_PREFIX + cid))[0] == "w1"

    await back.release_own("pb", forget=True)
    assert await redis.get(LEASE_PREFIX + cid) is None
    assert await redis.hget(SESSIONS_KEY, cid) is None
    for sessions in (owner, back, *survivors):
        await sessions.redis.aclose()
    await redis.aclose()


async def test_a_taken_over_session_whose_lease_goes_elsewhere_is_dropped(redis_url: str) -> None:
    redis = open_redis(redis_url)
    await redis.flushdb()
    owner = MqttSessions(open_redis(redis_url), "w1", 30)
    survivor = MqttSessions(open_redis(redis_url), "w2", 30)
    opened: list[Drain] = []
    offer(survivor, opened)
    cid = await owner.claim_own("pb")  # no heartbeat: w1 counts as dead
    assert owner.owned == {cid}
    await redis.delete(LEASE_PREFIX + cid)
    await survivor.step()
    assert survivor.taken_over == {cid: "w1"}
    await redis.set(LEASE_PREFIX + cid, "w9|999999")  # a later holder
    await survivor.step()
    assert opened[0].stopped and survivor.taken_over == {}
    assert await redis.get(LEASE_PREFIX + cid) == "w9|999999"  # not released: it is not its lease

    # withdrawing the offer gives back what the node drained
    await redis.delete(LEASE_PREFIX + cid)
    await survivor.step()
    assert len(opened) == 2 and survivor.taken_over
    await survivor.withdraw("pb")
    assert opened[1].stopped and survivor.taken_over == {}
    assert await redis.get(LEASE_PREFIX + cid) is None
    # the owner's renewal finds its lease taken: it no longer counts it as its own
    await redis.set(LEASE_PREFIX + cid, "w9|1000000")
    await owner.step()
    assert owner.owned == set()
    for sessions in (owner, survivor):
        await sessions.redis.aclose()
    await redis.aclose()
