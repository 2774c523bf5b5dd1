"""Engine behaviour: routing, clone-on-fan-out, order, errors to catch, link nodes, subflows."""

from __future__ import annotations

import asyncio

from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": props.pop("z", "t1"),
        "name": props.pop("name", ""),
        "x": 100,
        "y": 100,
        "wires": [list(w) for w in wires],
        **props,
    }


async def test_chain_and_fan_out_gives_each_receiver_its_own_copy(registry):
    flows = [
        TAB,
        node("a", "junction", [["m", "j"]]),
        node("m", "test mutate", [[]]),
        node("j", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("a", {"payload": [1]})
        await t.idle()
        assert t.payloads("m") == [[1, "mutated"]]
        assert t.payloads("j") == [[1]]
        assert t.outputs("m")[0][0]["_msgid"] == t.outputs("j")[0][0]["_msgid"]


async def test_per_wire_order_is_kept(registry):
    flows = [TAB, node("a", "test double", [["b"]]), node("b", "junction", [[]])]
    async with FlowTester(flows, registry) as t:
        for i in range(500):
            t.inject("a", {"payload": i})
        await t.idle()
        assert t.payloads("b") == [i * 2 for i in range(500)]


async def test_error_goes_to_catch_with_source_and_runtime_survives(registry):
    flows = [
        TAB,
        node("a", "test double", [["b"]], name="doubler"),
        node("b", "junction", [[]]),
        node("c", "catch", [["d"]], scope=None, uncaught=False),
        node("d", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("a", {"payload": "text", "topic": "x"})
        t.inject("a", {"payload": 4})
        await t.idle()
        caught = t.outputs("d")[0]
        assert len(caught) == 1
        assert caught[0]["error"]["message"] == "cannot double 'text'"
        assert caught[0]["error"]["source"] == {
            "id": "a",
            "type": "test double",
            "name": "doubler",
            "count": 1,
        }
        assert caught[0]["topic"] == "x"
        assert t.payloads("b") == [8]
        assert t.engine.errors_total == 1


async def test_catch_scope_and_uncaught(registry):
    flows = [
        TAB,
        node("a", "test double", [[]]),
        node("b", "test double", [[]]),
        node("c1", "catch", [["o1"]], scope=["a"]),
        node("c2", "catch", [["o2"]], scope=None, uncaught=True),
        node("o1", "junction", [[]]),
        node("o2", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("a", {"payload": "x"})
        t.inject("b", {"payload": "y"})
        await t.idle()
        assert [m["error"]["source"]["id"] for m in t.outputs("o1")[0]] == ["a"]
        assert [m["error"]["source"]["id"] for m in t.outputs("o2")[0]] == ["b"]


async def test_slow_async_node_does_not_stall_other_branch(registry):
    flows = [
        TAB,
        node("a", "junction", [["slow", "fast"]]),
        node("slow", "test timed", [["o"]], seconds=0.2),
        node("fast", "junction", [[]]),
        node("o", "junction", [[]]),
    ]
    async with FlowTester(flows, registry, virtual_time=True) as t:
        t.inject("a", {"payload": 1})
        for _ in range(100):  # loop turns only: the clock stands still, so "slow" cannot finish meanwhile
            if t.payloads("fast") and t.clock.pending:
                break
            await asyncio.sleep(0)
        assert t.payloads("fast") == [1]
        assert t.clock.pending == 1  # "slow" holds its message, waiting on its timer
        assert t.payloads("o") == []
        t.clock.advance(0.2)
        await t.idle()
        assert t.payloads("o") == [1]


async def test_link_out_reaches_link_in_on_another_tab(registry):
    flows = [
        TAB,
        {"id": "t2", "type": "tab", "label": "Flow 2"},
        node("a", "junction", [["lo"]]),
        node("lo", "link out", [], links=["li"], mode="link"),
        node("li", "link in", [["o"]], z="t2", links=["lo"]),
        node("o", "junction", [[]], z="t2"),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("a", {"payload": "hi"})
        await t.idle()
        out = t.outputs("o")[0]
        assert [m["payload"] for m in out] == ["hi"]
        assert out[0]["_event"] == "node:lo"


async def test_link_call_returns(registry):
    flows = [
        TAB,
        node("call", "link call", [["o"]], links=["li"], linkType="static", timeout="5"),
        node("li", "link in", [["dbl"]]),
        node("dbl", "test double", [["ret"]]),
        node("ret", "link out", [], mode="return", links=[]),
        node("o", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("call", {"payload": 21})
        await t.idle()
        out = t.outputs("o")[0]
        assert [m["payload"] for m in out] == [42]
        assert "_linkSource" not in out[0]


async def test_subflow_instances_use_their_env_and_wire_out(registry):
    flows = [
        TAB,
        {
            "id": "sf",
            "type": "subflow",
            "name": "S",
            "in": [{"x": 0, "y": 0, "wires": [{"id": "inner"}]}],
            "out": [{"x": 0, "y": 0, "wires": [{"id": "inner", "port": 0}]}],
            "env": [{"name": "FACTOR", "type": "num", "value": "2"}],
        },
        {"id": "inner", "type": "test double", "z": "sf", "x": 1, "y": 1, "wires": [[]]},
        node("i1", "subflow:sf", [["o"]], env=[{"name": "FACTOR", "value": "10", "type": "num"}]),
        node("o", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("i1", {"payload": 7})
        await t.idle()
        assert t.payloads("o") == [14]
        inner = t.node("i1-inner")
        assert inner.env("FACTOR") == 10
        assert inner.alias == "inner"


async def test_status_node_reports_status(registry):
    flows = [
        TAB,
        node("a", "junction", [[]]),
        node("s", "status", [["o"]], scope=["a"]),
        node("o", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.node("a").status("green", "dot", "ok")
        await t.idle()
        st = t.outputs("o")[0][0]["status"]
        assert st == {
            "fill": "green",
            "shape": "dot",
            "text": "ok",
            "source": {"id": "a", "type": "junction", "name": ""},
        }


async def test_complete_node_fires_after_done(registry):
    flows = [
        TAB,
        node("a", "test double", [[]]),
        node("c", "complete", [["o"]], scope=["a"]),
        node("o", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("a", {"payload": 2})
        t.inject("a", {"payload": "bad"})
        await t.idle()
        out = t.outputs("o")[0]
        assert [m["payload"] for m in out] == [4]
        assert out[0]["complete"]["source"]["id"] == "a"


async def test_list_send_clones_every_delivery_after_the_first(registry):
    from sofiaflow.runtime.api import Node

    class TwoPorts(Node):
        type = "test two ports"
        outputs = 2

        def on_input(self, msg):
            self.send([msg, msg])

    registry.register(TwoPorts, "tests")
    flows = [
        TAB,
        node("s", "test two ports", [["m1", "m2"], ["m3"]]),
        node("m1", "test mutate", [[]]),
        node("m2", "test mutate", [[]]),
        node("m3", "test mutate", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("s", {"payload": []})
        await t.idle()
        assert t.payloads("m1") == t.payloads("m2") == t.payloads("m3") == [["mutated"]]
