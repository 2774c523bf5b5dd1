"""The partition node: alone it passes messages on in order; with the PARTITIONS service (real redis-server,
workers as engines in this process, each with its own worker id) every message is processed once by the worker
holding its partition, in order per key, redelivered after a failure, dead-lettered after too many, and taken
over (pending entries first) when its owner goes."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from typing import Any

import pytest
from redis_server import redis_per_test  # noqa: F401 - the redis_url fixture

from sofiaflow.runtime.api import PARTITIONS, Node, NodeConfig, NodeError
from sofiaflow.runtime.cluster.dead_letters import delete_dead_letter, get_dead_letter, replay_dead_letter
from sofiaflow.runtime.cluster.membership import HEARTBEAT_PREFIX
from sofiaflow.runtime.cluster.partitions import Partitions
from sofiaflow.runtime.cluster.placement import partition_of
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry
from sofiaflow.runtime.testing import FlowTester

TAB = "tab1"


def flow(**part: Any) -> list[dict[str, Any]]:
    return [
        {"id": TAB, "type": "tab"},
        {
            "id": "part",
            "type": "partition",
            "z": TAB,
            "key": "device",
            "keyType": "msg",
            "partitions": 8,
            "wires": [["work"]],
            **part,
        },
        {"id": "work", "type": "test-work", "z": TAB, "wires": [["sink"]]},
        {"id": "sink", "type": "test-sink", "z": TAB, "wires": []},
    ]


SEEN: dict[str, list[dict[str, Any]]] = defaultdict(list)
"""What each worker's sink received (worker id -> messages)."""


class WorkConfig(NodeConfig):
    pass


class WorkNode(Node[WorkConfig]):
    """Fails a message whose payload says poison; holds a message whose payload says slow for a while."""

    type = "test-work"

    async def on_input(self, msg: dict[str, Any]) -> None:
        payload = msg.get("payload") or {}
        if isinstance(payload, dict) and payload.get("poison"):
            raise NodeError("poisoned")
        if isinstance(payload, dict) and payload.get("slow"):
            await asyncio.sleep(payload["slow"])
        self.send(msg)


class SinkNode(Node[WorkConfig]):
    type = "test-sink"

    def on_input(self, msg: dict[str, Any]) -> None:
        SEEN[self.setting("worker", "alone")].append(msg)


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    base = default_registry()
    for cls in base.types():
        reg.register(cls, base.origin(cls.type))
    reg.register(WorkNode, "tests")
    reg.register(SinkNode, "tests")
    return reg


# ----- alone ------------------------------------------------------------------------------------------------
async def test_alone_messages_pass_on_in_order():
    async with FlowTester(flow(), registry=registry()) as t:
        for i in range(200):
            t.inject("part", {"device": f"d{i % 7}", "payload": {"seq": i}})
        await t.idle()
        assert [m["payload"]["seq"] for m in t.outputs("part")[0]] == list(range(200))
        assert "_streamId" not in t.outputs("part")[0][0]


async def test_alone_a_message_without_its_key_fails_naming_the_key():
    async with FlowTester(flow(), registry=registry()) as t:
        t.inject("part", {"payload": 1})
        await t.idle()
        assert "no key (msg device)" in t.errors()[0]["msg"]


async def test_topic_level_and_jsonata_keys():
    async with FlowTester(flow(key="1", keyType="topic"), registry=registry()) as t:
        t.inject("part", {"topic": "plant/d1/temp", "payload": 1})
        t.inject("part", {"topic": "plant", "payload": 2})
        await t.idle()
        assert t.payloads("part") == [1]
        assert "has no level 1" in t.errors()[0]["msg"]
        assert t.node("part").key_of({"topic": "a/b"}) == "b"
    async with FlowTester(
        flow(key="payload.site & '-' & payload.id", keyType="jsonata"), registry=registry()
    ) as t:
        assert t.node("part").key_of({"payload": {"site": "s", "id": 4}}) == "s-4"


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"key": "x", "keyType": "topic"}, "a topic level is a number"),
        ({"key": " "}, "the key is empty"),
        ({"key": "$$$(", "keyType": "jsonata"}, "partition: key"),
    ],
)
async def test_bad_configs_refuse_the_deploy_naming_what(config, error):
    t = FlowTester(flow(**config), registry=registry())
    with pytest.raises(Exception, match=error.replace("$", r"\$").replace("(", r"\(")):
        await t.__aenter__()
    await t.__aexit__(None, None, None)


