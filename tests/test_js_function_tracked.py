"""A JavaScript function node takes messages whose source waits for the flows to finish them (`mqtt in` at QoS 1)
in batches, as it takes a backlog of others, and each such message is still finished only after what it caused:
its own sends, sends from timers and promises it started while it is in progress, its errors' catch flows."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.function.js_function import JsFunctionNode
from sofiaflow.nodes.function.js_isolate import JsIsolate
from sofiaflow.runtime.flows.registry import default_registry
from sofiaflow.runtime.testing import FlowTester
from tests.js_sandbox_helpers import MODES, js_tester

TAB = {"id": "t1", "type": "tab", "label": "t"}


def fn(body: str, outputs: int = 1, wires: list[list[str]] | None = None, **props: Any) -> dict:
    return {
        "id": "f",
        "type": "function",
        "z": "t1",
        "func": body,
        "outputs": outputs,
        "wires": wires if wires is not None else [["end"] for _ in range(outputs)],
        **props,
    }


def node(id_: str, type_: str, wires: list[list[str]] | None = None, **props: Any) -> dict:
    return {"id": id_, "type": type_, "z": "t1", "wires": wires if wires is not None else [[]], **props}


def delay(id_: str, seconds: float) -> dict:
    """A delay node: it holds each message `seconds` on the runtime's clock (virtual here), then sends it on."""
    return node(id_, "delay", [["end"]], pauseType="delay", timeout=seconds, timeoutUnits="seconds")


class Acks:
    """Messages sent as `mqtt in` sends a QoS 1 message: tracked, delivered, the source's own hold released. For
    each, when it was finished: the clock, what had reached node "end" by then, and its ticket's failure."""

    def __init__(self, t: FlowTester) -> None:
        self.t = t
        self.done: dict[Any, dict[str, Any]] = {}

    def send(self, target: str, payload: Any) -> dict:
        t = self.t
        msg = {"_msgid": f"m{payload}", "payload": payload}
        t.engine.completion.track(msg, lambda: self._finished(payload, ticket))
        ticket = t.engine.completion.ticket_of(msg)
        assert t.engine.deliver(target, msg)
        t.engine.completion.release(msg)
        return msg

    def _finished(self, payload: Any, ticket: Any) -> None:
        assert payload not in self.done, f"message {payload} finished twice"
        reached = self.t.outputs("end")[0] if self.t.outputs("end") else []
        self.done[payload] = {
            "at": self.t.engine.clock.now(),
            "reached": [m.get("payload") for m in reached],
            "errors": [m.get("payload") for m in reached if "error" in m],
            "failed": ticket.failed,
        }


@pytest.fixture
def batch_sizes(monkeypatch) -> list[int]:
    """How many messages each call of the node's on_batch got."""
    sizes: list[int] = []
    real = JsFunctionNode.on_batch

    async def counting(self, msgs):
        sizes.append(len(msgs))
        return await real(self, msgs)

    monkeypatch.setattr(JsFunctionNode, "on_batch", counting)
    return sizes


async def test_tracked_messages_in_the_server_process_take_few_evaluations(monkeypatch):
    runs: list[str] = []
    real = JsIsolate.run

    def counted(self, *args, **kwargs):
        runs.append(args[0][:20])
        return real(self, *args, **kwargs)

    flows = [TAB, fn("msg.payload += 1; return msg;"), node("end", "junction")]
    async with js_tester(flows, default_registry(), mode="in-process") as t:
        monkeypatch.setattr(JsIsolate, "run", counted)
        acks = Acks(t)
        for p in range(1000):
            acks.send("f", p)
        await t.idle()
        assert t.payloads("end") == [p + 1 for p in range(1000)]
        assert sorted(acks.done) == list(range(1000))
        for p, seen in acks.done.items():
            assert p + 1 in seen["reached"], f"message {p} was finished before its own output reached the end"
        assert t.engine.completion.tickets == {}
    assert len(runs) < 100, len(runs)  # one evaluation per message when each came alone


