"""A cluster deploy's drain (runtime/cluster/drain.py) on a bare engine: intake is held while the old revision
finishes its tracked messages and let go afterwards; at the deadline the MQTT connections are given up before the
messages (so no acknowledgement goes out for them), each message in hand is abandoned (its source learns it was not
done) and the engine drops what it still had to deliver, so the old revision sends no output for it."""

from __future__ import annotations

import asyncio

import pytest

from sofiaflow.runtime.cluster.drain import DeployDrain
from sofiaflow.runtime.cluster.partitions import Partitions
from sofiaflow.runtime.core.completion import Abandoned, CompletionTracker
from sofiaflow.runtime.core.engine import Engine
from sofiaflow.runtime.core.services import MQTT_SESSIONS, PARTITIONS
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def node(id_, type_, wires=(), **props):
    return {"id": id_, "type": type_, "z": "t1", "name": "", "wires": [list(w) for w in wires], **props}


class Sessions:
    """What the drain sees of MqttSessions: hold, unfinished, forsake (recorded in `log`)."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.holding = False
        self.unfinished = 0

    def hold(self, on: bool) -> None:
        self.holding = on
        self.log.append(f"sessions hold {on}")

    def forsake(self) -> None:
        self.log.append("forsake")


def in_hand(engine: Engine, log: list[str], n: int) -> tuple[dict, list]:
    """A tracked message its source has not let go of yet (as one in the flows); the list gets its failure."""
    msg = {"_msgid": f"m{n}", "payload": n}
    failures: list = []

    def done() -> None:
        failures.append(engine.completion.ticket_of(msg).failed if engine.completion.ticket_of(msg) else None)
        log.append(f"done {n}")

    engine.completion.track(msg, done)
    return msg, failures


async def test_the_drain_holds_intake_until_the_old_revision_is_done() -> None:
    engine = Engine()
    log: list[str] = []
    sessions = Sessions(log)
    partitions = Partitions(redis=None, worker="w1")  # type: ignore[arg-type]  # no group: nothing to read
    engine.services[MQTT_SESSIONS] = sessions
    engine.services[PARTITIONS] = partitions
    msg, failures = in_hand(engine, log, 1)
    drain = DeployDrain(lambda: engine, deadline=60)

    async def deploy() -> int:
        async with drain.hold() as report:
            assert sessions.holding and partitions.holding
            log.append("swap")
        return report.given_up

    task = asyncio.ensure_future(deploy())
    await asyncio.sleep(0.05)  # the drain waits for the message in hand, however long
    assert log == ["sessions hold True"] and not task.done()
    engine.completion.release(msg)  # the old revision is done with it
    assert await asyncio.wait_for(task, 30) == 0
    assert log == ["sessions hold True", "done 1", "swap", "sessions hold False"]
    assert failures == [None]
    assert not sessions.holding and not partitions.holding


async def test_at_the_deadline_connections_are_given_up_first_then_the_messages() -> None:
    engine = Engine()
    log: list[str] = []
    engine.services[MQTT_SESSIONS] = Sessions(log)
    first, failures = in_hand(engine, log, 1)
    second, more = in_hand(engine, log, 2)
    drain = DeployDrain(lambda: engine, deadline=0.05)
    async with drain.hold() as report:
        log.append("swap")
    assert report.given_up == 2
    assert log == ["sessions hold True", "forsake", "done 1", "done 2", "swap", "sessions hold False"]
    assert [type(f) for f in failures + more] == [Abandoned, Abandoned]
    engine.completion.release(first)  # the old revision lets go later: its source is not told again
    engine.completion.release(second)
    assert log[-1] == "sessions hold False"
    assert engine.completion.tickets == {}


async def test_no_node_handles_an_abandoned_message_any_more(registry) -> None:
    flows = [
        TAB,
        node("a", "test double", [["b"]]),
        node("b", "test double", [["end"]]),
        node("s", "test slow", [["end"]], seconds=0),  # an async handler: its own inbox
        node("end", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        done: list = []
        for target in ("a", "s"):
            msg = {"_msgid": target, "payload": 1}
            t.engine.completion.track(msg, lambda: done.append(True))
            assert t.engine.deliver(target, msg)
            t.engine.completion.release(msg)  # sent on: the flows hold it now (queued, not handled yet)
        assert t.engine.completion.abandon() == 2
        assert t.engine.completion.abandon() == 0  # once
        await t.idle()
        assert t.payloads("end") == [] and done == [True, True]
        assert t.engine.completion.tickets == {}
        t.engine.deliver("a", {"_msgid": "y", "payload": 3})  # untracked messages go on as before
        await t.idle()
        assert t.payloads("end") == [12]


def test_abandon_calls_each_callback_once_and_keeps_the_first_failure() -> None:
    tracker = CompletionTracker()
    calls: list[str] = []
    first, second = {"n": 1}, {"n": 2}
    tracker.track(first, lambda: calls.append("first"))
    tracker.track(second, lambda: calls.append("second"))
    earlier = ValueError("boom")
    tracker.ticket_of(second).failed = earlier
    assert tracker.abandon("deploy") == 2
    assert calls == ["first", "second"]
    assert isinstance(tracker.ticket_of(first).failed, Abandoned)
    assert tracker.ticket_of(second).failed is earlier
    tracker.release(first)
    tracker.release(second)
    assert calls == ["first", "second"] and tracker.tickets == {}


def test_a_drain_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="drain deadline"):
        DeployDrain(lambda: None, deadline=0)