# ----- a cluster in this process ---------------------------------------------------------------------------
class Worker:
    """One engine with the PARTITIONS service under its own worker id, and a heartbeat the test writes."""

    def __init__(self, url: str, worker: str, flows: list[dict[str, Any]], lease: float = 1.5) -> None:
        from redis.asyncio import Redis

        self.id = worker
        self.redis = Redis.from_url(url, decode_responses=True)
        self.tester = FlowTester(flows, registry=registry())
        self.tester.engine.node_settings["worker"] = worker
        self.partitions = Partitions(self.redis, worker, lease)
        self.tester.engine.services[PARTITIONS] = self.partitions
        self._beat: asyncio.Task | None = None

    async def start(self) -> Worker:
        await self.heartbeat()

        async def beats() -> None:
            while True:
                await asyncio.sleep(0.3)
                await self.heartbeat()

        self._beat = asyncio.get_running_loop().create_task(beats())
        await self.tester.__aenter__()
        return self

    async def heartbeat(self) -> None:
        await self.redis.set(HEARTBEAT_PREFIX + self.id, json.dumps({"id": self.id}), px=1500)

    def group(self):
        return self.partitions.groups["part"]

    async def die(self) -> None:
        """Gone without a word: no more heartbeats or lease renewals, nothing acknowledged or released."""
        if self._beat is not None:
            self._beat.cancel()
        group = self.group()
        for task in group._loops:
            task.cancel()
        group.held.clear()
        await self.redis.delete(HEARTBEAT_PREFIX + self.id)

    async def stop(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        await self.tester.__aexit__(None, None, None)
        await self.redis.aclose()


async def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout}s")


def seen_all() -> list[dict[str, Any]]:
    return [m for msgs in SEEN.values() for m in msgs]


async def test_two_workers_process_every_message_once_in_order_per_key(redis_url):
    SEEN.clear()
    a = await Worker(redis_url, "wa", flow()).start()
    b = await Worker(redis_url, "wb", flow()).start()
    try:
        await wait_for(
            lambda: len(a.group().held) + len(b.group().held) == 8 and a.group().held and b.group().held,
            10,
            "every partition held, both workers holding a share",
        )
        assert not set(a.group().held) & set(b.group().held)
        for i in range(1000):
            (a if i % 2 else b).tester.inject("part", {"device": f"d{i % 40}", "payload": {"seq": i}})
        await wait_for(lambda: len(seen_all()) >= 1000, 30, "every message processed")
        await asyncio.sleep(0.3)
        got = seen_all()
        assert len(got) == 1000 and len({m["_streamId"] for m in got}) == 1000
        per_device = defaultdict(list)
        for worker, msgs in SEEN.items():
            for m in msgs:
                per_device[m["device"]].append((worker, m["payload"]["seq"]))
                assert m["_partition"] == partition_of(m["device"], 8)
        for device, items in per_device.items():
            assert len({w for w, _ in items}) == 1, device  # one worker per key
            seqs = [s for _, s in items]
            assert seqs == sorted(seqs), device
        pending = await a.redis.xpending("part:tab1:part:0", "partition:part")
        assert pending["pending"] == 0
    finally:
        await a.stop()
        await b.stop()


async def test_a_dead_workers_pending_messages_are_delivered_by_the_next_owner(redis_url):
    SEEN.clear()
    a = await Worker(redis_url, "wa", flow()).start()
    try:
        await wait_for(lambda: len(a.group().held) == 8, 10, "every partition held by the only worker")
        for i in range(40):
            a.tester.inject("part", {"device": f"d{i % 8}", "payload": {"seq": i, "slow": 30}})
        await wait_for(lambda: a.group().stats.added == 40, 10, "written")
        await wait_for(lambda: sum(h.busy for h in a.group().held.values()) >= 4, 10, "batches in hand")
        await a.die()  # its messages are in hand downstream, not acknowledged
        b = await Worker(redis_url, "wb", flow(), lease=1.5).start()
        # the redelivered copies are slow too: their payloads say so; b's work node takes them as they come
        await wait_for(
            lambda: b.group().stats.redelivered >= 1, 15, "the new owner claims the pending entries"
        )
        xp = await b.redis.xpending_range("part:tab1:part:0", "partition:part", min="-", max="+", count=100)
        assert all(item["consumer"] == "wb" for item in xp)
        assert all(item["times_delivered"] >= 2 for item in xp)
        await b.stop()
    finally:
        SEEN.clear()
        await a.stop()


async def test_a_poison_message_goes_to_the_dead_letters_and_the_partition_flows_on(redis_url):
    SEEN.clear()
    a = await Worker(redis_url, "wa", flow(partitions=1, maxDeliveries=3)).start()
    try:
        await wait_for(lambda: len(a.group().held) == 1, 10, "the partition held")
        for i in range(30):
            payload = {"seq": i, "poison": i == 10}
            a.tester.inject("part", {"device": "d1", "payload": payload})
        await wait_for(lambda: len(SEEN["wa"]) >= 29, 15, "the rest of the partition processed")
        await wait_for(lambda: a.group().stats.dead == 1, 10, "the poison message dead-lettered")
        assert [m["payload"]["seq"] for m in SEEN["wa"]] == [i for i in range(30) if i != 10]
        letters = await a.partitions.dead_letters()
        assert len(letters) == 1 and letters[0]["deliveries"] == 3
        assert letters[0]["msg"]["payload"]["seq"] == 10
        assert await a.partitions.dead_letter_count() == 1
        # replayed (fixed meanwhile): processed again
        letter = letters[0]["id"]
        assert (await get_dead_letter(a.redis, letter))["partition"] == 0
        await a.redis.xadd("dummy", {"x": "1"})
        new_id = await replay_dead_letter(a.redis, letter)
        assert new_id is not None and await a.partitions.dead_letter_count() == 0
        await wait_for(
            lambda: a.group().stats.dead == 2, 10, "the replayed poison fails again to the letters"
        )
        again = (await a.partitions.dead_letters())[0]["id"]
        assert await delete_dead_letter(a.redis, again)
        assert await a.partitions.dead_letter_count() == 0
        assert await replay_dead_letter(a.redis, again) is None
    finally:
        await a.stop()