@pytest.mark.parametrize("mode", MODES)
async def test_tracked_messages_share_batches_and_each_is_done_after_its_own_output(
    mode, registry, batch_sizes
):
    body = "if (msg.payload % 3 === 0) { node.send([null, msg]); return null; }\nreturn [msg, null];"
    flows = [
        TAB,
        fn(body, outputs=2, wires=[["slow"], ["end"]]),
        delay("slow", 1),
        node("end", "junction"),
    ]
    async with js_tester(flows, registry, mode=mode, virtual_time=True) as t:
        start = t.engine.clock.now()
        acks = Acks(t)
        for p in range(40):
            acks.send("f", p)
        await t.idle()
        assert sorted(acks.done) == [p for p in range(40) if p % 3 == 0]  # the others wait in "slow"
        await t.advance(2.0)
        assert sorted(acks.done) == list(range(40))
        for p, seen in acks.done.items():
            assert p in seen["reached"], f"message {p} was finished before its own output reached the end"
            assert p % 3 == 0 or seen["at"] >= start + 1.0
        assert t.engine.completion.tickets == {}
    assert len(batch_sizes) < 40 and max(batch_sizes) > 1, batch_sizes


@pytest.mark.parametrize("mode", MODES)
async def test_a_timers_send_before_node_done_is_waited_for(mode, registry, batch_sizes):
    body = (
        "setTimeout(() => { node.send({payload: msg.payload * 10}); node.done(); }, 100 * (msg.payload + 1));\n"
        "return null;"
    )
    flows = [TAB, fn(body), node("end", "junction")]
    async with js_tester(flows, registry, mode=mode, virtual_time=True) as t:
        acks = Acks(t)
        for p in range(1, 6):
            acks.send("f", p)
        await t.idle()
        assert acks.done == {}  # none acknowledged before its delayed send
        await t.advance(1.0)
        assert sorted(acks.done) == [1, 2, 3, 4, 5]
        for p, seen in acks.done.items():
            assert p * 10 in seen["reached"], f"message {p} was finished before its delayed send"
            assert (p + 1) * 10 not in seen["reached"]  # and not held for the next one's
        assert t.engine.completion.tickets == {}
    assert max(batch_sizes) > 1, batch_sizes


@pytest.mark.parametrize("mode", MODES)
async def test_a_timer_started_by_a_message_in_progress_sends_for_that_message(mode, registry, batch_sizes):
    # each message's own output is in "slow" for 1 s; its timer sends at 0.5 s, to "slower" (2 s): the message
    # is finished only once that reached the end too
    body = "setTimeout(() => node.send([null, {payload: msg.payload + 100}]), 500);\nreturn [msg, null];"
    flows = [
        TAB,
        fn(body, outputs=2, wires=[["slow"], ["slower"]]),
        delay("slow", 1),
        delay("slower", 2),
        node("end", "junction"),
    ]
    async with js_tester(flows, registry, mode=mode, virtual_time=True) as t:
        start = t.engine.clock.now()
        acks = Acks(t)
        for p in range(5):
            acks.send("f", p)
        await t.advance(1.2)
        assert acks.done == {}
        await t.advance(2.0)
        assert sorted(acks.done) == list(range(5))
        for p, seen in acks.done.items():
            assert {p, p + 100} <= set(seen["reached"]), seen
            assert seen["at"] >= start + 2.5
        assert t.engine.completion.tickets == {}
    assert max(batch_sizes) > 1, batch_sizes


