"""Engine batch delivery: a node with `on_batch` (and `max_batch` > 0) gets what waits in its inbox in one call."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": "t1",
        "name": props.pop("name", ""),
        "x": 0,
        "y": 0,
        "wires": [list(w) for w in wires],
        **props,
    }


class BatchConfig(NodeConfig):
    max_batch: int = 4


class BatchNode(Node):
    """Doubles payloads a batch at a time; a payload of "bad" fails its own message; "all" fails the batch."""

    type = "test batch"
    Config = BatchConfig

    def setup(self) -> None:
        self.max_batch = self.config.max_batch
        self.batches: list[int] = []

    async def on_batch(self, msgs: list[Msg]) -> list[BaseException | None]:
        self.batches.append(len(msgs))
        await asyncio.sleep(0)
        if any(m.get("payload") == "all" for m in msgs):
            raise NodeError("the whole batch failed")
        results: list[BaseException | None] = []
        for msg in msgs:
            if msg.get("payload") == "bad":
                results.append(NodeError(f"bad payload in {msg['topic']}"))
                continue
            msg["payload"] *= 2
            self.send(msg)
            results.append(None)
        return results


class WrongCountNode(BatchNode):
    type = "test batch wrong"

    async def on_batch(self, msgs: list[Msg]) -> list[BaseException | None]:
        return [None]


@pytest.fixture
def batch_registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in default_registry().types():
        reg.register(cls, default_registry().origin(cls.type))
    reg.register(BatchNode, "tests")
    reg.register(WrongCountNode, "tests")
    return reg


async def test_waiting_messages_arrive_in_batches_up_to_the_maximum_in_order(batch_registry):
    flows = [TAB, node("b", "test batch", [["o"]]), node("o", "junction", [[]])]
    async with FlowTester(flows, batch_registry) as t:
        for i in range(10):
            t.inject("b", {"payload": i, "topic": str(i)})
        await t.idle()
        assert t.payloads("b") == [i * 2 for i in range(10)]
        assert t.node("b").batches == [4, 4, 2]
        assert t.node("b").count_in == 10


async def test_each_failed_message_goes_to_catch_and_completion_follows_success(batch_registry):
    flows = [
        TAB,
        node("b", "test batch", [["o"]], name="batcher"),
        node("o", "junction", [[]]),
        node("c", "catch", [["e"]], scope=None, uncaught=False),
        node("e", "junction", [[]]),
        node("d", "complete", [["f"]], scope=["b"]),
        node("f", "junction", [[]]),
    ]
    async with FlowTester(flows, batch_registry) as t:
        for i, payload in enumerate([1, "bad", 3]):
            t.inject("b", {"payload": payload, "topic": f"m{i}"})
        await t.idle()
        caught = t.outputs("e")[0]
        assert [c["error"]["message"] for c in caught] == ["bad payload in m1"]
        assert caught[0]["topic"] == "m1" and caught[0]["error"]["source"]["id"] == "b"
        assert [m["topic"] for m in t.outputs("f")[0]] == ["m0", "m2"]
        assert t.node("b").count_err == 1 and t.engine.errors_total == 1


async def test_a_batch_that_raises_fails_every_message_in_it(batch_registry):
    flows = [
        TAB,
        node("b", "test batch", [["o"]]),
        node("o", "junction", [[]]),
        node("c", "catch", [["e"]], scope=None, uncaught=False),
        node("e", "junction", [[]]),
    ]
    async with FlowTester(flows, batch_registry) as t:
        for payload in [1, "all", 3]:
            t.inject("b", {"payload": payload})
        await t.idle()
        assert [c["error"]["message"] for c in t.outputs("e")[0]] == ["the whole batch failed"] * 3
        assert t.payloads("o") == []
        t.inject("b", {"payload": 5})
        await t.idle()
        assert t.payloads("b") == [10]


async def test_a_wrong_number_of_results_fails_the_batch_with_a_clear_error(batch_registry):
    flows = [
        TAB,
        node("b", "test batch wrong", [["o"]]),
        node("o", "junction", [[]]),
        node("c", "catch", [["e"]], scope=None, uncaught=False),
        node("e", "junction", [[]]),
    ]
    async with FlowTester(flows, batch_registry) as t:
        t.inject("b", {"payload": 1})
        t.inject("b", {"payload": 2})
        await t.idle()
        messages = [c["error"]["message"] for c in t.outputs("e")[0]]
        assert messages == ["on_batch returned list for 2 messages, not a list of 2 results"] * 2


async def test_a_node_without_a_positive_max_batch_gets_single_messages(batch_registry):
    flows = [TAB, node("b", "test batch", [["o"]], max_batch=0), node("o", "junction", [[]])]
    async with FlowTester(flows, batch_registry) as t:
        t.inject("b", {"payload": 1})
        await t.idle()
        assert t.node("b").batches == []  # on_batch unused; the base on_input ignores the message


@settings(max_examples=40, deadline=None)
@given(
    payloads=st.lists(st.one_of(st.integers(-1000, 1000), st.just("bad")), max_size=40),
    max_batch=st.integers(1, 8),
)
def test_order_and_accounting_hold_for_any_mix(payloads, max_batch):
    registry = NodeRegistry()
    for cls in default_registry().types():
        registry.register(cls, default_registry().origin(cls.type))
    registry.register(BatchNode, "tests")
    flows = [
        TAB,
        node("b", "test batch", [["o"]], max_batch=max_batch),
        node("o", "junction", [[]]),
        node("c", "catch", [["e"]], scope=None, uncaught=False),
        node("e", "junction", [[]]),
    ]

    async def run():
        async with FlowTester(flows, registry) as t:
            for i, payload in enumerate(payloads):
                t.inject("b", {"payload": payload, "topic": str(i)})
            await t.idle()
            assert t.payloads("b") == [p * 2 for p in payloads if p != "bad"]
            assert [c["topic"] for c in t.outputs("e")[0]] == [
                str(i) for i, p in enumerate(payloads) if p == "bad"
            ]
            assert all(size <= max_batch for size in t.node("b").batches)
            assert sum(t.node("b").batches) == len(payloads)
            assert t.engine.pending == 0

    asyncio.run(run())