async def test_skip_and_stop_strategies(redis_url):
    SEEN.clear()
    a = await Worker(redis_url, "wa", flow(partitions=1, strategy="skip")).start()
    try:
        await wait_for(lambda: len(a.group().held) == 1, 10, "the partition held")
        for i in range(5):
            a.tester.inject("part", {"device": "d", "payload": {"seq": i, "poison": i == 2}})
        await wait_for(
            lambda: len(SEEN["wa"]) == 4 and a.group().stats.failed == 1, 10, "processed, one skipped"
        )
        await asyncio.sleep(0.3)
        assert a.group().stats.failed == 1 and a.group().stats.dead == 0  # not tried again
    finally:
        await a.stop()
    SEEN.clear()
    b = await Worker(redis_url, "wb", flow(partitions=1, strategy="stop", inflight=1)).start()
    try:  # the same stream, drained by the first worker; one message in flight: nothing passes the failure
        await wait_for(lambda: len(b.group().held) == 1, 10, "the partition held")
        for i in range(5):
            b.tester.inject("part", {"device": "d", "payload": {"seq": i, "poison": i == 2}})
        await wait_for(lambda: b.group().stats.failed >= 1, 10, "a failure")
        await asyncio.sleep(0.3)
        assert [m["payload"]["seq"] for m in SEEN["wb"]] == [0, 1]
        assert b.tester.node("part").last_status["fill"] == "red"
        assert b.group().held[0].stopped
        pending = await b.redis.xpending("part:tab1:part:0", "partition:part")
        assert pending["pending"] == 1  # the failed message stays for whoever restarts the partition
    finally:
        await b.stop()


async def test_in_flight_per_partition_is_bounded_and_acknowledged_entries_leave_the_stream(redis_url):
    SEEN.clear()
    a = await Worker(redis_url, "wa", flow(partitions=1, inflight=3)).start()
    try:
        await wait_for(lambda: len(a.group().held) == 1, 10, "the partition held")
        for i in range(12):
            a.tester.inject("part", {"device": "d", "payload": {"seq": i, "slow": 0.05}})
        await wait_for(lambda: a.group().stats.added == 12, 10, "written")
        most = 0
        deadline = time.monotonic() + 30
        while len(SEEN["wa"]) < 12 and time.monotonic() < deadline:
            pending = await a.redis.xpending("part:tab1:part:0", "partition:part")
            most = max(most, pending["pending"])
            await asyncio.sleep(0.01)
        assert [m["payload"]["seq"] for m in SEEN["wa"]] == list(range(12))
        assert 1 <= most <= 3  # never more than `inflight` delivered and not yet acknowledged
        await wait_for(lambda: a.group().stats.processed == 12, 10, "all acknowledged")
        assert await a.redis.xlen("part:tab1:part:0") == 0
    finally:
        await a.stop()


async def test_a_fourth_worker_takes_about_a_quarter_and_none_move_between_the_others(redis_url):
    SEEN.clear()
    workers = [await Worker(redis_url, f"w{i}", flow(partitions=64)).start() for i in range(3)]
    try:
        await wait_for(
            lambda: sum(len(w.group().held) for w in workers) == 64 and all(w.group().held for w in workers),
            15,
            "64 partitions held by three workers",
        )
        before = {p: w.id for w in workers for p in w.group().held}
        fourth = await Worker(redis_url, "w3", flow(partitions=64)).start()
        everyone = [*workers, fourth]
        await wait_for(
            lambda: sum(len(w.group().held) for w in everyone) == 64 and len(fourth.group().held) >= 8,
            15,
            "the fourth worker holding its share",
        )
        await asyncio.sleep(1.0)  # a few more rebalances: nothing else moves
        after = {p: w.id for w in everyone for p in w.group().held}
        assert len(after) == 64
        moved = [p for p in range(64) if before[p] != after[p]]
        assert all(after[p] == "w3" for p in moved)
        assert 8 <= len(moved) <= 26  # about a quarter of 64
        await fourth.stop()
    finally:
        for w in workers:
            await w.stop()