@pytest.mark.parametrize("mode", MODES)
async def test_an_error_fails_only_its_own_message_and_its_catch_flow_is_waited_for(
    mode, registry, batch_sizes
):
    body = (
        "if (msg.payload === 3) { throw new Error('three'); }\n"
        "if (msg.payload === 5) { node.error('five', msg); return null; }\n"
        "return msg;"
    )
    flows = [
        TAB,
        fn(body),
        node("c", "catch", [["slow"]], scope=None),
        delay("slow", 1),
        node("end", "junction"),
    ]
    async with js_tester(flows, registry, mode=mode, virtual_time=True) as t:
        acks = Acks(t)
        for p in range(10):
            acks.send("f", p)
        await t.advance(2.0)
        assert sorted(acks.done) == list(range(10))
        assert sorted(t.payloads("end")) == list(range(10))  # eight through, 3 and 5 through the catch
        assert 5 in acks.done[5]["errors"]  # node.error(err, msg): the catch flow is the message's
        assert all(seen["failed"] is None for seen in acks.done.values())  # a catch node took each error
        assert sorted(m["payload"] for m in t.outputs("c")[0]) == [3, 5]
        assert t.engine.completion.tickets == {}
    assert max(batch_sizes) > 1, batch_sizes


@pytest.mark.parametrize("mode", MODES)
async def test_a_throw_caught_by_a_catch_node_is_finished_after_its_catch_flow(mode, registry, batch_sizes):
    body = "if (msg.payload % 4 === 1) { throw new Error('bad'); }\nreturn msg;"
    flows = [
        TAB,
        fn(body),
        node("c", "catch", [["slow"]], scope=None),
        delay("slow", 1),
        node("end", "junction"),
    ]
    async with js_tester(flows, registry, mode=mode, virtual_time=True) as t:
        acks = Acks(t)
        for p in range(10):
            acks.send("f", p)
        await t.advance(2.0)
        assert sorted(acks.done) == list(range(10))
        for p in (1, 5, 9):  # thrown: finished only once the catch flow's delayed output reached "end"
            assert p in acks.done[p]["errors"], (p, acks.done[p])
            assert acks.done[p]["failed"] is None
        assert t.engine.completion.tickets == {}
    assert max(batch_sizes) > 1, batch_sizes


@pytest.mark.parametrize("mode", MODES)
async def test_an_uncaught_throw_in_a_batch_fails_that_message_alone(mode, registry, batch_sizes):
    body = "if (msg.payload === 3) { throw new Error('three'); }\nreturn msg;"
    async with js_tester([TAB, fn(body), node("end", "junction")], registry, mode=mode) as t:
        acks = Acks(t)
        for p in range(10):
            acks.send("f", p)
        await t.idle()
        assert t.payloads("end") == [p for p in range(10) if p != 3]
        failed = {p: str(seen["failed"]) for p, seen in acks.done.items() if seen["failed"] is not None}
        assert failed == {3: "Error: three"}
        assert sorted(acks.done) == list(range(10))
    assert max(batch_sizes) > 1, batch_sizes


BODY = """
if (msg.payload % 7 === 3) { throw new Error('bad ' + msg.payload); }
if (msg.payload % 5 === 0) { node.send({payload: -msg.payload}); return null; }
const seen = context.get('seen') || 0;
context.set('seen', seen + 1);
msg.payload = msg.payload * 2;
return msg;
"""


def _expected(payloads: list[int]) -> list[int]:
    out = []
    for p in payloads:
        if math.fmod(p, 7) == 3:  # JavaScript's %: the sign of the dividend
            continue
        out.append(-p if math.fmod(p, 5) == 0 else p * 2)
    return out


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.integers(-40, 40), st.booleans()), max_size=50, unique_by=lambda x: x[0]))
async def test_any_mix_of_tracked_and_untracked_messages_answers_as_one_by_one(items):
    flows = [TAB, fn(BODY), node("end", "junction")]
    async with js_tester(flows, default_registry(), mode="in-process") as t:
        acks = Acks(t)
        for p, tracked in items:
            if tracked:
                acks.send("f", p)
            else:
                t.inject("f", {"payload": p})
        await t.idle()
        assert t.payloads("end") == _expected([p for p, _ in items])
        assert sorted(acks.done) == sorted(p for p, tracked in items if tracked)
        for p, seen in acks.done.items():
            own = _expected([p])
            assert set(own) <= set(seen["reached"]), f"message {p} was finished before its own output"
            assert (seen["failed"] is not None) == (math.fmod(p, 7) == 3)
        assert t.engine.completion.tickets == {}
