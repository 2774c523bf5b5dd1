"""A partition owner whose event loop stalls past its lease (a loaded machine) takes the lease again while a batch
of that partition is still in its hand: the partition is read again only once that batch is done, so a worker
never has two batches of one partition in hand and later entries of a key never overtake earlier ones (real
redis-server; the stall is a blocking sleep on the worker's loop)."""

from __future__ import annotations

import asyncio
import time

from redis_server import redis_per_test  # noqa: F401 - the redis_url fixture

from sofiaflow.runtime.cluster.partition_stream import decode_message
from sofiaflow.runtime.cluster.partitions import HELD_BACK, Entry, PartitionGroup

LEASE = 0.3


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what}: not within {timeout}s")


class Flow:
    """The group's `process`: hands each batch's entries on in order, recording (seq, stream id, batch number);
    the first batch stalls the event loop past the lease after its first entry, then stays in hand until the
    worker holds the partition under a new lease, and a while longer."""

    def __init__(self, fail_seq: int | None = None) -> None:
        self.group: PartitionGroup | None = None
        self.handed: list[tuple[int, str, int]] = []
        self.batches = 0
        self.in_hand = 0
        self.most_in_hand = 0
        self.first_token: int | None = None
        self.fail_seq = fail_seq

    async def __call__(self, entries: list[Entry]) -> list[BaseException | str | None]:
        assert self.group is not None
        self.batches += 1
        batch = self.batches
        self.in_hand += 1
        self.most_in_hand = max(self.most_in_hand, self.in_hand)
        results: list[BaseException | str | None] = []
        try:
            for index, entry in enumerate(entries):
                seq = entry.msg["payload"]["seq"]
                if results and results[-1] is not None:
                    results.append(HELD_BACK)
                    continue
                if seq == self.fail_seq and batch == 1:
                    results.append(RuntimeError("failed"))
                    continue
                self.handed.append((seq, entry.id, batch))
                results.append(None)
                if batch == 1 and index == 0:
                    self.first_token = self.group.held[0].token
                    time.sleep(3 * LEASE)  # the loop stalls: the lease lapses meanwhile
                    await wait_for(
                        lambda: 0 in self.group.held and self.group.held[0].token != self.first_token,
                        10,
                        "the partition taken again under a new lease",
                    )
                    await asyncio.sleep(0.3)  # in hand while the worker holds the new lease
                await asyncio.sleep(0)
        finally:
            self.in_hand -= 1
        return results


async def run(redis_url: str, flow: Flow, count: int) -> PartitionGroup:
    from redis.asyncio import Redis

    redis = Redis.from_url(redis_url, decode_responses=True)
    group = PartitionGroup(redis, "w1", "f", "part", 1, flow, inflight=5, lease=LEASE)
    flow.group = group
    await group.start()
    await group.add([("k", {"payload": {"seq": i}}) for i in range(count)])
    return group


def firsts(handed: list[tuple[int, str, int]]) -> list[int]:
    seen: set[str] = set()
    out = []
    for seq, entry_id, _ in handed:
        if entry_id not in seen:
            seen.add(entry_id)
            out.append(seq)
    return out


async def test_a_batch_in_hand_across_a_lapsed_lease_is_never_joined_by_another_of_its_partition(redis_url):
    flow = Flow()
    group = await run(redis_url, flow, 20)
    try:
        await wait_for(lambda: set(firsts(flow.handed)) == set(range(20)), 30, "every entry handed on")
        assert flow.first_token is not None and group.held[0].token != flow.first_token  # taken again
        assert flow.most_in_hand == 1, flow.handed
        assert firsts(flow.handed) == list(range(20))
        await wait_for(lambda: group.stats.processed >= 20 and not group._tasks, 10, "every batch done")
        assert (await group.redis.xpending(group.stream(0), group.group))["pending"] == 0
    finally:
        await group.close()
        await group.redis.aclose()


async def test_a_failure_in_the_batch_in_hand_is_redelivered_before_anything_later(redis_url):
    flow = Flow(fail_seq=2)
    group = await run(redis_url, flow, 20)
    try:
        await wait_for(lambda: set(firsts(flow.handed)) == set(range(20)), 30, "every entry handed on")
        assert flow.most_in_hand == 1, flow.handed
        assert firsts(flow.handed) == list(range(20))
        # the failed entry and the ones held back behind it come again first, as the next batch
        assert [seq for seq, _, batch in flow.handed if batch == 2] == [2, 3, 4], flow.handed
    finally:
        await group.close()
        await group.redis.aclose()


async def test_a_batch_done_after_its_lease_lapsed_leaves_the_partition_to_recover_first(redis_url):
    """A batch answered once the lease lapsed on this worker's clock (a renewal may still be on its way) is left
    pending, and should the lease turn out renewed, the partition delivers it again before reading on."""
    from redis.asyncio import Redis

    handed: list[tuple[int, int]] = []

    async def process(entries: list[Entry]) -> list[BaseException | str | None]:
        results: list[BaseException | str | None] = []
        for entry in entries:
            seq = entry.msg["payload"]["seq"]
            if seq == 0 and entry.deliveries == 1:
                results.append(RuntimeError("failed"))
            elif results and results[0] is not None:
                results.append(HELD_BACK)
            else:
                handed.append((seq, entry.deliveries))
                results.append(None)
        return results

    redis = Redis.from_url(redis_url, decode_responses=True)
    group = PartitionGroup(redis, "w1", "f", "part", 1, process, inflight=5, lease=5.0)
    group.paused = True  # this test reads the first batch itself
    await group.start()
    try:
        await group.add([("k", {"payload": {"seq": i}}) for i in range(8)])
        held = group.held[0]
        held.recovering = False
        found = await redis.xreadgroup(group.group, "w1", {group.stream(0): ">"}, count=5)
        batch = [Entry(0, i, decode_message(f["m"]), 1) for i, f in found[0][1]]
        held.renewed -= group.lease  # lapsed on this worker's clock
        left = await group._run(0, batch)
        held.renewed += group.lease  # the renewal that was on its way lands
        assert left is True and held.recovering
        assert (await redis.xpending(group.stream(0), group.group))["pending"] == 5
        group.paused = False
        group._wake.set()
        await wait_for(lambda: len(handed) == 8, 10, "every entry handed on")
        assert [seq for seq, _ in handed] == list(range(8))
        assert handed[0] == (0, 2)  # delivered again first
    finally:
        await group.close()
        await redis.aclose()
