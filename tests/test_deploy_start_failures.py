"""A deploy whose nodes fail to start still deploys, and its result names each failing node with its error."""

from __future__ import annotations

from sofiaflow.runtime.api import Node, NodeError
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry
from sofiaflow.runtime.testing import FlowTester


class RefusingNode(Node):
    type = "test refusing"
    outputs = 0

    async def start(self) -> None:
        raise NodeError("test refusing: no partner is running")


def _registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in default_registry().types():
        reg.register(cls, default_registry().origin(cls.type))
    reg.register(RefusingNode, "tests")
    return reg


def _node(node_id: str, node_type: str, **props) -> dict:
    return {"id": node_id, "type": node_type, "z": "t1", "x": 1, "y": 1, "wires": [], **props}


async def test_start_failures_name_each_node_and_the_others_run():
    flows = [{"id": "t1", "type": "tab"}, _node("ok", "junction", wires=[[]])]
    async with FlowTester(flows, _registry()) as t:
        result = await t.deploy(flows + [_node("bad", "test refusing", name="refuser")], "full")
        assert [(p.node_id, p.node_type) for p in result.start_failures] == [("bad", "test refusing")]
        assert "no partner is running" in result.start_failures[0].message
        assert result.problems == []
        assert t.node("bad").last_status["fill"] == "red"
        again = await t.deploy(flows, "full")
        assert again.start_failures == []
