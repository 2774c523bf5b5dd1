"""A `nodes` redeploy keeps unchanged nodes running: a delay's held messages, a join's pending
group and node context all survive; a full redeploy starts them afresh."""

from __future__ import annotations

import copy

from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "state"}


def flows():
    return [
        TAB,
        {
            "id": "delay",
            "type": "delay",
            "z": "t1",
            "x": 100,
            "y": 100,
            "pauseType": "delay",
            "timeout": "5",
            "timeoutUnits": "seconds",
            "rate": "1",
            "nbRateUnits": "1",
            "rateUnits": "second",
            "randomFirst": "1",
            "randomLast": "5",
            "randomUnits": "seconds",
            "drop": False,
            "allowrate": False,
            "outputs": 1,
            "wires": [["out"]],
        },
        {
            "id": "join",
            "type": "join",
            "z": "t1",
            "x": 100,
            "y": 200,
            "mode": "custom",
            "build": "array",
            "property": "payload",
            "propertyType": "msg",
            "key": "topic",
            "joiner": "\\n",
            "joinerType": "str",
            "accumulate": False,
            "timeout": "",
            "count": "3",
            "wires": [["out"]],
        },
        {
            "id": "count",
            "type": "python function",
            "z": "t1",
            "x": 100,
            "y": 300,
            "outputs": 1,
            "func": "n = (context.get('n') or 0) + 1\ncontext.set('n', n)\nmsg['payload'] = n\nreturn msg",
            "wires": [["out"]],
        },
        {"id": "out", "type": "junction", "z": "t1", "x": 300, "y": 200, "wires": [[]]},
        {"id": "other", "type": "junction", "z": "t1", "name": "v1", "x": 300, "y": 300, "wires": [[]]},
    ]


def changed_elsewhere(base):
    new = copy.deepcopy(base)
    for node in new:
        if node["id"] == "other":
            node["name"] = "v2"  # a real change, to another node
        if node["id"] == "delay":
            node["x"] = 400  # moved only: not a change
    return new


async def _prime(t):
    t.inject("delay", {"payload": "held-1"})
    t.inject("delay", {"payload": "held-2"})
    t.inject("join", {"payload": "a"})
    t.inject("join", {"payload": "b"})
    t.inject("count", {})
    t.inject("count", {})
    await t.advance(1)


async def test_nodes_redeploy_keeps_queues_and_context(registry):
    base = flows()
    async with FlowTester(base, registry, virtual_time=True) as t:
        await _prime(t)
        assert t.payloads("out") == [1, 2]
        result = await t.deploy(changed_elsewhere(base), "nodes")
        assert (result.stopped, result.started) == (1, 1)  # only "other"
        t.clear()
        await t.advance(5)
        assert t.payloads("out") == ["held-1", "held-2"]
        t.inject("join", {"payload": "c"})
        t.inject("count", {})
        await t.idle()
        assert t.payloads("out") == ["held-1", "held-2", ["a", "b", "c"], 3]


async def test_full_redeploy_restarts_them_but_keeps_context(registry):
    base = flows()
    async with FlowTester(base, registry, virtual_time=True) as t:
        await _prime(t)
        await t.deploy(changed_elsewhere(base), "full")
        t.clear()
        await t.advance(5)
        assert t.payloads("out") == []  # held messages went with the old delay node
        t.inject("join", {"payload": "c"})
        t.inject("count", {})
        await t.idle()
        assert t.payloads("out") == [3]  # a fresh join waits; context of a restarted node is kept
