"""Keyed partitions across workers: the machinery behind the `partition` node in a cluster.

A partition node hashes each message's key to one of N partitions (runtime/cluster/placement.py) and appends the
message to that partition's Redis stream `part:{flow}:{node}:{p}` (XADD, pipelined per batch; encoded as
runtime/cluster/partition_stream.py). Partitions are placed on the live workers (heartbeats,
runtime/cluster/membership.py) by rendezvous hashing: a worker joining takes about 1/n of the partitions and none
move between the others. Each partition is held by a
fenced lease `plock:{flow}:{node}:{p}` (SET NX PX, a fencing token from INCR, as runtime/cluster/leader.py) that
its owner renews every `lease / 3` seconds; a worker stops reading a partition as soon as its lease is more than
`lease` seconds old on its own clock.

The owner reads with XREADGROUP (one consumer group per partition node, the worker's id as consumer), at most
`inflight` entries per partition, and reads that partition again only once every entry of the batch is done
downstream (completion tracking, runtime/core/completion.py), then acknowledges the batch in one XACK. An owner
that takes a partition over first claims what is pending there (XPENDING + XCLAIM: the previous owner's
unacknowledged entries), so a worker killed mid-flow loses nothing: its entries are delivered again. An entry
delivered more than `max_deliveries` times goes to the dead letters (runtime/cluster/dead_letters.py, with its
last failure when that happened on this worker) and is acknowledged, so it never blocks its partition. What is
acknowledged is deleted from the stream (XDEL), so a stream holds only what is still to be processed. What
happens to an entry whose processing failed (an error no catch node took) is the node's strategy: "retry" (left
pending, delivered again after a pause), "skip" (acknowledged) or "stop" (the partition stops on this worker, left
pending).

Pause before a retry. With "retry" a failed partition waits before its next delivery: `retry_delay` after a
first delivery failed, doubling per delivery up to `retry_delay_max` (`retry_pause`; 0 = at once), so a downstream
failing for a few seconds (a database restarting) does not burn every delivery within a second. The pause is a
monotonic time on the lease the batch was answered under (`_Held.not_before`): the partition is not ready until
then and a timer wakes the reader when it comes; the reader never sleeps on it, so the worker's other partitions
flow meanwhile, and nothing later of the waiting partition is read. A lease given up or lost forgets its pause:
the next owner (this worker again, or another) recovers at once.

Order per key. A worker has at most one batch of a partition in hand: it reads the partition again only once that
batch is done, even when its lease lapsed meanwhile (a stalled event loop) and it took the lease again (the new
lease first recovers what the old one left pending, after that batch). A new lease, on any worker, delivers what
is pending first and reads new entries only once nothing older is left, so a key's later entry never overtakes
an earlier one that has not been processed yet. With "retry" a failed entry is delivered again before anything
later of its key (as ThingsBoard's sequential-by-originator queues): its key's later entries in the same batch
are held back (`HELD_BACK`, not handed to the flow, delivery count unchanged), other keys go on, and the partition
reads nothing new until the failed entry and those held back have come again. What a batch still in hand on a
worker whose lease lapsed does is not fenced: its messages may reach the flow after the next owner has processed
them again (at least once; `msg._streamId` deduplicates), but never before something older of their key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.cluster.dead_letters import dead_letter_count, dead_letters, write_dead_letters
from sofiaflow.runtime.cluster.lease import ACQUIRE, RELEASE, RENEW
from sofiaflow.runtime.cluster.partition_stream import (
    as_text,
    decode_message,
    encode_message,
    flat_message_field,
    message_field,
    stream_key,
)
from sofiaflow.runtime.cluster.placement import partition_of, placement
from sofiaflow.runtime.core.completion import Abandoned

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("sofiaflow.cluster")

STRATEGIES = ("retry", "skip", "stop")
LAST_ERRORS = 10000
"""At most this many failures remembered per partition node for the dead letters (an entry failed here whose
next delivery is another worker's leaves its failure behind)."""

_READ = """
local n = #KEYS / 2
local out = {}
for i = 1, n do
  if redis.call('GET', KEYS[i]) == ARGV[3 + i] then
    local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3], 'STREAMS', KEYS[n + i], '>')
    if r then out[#out + 1] = r[1] end
  end
end
return out
"""
"""XREADGROUP (new entries) of each partition whose lease value is still ours: fenced reads, so a worker whose
lease lapsed cannot take entries after the next owner has claimed what was pending."""


def retry_pause(deliveries: int, first: float, most: float) -> float:
    """Seconds to wait before delivering again what failed at its `deliveries`-th delivery: `first` doubling per
    delivery, at most `most` (0 when `first` is 0)."""
    if first <= 0:
        return 0.0
    return min(first * 2.0 ** min(max(deliveries - 1, 0), 64), most)


# ----- one partition node's partitions on this worker ------------------------------------------------------
@dataclass
class Entry:
    """One stream entry handed to the flow: its partition, stream id, message and delivery count."""

    partition: int
    id: str
    msg: dict[str, Any]
    deliveries: int


HELD_BACK = "held back"
"""A `Process` result: the message was not handed to the flow because an earlier message of its key failed (it
stays pending, its delivery count unchanged, and comes again after that one)."""

Process = Callable[[list[Entry]], Awaitable[list[BaseException | str | None]]]
"""Hands a batch of one partition's entries to the flow (in order per key) and answers, once every one is done
downstream, one entry per message: None when it was processed, HELD_BACK, or the failure."""


@dataclass
class _Held:
    token: int
    value: str
    renewed: float
    recovering: bool = True
    busy: bool = False
    stopped: bool = False
    reading: bool = False
    leaving: bool = False
    not_before: float = 0.0
    """Retry pause: read nothing of the partition under this lease before this monotonic time."""

    @property
    def idle(self) -> bool:
        return not self.busy and not self.reading


@dataclass
class PartitionStats:
    added: int = 0
    processed: int = 0
    failed: int = 0
    dead: int = 0
    redelivered: int = 0


class PartitionGroup:
    """One partition node's partitions on this worker: `add` appends, the reader hands held partitions'
    entries to `process`."""

    def __init__(
        self,
        redis: Redis,
        worker: str,
        flow: str,
        node: str,
        partitions: int,
        process: Process,
        *,
        strategy: str = "retry",
        max_deliveries: int = 5,
        inflight: int = 100,
        lease: float = 3.0,
        retry_delay: float = 0.1,
        retry_delay_max: float = 5.0,
        members: Callable[[], Awaitable[list[str]]] | None = None,
        on_stopped: Callable[[int, Any], None] | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions: expected at least 1, not {partitions!r}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy: expected one of {', '.join(STRATEGIES)}, not {strategy!r}")
        if max_deliveries < 1:
            raise ValueError(f"max deliveries: expected at least 1, not {max_deliveries!r}")
        if inflight < 1:
            raise ValueError(f"in-flight: expected at least 1, not {inflight!r}")
        if not retry_delay >= 0:
            raise ValueError(f"retry delay: expected 0 or more seconds, not {retry_delay!r}")
        if not retry_delay_max >= 0:
            raise ValueError(f"retry delay max: expected 0 or more seconds, not {retry_delay_max!r}")
        self.redis = redis
        self.worker = worker
        self.flow = flow
        self.node = node
        self.partitions = partitions
        self.process = process
        self.strategy = strategy
        self.max_deliveries = max_deliveries
        self.inflight = inflight
        self.lease = lease
        self.retry_delay = retry_delay
        self.retry_delay_max = retry_delay_max
        self.group = f"partition:{node}"
        self.prefix = f"{flow}:{node}"
        self._members = members
        self._on_stopped = on_stopped
        self.held: dict[int, _Held] = {}
        self.stats = PartitionStats()
        self._tasks: set[asyncio.Task] = set()
        self._in_hand: set[int] = set()
        """Partitions with a batch in hand on this worker, whichever of its leases it was read under: a partition
        is read again only once its batch is done, so a lease that lapsed and was taken again while a batch was
        in hand never lets a second batch of that partition overtake the first."""
        self._wake = asyncio.Event()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        """The reader's wake-up at the end of each partition's retry pause."""
        self._loops: list[asyncio.Task] = []
        self._closed = False
        self._idle_wait = 0.002
        self.paused = False
        """Set while a deploy drains (Partitions.hold): nothing more is read; batches in hand finish."""
        self.last_errors: dict[tuple[int, str], str] = {}
        """The last failure of each entry that failed on this worker and is not done yet (its dead letter's
        error), at most LAST_ERRORS (the oldest go first)."""

    def stream(self, p: int) -> str:
        return stream_key(self.flow, self.node, p)

    def lock(self, p: int) -> str:
        return f"plock:{self.flow}:{self.node}:{p}"

    # ----- producing ---------------------------------------------------------------------------------------
    async def add(self, items: Sequence[tuple[Any, dict[str, Any]]]) -> list[str]:
        """XADD each (key, msg) to its partition's stream, in one pipeline; the stream ids, in order."""
        pipe = self.redis.pipeline(transaction=False)
        for key, msg in items:
            pipe.xadd(self.stream(partition_of(key, self.partitions)), {"m": encode_message(msg)})
        ids = await pipe.execute()
        self.stats.added += len(ids)
        return [as_text(i) for i in ids]

    # ----- lifecycle -----------------------------------------------------------------------------------------
    async def start(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for p in range(self.partitions):
            pipe.xgroup_create(self.stream(p), self.group, id="0", mkstream=True)
        for result in await pipe.execute(raise_on_error=False):
            if isinstance(result, Exception) and "BUSYGROUP" not in str(result):
                raise result
        await self.rebalance()
        loop = asyncio.get_running_loop()
        self._loops = [
            loop.create_task(self._balance_loop(), name=f"partitions-balance-{self.node}"),
            loop.create_task(self._read_loop(), name=f"partitions-read-{self.node}"),
        ]

    async def close(self) -> None:
        self._closed = True  # the loops end at their next turn even should a cancel be swallowed (wait_for)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._tasks:  # batches in hand finish (or the node's close drops them: they stay pending)
            await asyncio.wait(list(self._tasks), timeout=self.lease)
        for p, held in list(self.held.items()):
            with contextlib.suppress(Exception):
                await self.redis.eval(RELEASE, 1, self.lock(p), held.value)
        self.held.clear()

    # ----- placement and leases ------------------------------------------------------------------------------
    def holds(self, p: int) -> bool:
        """Whether this worker holds partition p now: a lease renewed less than `lease` seconds ago."""
        held = self.held.get(p)
        return held is not None and time.monotonic() - held.renewed < self.lease

    async def workers(self) -> list[str]:
        members = await self._members() if self._members is not None else []
        return sorted(set(members) | {self.worker})

    async def rebalance(self) -> None:
        """Renew what this worker holds, give up what is no longer its own (once its batch is done) and take
        the partitions rendezvous hashing gives it that nobody holds."""
        owners = placement(self.prefix, self.partitions, await self.workers())
        ms = str(int(self.lease * 1000))
        now = time.monotonic()
        for p, held in list(self.held.items()):
            if now - held.renewed >= self.lease:  # too late: the lease may be someone else's already
                del self.held[p]
        mine = [p for p, owner in owners.items() if owner == self.worker]
        pipe = self.redis.pipeline(transaction=False)
        renew = list(self.held)
        released = set()
        for p in renew:
            held = self.held[p]
            held.leaving = owners.get(p) != self.worker  # read no more; given up once idle
            if held.leaving and held.idle and p not in self._in_hand:
                released.add(p)
                pipe.eval(RELEASE, 1, self.lock(p), held.value)
            else:
                pipe.eval(RENEW, 1, self.lock(p), self.held[p].value, ms)
        take = [p for p in mine if p not in self.held]
        token_key = f"plock:{self.flow}:{self.node}:token"
        for p in take:
            pipe.eval(ACQUIRE, 2, self.lock(p), token_key, self.worker, ms)
        results = await pipe.execute(raise_on_error=False)
        for p, result in zip(renew, results[: len(renew)], strict=True):
            held = self.held.get(p)
            if held is None:
                continue
            if p in released:
                del self.held[p]
            elif result == 1:
                held.renewed = now
            else:
                del self.held[p]
        for p, result in zip(take, results[len(renew) :], strict=True):
            if result and not isinstance(result, Exception):
                token = int(result)
                self.held[p] = _Held(token, f"{self.worker}|{token}", now)
        self._wake.set()

    async def _balance_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.lease / 3)
            try:
                await self.rebalance()
            except Exception as exc:  # noqa: BLE001 - Redis away: leases lapse by the clock
                log.warning("partitions %s: rebalance failed: %s", self.node, exc)

    # ----- reading ---------------------------------------------------------------------------------------------
    def _ready(self, p: int, held: _Held) -> bool:
        return (
            not self.paused
            and not held.busy
            and p not in self._in_hand
            and not held.stopped
            and not held.leaving
            and time.monotonic() >= held.not_before
            and self.holds(p)
        )

    async def _read_loop(self) -> None:
        while not self._closed:
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: try again shortly
                log.warning("partitions %s: read failed: %s", self.node, exc)
                await asyncio.sleep(0.2)

    async def _read_once(self) -> None:
        ready = [p for p, held in self.held.items() if self._ready(p, held)]
        if not ready:
            self._wake.clear()
            now = time.monotonic()
            pauses = [held.not_before - now for held in self.held.values() if held.not_before > now]
            with contextlib.suppress(TimeoutError):  # woken by a batch done, a lease taken or a pause's end
                await asyncio.wait_for(self._wake.wait(), max(0.001, min([0.2, *pauses])))
            return
        fresh = []
        for p in ready:
            held = self.held[p]
            if held.recovering:
                self._start(p, held, self._recover(p, held))
            else:
                fresh.append(p)
        if not fresh:
            return
        self._wake.clear()
        reading = {p: self.held[p] for p in fresh}
        for held in reading.values():  # while the read is out, no rebalance gives these partitions up
            held.reading = True
        try:
            found = await self.redis.eval(
                _READ,
                2 * len(fresh),
                *[self.lock(p) for p in fresh],
                *[self.stream(p) for p in fresh],
                self.group,
                self.worker,
                str(self.inflight),
                *[held.value for held in reading.values()],
            )
        finally:
            for held in reading.values():
                held.reading = False
        got = False
        for stream, entries in found or []:
            p = int(as_text(stream).rsplit(":", 1)[1])
            held = reading[p]
            if not entries or self.held.get(p) is not held:
                continue  # the lease lapsed meanwhile: its next holder (maybe this worker again) claims them
            got = True
            batch = [Entry(p, as_text(i), decode_message(flat_message_field(f)), 1) for i, f in entries]
            self._start(p, held, self._run(p, batch))
        if got:
            self._idle_wait = 0.002
            return
        # nothing new: poll again after a pause growing to 0.1 s, or as soon as a batch is done
        self._idle_wait = min(self._idle_wait * 2, 0.1)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._idle_wait)

    def _start(self, p: int, held: _Held, coro: Awaitable[Any]) -> None:
        """Runs one batch of partition p, read under `held`; the partition is in hand until it is done (and the
        flags of `held`, not of a lease taken since, say so)."""
        held.busy = True
        self._in_hand.add(p)

        async def run() -> None:
            try:
                await coro
            except Exception as exc:  # noqa: BLE001 - left pending; taken up again by recovery
                log.warning("partitions %s: partition %d: %s", self.node, p, exc)
                current = self.held.get(p)
                if current is not None:
                    current.recovering = True
            finally:
                held.busy = False
                self._in_hand.discard(p)
                self._wake.set()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _recover(self, p: int, held: _Held) -> None:
        """Claim what is pending on partition p (a previous owner's entries, or ours that failed) and deliver it
        again; an entry past `max_deliveries` goes to the dead-letter stream."""
        stream = self.stream(p)
        pending = await self.redis.xpending_range(stream, self.group, min="-", max="+", count=self.inflight)
        if self.held.get(p) is not held:
            return  # the lease lapsed meanwhile: its next holder recovers
        if not pending:
            held.recovering = False
            return
        counts = {as_text(item["message_id"]): int(item["times_delivered"]) for item in pending}
        claimed = await self.redis.xclaim(stream, self.group, self.worker, 0, list(counts))
        entries, dead = [], []
        for entry_id, fields in claimed:
            if fields is None:
                continue
            entry_id = as_text(entry_id)
            text = message_field(fields)
            deliveries = counts.get(entry_id, 0) + 1
            if deliveries > self.max_deliveries:
                dead.append((entry_id, text, deliveries - 1, self.last_errors.pop((p, entry_id), "")))
            else:
                entries.append(Entry(p, entry_id, decode_message(text), deliveries))
        if dead:
            await self._dead_letter(p, dead)
        self.stats.redelivered += len(entries)
        failed = await self._run(p, entries) if entries else False
        if self.held.get(p) is held and not failed and len(pending) < self.inflight:
            # nothing more is pending (what failed now stays pending: recovery goes on); under a lease taken
            # since, another owner may have read in between: that lease recovers on its own
            held.recovering = False

    async def _dead_letter(self, p: int, dead: list[tuple[str, Any, int, str]]) -> None:
        await write_dead_letters(self.redis, self.flow, self.node, self.group, p, dead)
        self.stats.dead += len(dead)
        log.warning(
            "partitions %s: %d message(s) of partition %d to the dead letters", self.node, len(dead), p
        )

    async def _run(self, p: int, entries: list[Entry]) -> bool:
        """Process one batch of partition p and acknowledge what is done while this worker still holds p (under
        the lease it was read under, or one taken again since: that lease recovers once this batch is done);
        True when some entry stays pending because it failed or was held back."""
        results = await self.process(entries)
        done, failed, waiting = [], [], []
        for entry, result in zip(entries, results, strict=True):
            if result is None:
                done.append((entry, result))
            elif result == HELD_BACK or isinstance(result, Abandoned):  # given up by a deploy: comes again
                waiting.append(entry)
            else:
                failed.append((entry, result))
        self.stats.processed += len(done)
        self.stats.failed += len(failed)
        current = self.held.get(p)
        if current is None or not self.holds(p):
            # the lease lapsed meanwhile: the batch stays pending for the next owner to deliver again; should
            # this lease still be renewed (a renewal was on its way), it recovers them before reading on
            if current is not None:
                current.recovering = True
            return True
        for entry, result in failed:
            self.last_errors.pop((p, entry.id), None)  # the newest last
            self.last_errors[(p, entry.id)] = str(result) or type(result).__name__
        while len(self.last_errors) > LAST_ERRORS:
            del self.last_errors[next(iter(self.last_errors))]
        if failed and self.strategy == "skip":
            done += failed
            failed = []
        for entry, _ in done:
            self.last_errors.pop((p, entry.id), None)
        if done:
            ids = [e.id for e, _ in done]
            pipe = self.redis.pipeline(transaction=False)
            pipe.xack(self.stream(p), self.group, *ids)
            pipe.xdel(self.stream(p), *ids)  # done with: the stream keeps only what is still to be processed
            await pipe.execute()
        if waiting:  # never handed to the flow: their delivery count is put back
            pipe = self.redis.pipeline(transaction=False)
            for entry in waiting:
                pipe.xclaim(
                    self.stream(p),
                    self.group,
                    self.worker,
                    0,
                    [entry.id],
                    retrycount=entry.deliveries - 1,
                    justid=True,
                )
            await pipe.execute()
        if not failed:
            if waiting:
                current.recovering = True
            return bool(waiting)
        if self.strategy == "stop":
            current.stopped = True
            if self._on_stopped is not None:
                self._on_stopped(p, failed[0][1])
        else:
            current.recovering = True
            self._pause(p, current, max(entry.deliveries for entry, _ in failed))
        return True

    def _pause(self, p: int, held: _Held, deliveries: int) -> None:
        """Partition p, under lease `held`, waits before its next delivery; the reader is woken when it ends."""
        pause = retry_pause(deliveries, self.retry_delay, self.retry_delay_max)
        if pause <= 0:
            return
        held.not_before = time.monotonic() + pause
        timer = self._timers.pop(p, None)
        if timer is not None:
            timer.cancel()
        self._timers[p] = asyncio.get_running_loop().call_later(pause, self._wake.set)


class Partitions:
    """The PARTITIONS service (cluster mode only): builds each partition node's `PartitionGroup` on this worker,
    and reads the dead letters for the admin API."""

    def __init__(self, redis: Redis, worker: str, lease: float = 3.0) -> None:
        self.redis = redis
        self.worker = worker
        self.lease = lease
        self.groups: dict[str, PartitionGroup] = {}
        self.holding = False
        """Set while a deploy drains: no group reads (runtime/cluster/drain.py)."""

    def hold(self, on: bool) -> None:
        """Stop (True) or resume (False) reading the partitions of every group, those built meanwhile too."""
        self.holding = on
        for group in list(self.groups.values()):
            group.paused = on
            if not on:
                group._wake.set()

    @property
    def in_hand(self) -> int:
        """Batches handed to the flows and not acknowledged yet, over every group."""
        return sum(
            len(group._tasks) + sum(1 for held in group.held.values() if held.reading)
            for group in self.groups.values()
        )

    async def members(self) -> list[str]:
        from sofiaflow.runtime.cluster.membership import live_workers

        return [str(w["id"]) for w in await live_workers(self.redis) if w.get("id")]

    def group(
        self, flow: str, node: str, partitions: int, process: Process, **options: Any
    ) -> PartitionGroup:
        group = PartitionGroup(
            self.redis,
            self.worker,
            flow,
            node,
            partitions,
            process,
            lease=self.lease,
            members=self.members,
            **options,
        )
        group.paused = self.holding
        self.groups[node] = group
        return group

    def forget(self, group: PartitionGroup) -> None:
        if self.groups.get(group.node) is group:
            del self.groups[group.node]

    async def dead_letters(self, limit: int = 1000) -> list[dict[str, Any]]:
        return await dead_letters(self.redis, limit)

    async def dead_letter_count(self) -> int:
        return await dead_letter_count(self.redis)
