"""Flow completion (runtime/core/completion.py) and ordered acknowledgements (runtime/mqtt/acks.py): a tracked
message is finished once it and everything it caused is done, errors to catch included; acknowledgements go out
in the order received whatever order the flows finish in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.runtime.mqtt.acks import OrderedAcks
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": "t1",
        "name": "",
        "x": 100,
        "y": 100,
        "wires": [list(w) for w in wires],
        **props,
    }


def _track(t: FlowTester, target: str, payload, seen: list) -> None:
    """Send a tracked message to `target`, as `mqtt in` does; `seen` gets what had reached "end" when done."""
    msg = {"_msgid": "m1", "payload": payload}
    t.engine.completion.track(msg, lambda: seen.append(len(t.outputs("end")[0]) if t.outputs("end") else 0))
    assert t.engine.deliver(target, msg)
    t.engine.completion.release(msg)


async def test_done_only_after_the_slow_branch_and_the_fan_out_finished(registry):
    flows = [
        TAB,
        node("a", "test double", [["s", "j"]]),
        node("s", "test slow", [["end"]], seconds=0.05),
        node("j", "junction", [[]]),
        node("end", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        seen: list = []
        _track(t, "a", 2, seen)
        assert seen == []
        await t.idle()
        assert seen == [1]  # once, after the slow node's output reached the end
        assert t.engine.completion.tickets == {}


async def test_a_message_failing_to_catch_counts_as_done_after_the_catch_flow(registry):
    flows = [
        TAB,
        node("a", "test double", [["end"]]),
        node("c", "catch", [["s"]], scope=None, uncaught=False),
        node("s", "test slow", [["end"]], seconds=0.02),
        node("end", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        seen: list = []
        _track(t, "a", "not a number", seen)
        await t.idle()
        assert seen == [1]  # the catch branch's message reached the end before completion
        assert t.engine.completion.tickets == {}


async def test_a_message_going_nowhere_is_done_at_once(registry):
    flows = [TAB, node("a", "test double", [[]]), node("end", "junction", [[]])]
    async with FlowTester(flows, registry) as t:
        seen: list = []
        _track(t, "a", 1, seen)
        await t.idle()
        assert seen == [0]


async def test_untracked_messages_leave_no_ticket(registry):
    flows = [
        TAB,
        node("a", "test double", [["s"]]),
        node("s", "test slow", [["end"]], seconds=0.01),
        node("end", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("a", {"payload": 1})
        await t.idle()
        assert t.payloads("end") == [2]
        assert t.engine.completion.tickets == {}


@given(st.permutations(list(range(12))))
def test_acknowledgements_go_out_in_arrival_order_whatever_order_processing_ends(order):
    sent: list[int] = []
    acks = OrderedAcks(lambda receipt: sent.append(receipt.packet_id))
    receipts = [acks.add(packet_id) for packet_id in range(12)]
    releases = [r.hold() for r in receipts]
    for r in receipts:
        r.release()  # the transport's own hold
    assert sent == []
    finished: set[int] = set()
    for index in order:
        releases[index]()
        releases[index]()  # a second call changes nothing
        finished.add(index)
        prefix = 0
        while prefix in finished:
            prefix += 1
        assert sent == list(range(prefix))  # exactly the processed prefix, in order
    assert len(acks) == 0
