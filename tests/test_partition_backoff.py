"""With "retry", a failed partition pauses before its next delivery (retryDelay doubling per delivery up to
retryDelayMax): a downstream that fails for a moment (a database restarting) no longer burns every delivery at
once. Meanwhile the other partitions flow, nothing later of the paused partition is read, and a lease given up
forgets its pause (real redis-server)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis_server import redis_per_test  # noqa: F401 - the redis_url fixture

from sofiaflow.runtime.api import PARTITIONS
from sofiaflow.runtime.cluster.partitions import HELD_BACK, Entry, PartitionGroup, Partitions, retry_pause
from sofiaflow.runtime.cluster.placement import partition_of
from sofiaflow.runtime.flows.registry import default_registry
from sofiaflow.runtime.testing import FlowTester


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout}s")


class Downstream:
    """The group's `process`: entries of a key in order; an entry whose key is `failing` fails while the clock
    is before `until` (set at its first delivery: `outage` seconds), and the key's later entries are held
    back. Records every delivery (monotonic time, key, seq, delivery count) and what was processed."""

    def __init__(self, failing: str | None, outage: float) -> None:
        self.failing = failing
        self.outage = outage
        self.until: float | None = None
        self.deliveries: list[tuple[float, str, int, int]] = []
        self.processed: list[tuple[str, int]] = []

    async def __call__(self, entries: list[Entry]) -> list[BaseException | str | None]:
        results: list[BaseException | str | None] = []
        failed_keys: set[str] = set()
        for entry in entries:
            key, seq = entry.msg["payload"]["key"], entry.msg["payload"]["seq"]
            if key in failed_keys:
                results.append(HELD_BACK)
                continue
            now = time.monotonic()
            self.deliveries.append((now, key, seq, entry.deliveries))
            if key == self.failing:
                if self.until is None:
                    self.until = now + self.outage
                if now < self.until:
                    failed_keys.add(key)
                    results.append(RuntimeError("database restarting"))
                    continue
            self.processed.append((key, seq))
            results.append(None)
            await asyncio.sleep(0)
        return results

    def of(self, key: str) -> list[tuple[float, str, int, int]]:
        return [d for d in self.deliveries if d[1] == key]


def keys_in_distinct_partitions(partitions: int) -> tuple[str, str]:
    first = "a"
    for i in range(1000):
        other = f"b{i}"
        if partition_of(other, partitions) != partition_of(first, partitions):
            return first, other
    raise AssertionError("no second partition found")


async def group_of(redis_url: str, process: Downstream, worker: str = "w1", **options: Any) -> PartitionGroup:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    group = PartitionGroup(redis, worker, "f", "part", options.pop("partitions", 1), process, **options)
    await group.start()
    return group


async def stop(group: PartitionGroup) -> None:
    await group.close()
    await group.redis.aclose()


def test_the_pause_doubles_per_delivery_up_to_the_maximum():
    assert [retry_pause(d, 0.1, 5.0) for d in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert retry_pause(3, 0.0, 5.0) == 0.0
    assert retry_pause(10**6, 0.1, 5.0) == 5.0


@given(
    st.integers(1, 10**9),
    st.floats(0, 100, allow_nan=False),
    st.floats(0, 100, allow_nan=False),
)
def test_the_pause_is_bounded_and_never_shrinks(deliveries, first, most):
    pause = retry_pause(deliveries, first, most)
    assert 0 <= pause <= most
    assert pause <= retry_pause(deliveries + 1, first, most)
    if first > 0:
        assert pause >= min(first, most)


def test_bad_pauses_are_refused_naming_the_setting():
    with pytest.raises(ValueError, match="retry delay: expected 0 or more"):
        PartitionGroup(None, "w", "f", "n", 1, Downstream(None, 0), retry_delay=-1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry delay max: expected 0 or more"):
        PartitionGroup(None, "w", "f", "n", 1, Downstream(None, 0), retry_delay_max=-0.5)  # type: ignore[arg-type]


async def test_with_the_default_pause_a_short_outage_is_ridden_out_in_order(redis_url):
    down = Downstream("a", outage=0.5)
    group = await group_of(redis_url, down, max_deliveries=5, inflight=10)
    try:
        await group.add([("a", {"payload": {"key": "a", "seq": i}}) for i in range(5)])
        await wait_for(lambda: len(down.processed) == 5, 30, "every message processed")
        assert down.processed == [("a", i) for i in range(5)]
        assert group.stats.dead == 0
        firsts = down.of("a")
        assert firsts[0][3] == 1 and firsts[1][3] == 2
        # not before: the second delivery waited the first pause (100 ms), the third the doubled one
        assert firsts[1][0] - firsts[0][0] >= 0.08
        assert firsts[2][0] - firsts[1][0] >= 0.18
        await wait_for(lambda: not group._tasks, 10, "every batch done")
        assert (await group.redis.xpending(group.stream(0), group.group))["pending"] == 0
    finally:
        await stop(group)


async def test_without_a_pause_the_same_outage_burns_every_delivery(redis_url):
    down = Downstream("a", outage=0.8)
    group = await group_of(redis_url, down, max_deliveries=5, inflight=10, retry_delay=0)
    try:
        await group.add([("a", {"payload": {"key": "a", "seq": 0}})])
        await wait_for(lambda: group.stats.dead == 1, 30, "the message dead-lettered")
        assert down.processed == []
        assert [d[3] for d in down.of("a")] == [1, 2, 3, 4, 5]
    finally:
        await stop(group)


async def test_other_partitions_flow_while_one_waits_and_nothing_later_of_it_is_read(redis_url):
    a, b = keys_in_distinct_partitions(4)
    down = Downstream(a, outage=1.0)
    group = await group_of(
        redis_url, down, partitions=4, max_deliveries=5, inflight=10, retry_delay=3.0, retry_delay_max=3.0
    )
    try:
        await group.add([(a, {"payload": {"key": a, "seq": 0}})])
        await wait_for(lambda: len(down.of(a)) >= 1, 30, "the first delivery failed")
        # the partition waits: its later messages and another partition's come meanwhile
        await group.add([(a, {"payload": {"key": a, "seq": i}}) for i in range(1, 4)])
        await group.add([(b, {"payload": {"key": b, "seq": i}}) for i in range(20)])
        await wait_for(lambda: len(down.of(b)) == 20, 30, "the other partition processed")
        assert len(down.of(a)) == 1 or down.of(a)[1][0] > down.of(b)[-1][0], down.deliveries
        await wait_for(
            lambda: len([p for p in down.processed if p[0] == a]) == 4, 30, "the waiting partition"
        )
        assert [s for k, s in down.processed if k == a] == [0, 1, 2, 3]
        assert [s for k, s in down.processed if k == b] == list(range(20))
        delivered_a = down.of(a)
        assert delivered_a[1][0] - delivered_a[0][0] >= 2.9  # not before its pause
        assert [s for _, _, s, _ in delivered_a][:2] == [0, 0]  # nothing later read while it waited
        assert group.stats.dead == 0
    finally:
        await stop(group)


async def test_a_lease_given_up_forgets_its_pause_and_the_next_owner_delivers_at_once(redis_url):
    down = Downstream("a", outage=0.001)  # fails at its first delivery only
    slow = await group_of(redis_url, down, "w1", max_deliveries=5, retry_delay=60.0, retry_delay_max=60.0)
    try:
        await slow.add([("a", {"payload": {"key": "a", "seq": 0}})])
        await wait_for(lambda: len(down.of("a")) >= 1 and not slow._tasks, 30, "the first delivery failed")
        assert slow.held[0].not_before > time.monotonic() + 30  # waiting a minute
    finally:
        await stop(slow)  # the lease given up (a deploy, a rebalance)
    closed = time.monotonic()
    nxt = await group_of(redis_url, down, "w2", max_deliveries=5, retry_delay=60.0, retry_delay_max=60.0)
    try:
        await wait_for(lambda: down.processed == [("a", 0)], 30, "the next owner delivered it")
        assert down.of("a")[1][0] - closed < 30  # not after the old owner's pause
        assert down.of("a")[1][3] == 2
    finally:
        await stop(nxt)


async def test_the_node_hands_its_pause_settings_to_its_partitions(redis_url):
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    flows = [
        {"id": "t", "type": "tab"},
        {
            "id": "part",
            "type": "partition",
            "z": "t",
            "key": "device",
            "partitions": 2,
            "retryDelay": "250",
            "retryDelayMax": 2000,
            "wires": [[]],
        },
    ]
    tester = FlowTester(flows, registry=default_registry())
    tester.engine.services[PARTITIONS] = Partitions(redis, "w1", 1.5)
    try:
        async with tester:
            group = tester.engine.services[PARTITIONS].groups["part"]
            assert (group.retry_delay, group.retry_delay_max) == (0.25, 2.0)
        flows[1]["retryDelay"] = -1
        bad = FlowTester(flows, registry=default_registry())
        bad.engine.services[PARTITIONS] = Partitions(redis, "w1", 1.5)
        with pytest.raises(Exception, match="retryDelay"):
            await bad.__aenter__()
        await bad.__aexit__(None, None, None)
    finally:
        await redis.aclose()


async def test_number_settings_left_empty_in_the_editor_take_their_defaults(redis_url):
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    empty = dict.fromkeys(("partitions", "maxDeliveries", "inflight", "retryDelay", "retryDelayMax"), "")
    flows = [
        {"id": "t", "type": "tab"},
        {"id": "part", "type": "partition", "z": "t", "key": "device", **empty},
    ]
    tester = FlowTester(flows, registry=default_registry())
    tester.engine.services[PARTITIONS] = Partitions(redis, "w1", 1.5)
    try:
        async with tester:
            assert tester.errors() == []
            group = tester.engine.services[PARTITIONS].groups["part"]
            assert (group.partitions, group.max_deliveries, group.inflight) == (64, 5, 100)
            assert (group.retry_delay, group.retry_delay_max) == (0.1, 5.0)
    finally:
        await redis.aclose()


async def test_a_lease_lost_and_taken_again_forgets_its_pause(redis_url):
    down = Downstream("a", outage=0.001)  # fails at its first delivery only
    group = await group_of(
        redis_url, down, max_deliveries=5, lease=0.3, retry_delay=60.0, retry_delay_max=60.0
    )
    try:
        await group.add([("a", {"payload": {"key": "a", "seq": 0}})])
        await wait_for(lambda: len(down.of("a")) >= 1 and not group._tasks, 30, "the first delivery failed")
        first = group.held[0]
        assert first.not_before > time.monotonic() + 30  # waiting a minute
        await group.redis.delete(group.lock(0))  # the lease lost (expired in Redis, say)
        await wait_for(lambda: down.processed == [("a", 0)], 30, "delivered again under the new lease")
        assert group.held[0] is not first and group.held[0].not_before == 0
        assert down.of("a")[1][3] == 2
    finally:
        await stop(group)
