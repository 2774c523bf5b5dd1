"""python function: results per output, context, errors with lines, and the sandbox inside a flow."""

from __future__ import annotations

import time

import pytest

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "f"}


def fn(body, outputs=1, wires=None, id_="f", **props):
    return {
        "id": id_,
        "type": "python function",
        "z": "t1",
        "x": 1,
        "y": 1,
        "func": body,
        "outputs": outputs,
        "wires": wires if wires is not None else [[] for _ in range(outputs)],
        **props,
    }


def catch(wires):
    return {"id": "c", "type": "catch", "z": "t1", "x": 1, "y": 1, "scope": None, "wires": wires}


def sink(id_):
    return {"id": id_, "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[]]}


async def run_one(body, msg, outputs=1, registry=None, **props):
    async with FlowTester([TAB, fn(body, outputs, **props), catch([["err"]]), sink("err")], registry) as t:
        t.inject("f", msg)
        await t.idle()
        return t.outputs("f"), t.outputs("err")[0]


async def test_returns_the_message(registry):
    out, errors = await run_one(
        'msg["payload"] = msg["payload"] * 3\nreturn msg', {"payload": 5}, registry=registry
    )
    assert [m["payload"] for m in out[0]] == [15]
    assert errors == []


async def test_list_per_output_and_several_messages_on_one_output(registry):
    body = "return [[{'payload': 1}, {'payload': 2}], None, msg]"
    out, _ = await run_one(body, {"payload": "x"}, outputs=3, registry=registry)
    assert [m["payload"] for m in out[0]] == [1, 2]
    assert out[1] == []
    assert [m["payload"] for m in out[2]] == ["x"]


async def test_returning_none_sends_nothing_and_node_send_clones(registry):
    body = "node.send(msg)\nmsg['payload'] = 'changed after send'\nreturn None"
    out, _ = await run_one(body, {"payload": "orig"}, registry=registry)
    assert [m["payload"] for m in out[0]] == ["orig"]


async def test_context_env_and_imports(registry):
    body = (
        "import math\nfrom datetime import datetime\n"
        "count = (flow.get('count') or 0) + 1\nflow.set('count', count)\n"
        "global_.set('seen', True)\n"
        "msg['payload'] = {'root': math.sqrt(msg['payload']), 'count': count, 'id': env.get('NR_NODE_ID')}\n"
        "return msg"
    )
    async with FlowTester([TAB, fn(body)], registry) as t:
        t.inject("f", {"payload": 16})
        t.inject("f", {"payload": 9})
        await t.idle()
        assert t.payloads("f") == [{"root": 4.0, "count": 1, "id": "f"}, {"root": 3.0, "count": 2, "id": "f"}]
        assert t.engine.global_context.get("seen") is True


async def test_initialize_and_finalize(registry):
    flows = [
        TAB,
        fn(
            "msg['payload'] = context.get('ready')\nreturn msg",
            initialize="context.set('ready', 'yes')",
            finalize="global_.set('finalized', True)",
        ),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("f", {})
        await t.idle()
        assert t.payloads("f") == ["yes"]
    assert t.engine.global_context.get("finalized") is True


async def test_an_exception_goes_to_catch_with_its_line(registry):
    body = "x = 1\ny = msg['payload'] / 0\nreturn msg"
    out, errors = await run_one(body, {"payload": 1, "topic": "t"}, registry=registry)
    assert out[0] == []
    assert len(errors) == 1
    assert errors[0]["error"]["message"] == "ZeroDivisionError: division by zero (line 2)"
    assert errors[0]["error"]["source"]["type"] == "python function"
    assert errors[0]["topic"] == "t"


async def test_syntax_errors_refuse_the_deploy_with_the_line(registry):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester([TAB, fn("x = 1\ny = (\n")], registry):
            pass
    assert "line 2" in str(info.value)


@pytest.mark.parametrize(
    "body, needle",
    [
        ("import os\nreturn msg", "os"),
        ("import subprocess\nreturn msg", "subprocess"),
        ("x = __import__('os')\nreturn msg", "__import__"),
        ("msg['c'] = msg.__class__\nreturn msg", "__class__"),
        ("x = ().__class__.__bases__\nreturn msg", "__class__"),
        ("f = open('/etc/passwd')\nreturn msg", "open"),
        ("eval('1+1')\nreturn msg", "eval"),
        ("exec('x=1')\nreturn msg", "exec"),
    ],
)
async def test_the_sandbox_refuses(registry, body, needle):
    """Refused either at deploy (listed as a problem) or at run time (caught as an error)."""
    try:
        out, errors = await run_one(body, {"payload": 1}, registry=registry)
    except FlowValidationError as exc:
        assert needle.lower() in str(exc).lower()
        return
    assert out[0] == []
    assert len(errors) == 1 and needle.lower() in errors[0]["error"]["message"].lower()


async def test_an_infinite_loop_is_stopped_and_other_flows_go_on(registry):
    flows = [
        TAB,
        fn("while True:\n    pass\nreturn msg", timeout="0.3"),
        catch([["err"]]),
        sink("err"),
        fn("msg['payload'] += 1\nreturn msg", id_="other"),
    ]
    async with FlowTester(flows, registry) as t:
        started = time.monotonic()
        t.inject("f", {"payload": 1})
        t.inject("other", {"payload": 1})
        await t.idle()
        assert time.monotonic() - started < 5
        assert "time limit" in t.outputs("err")[0][0]["error"]["message"]
        assert t.payloads("other") == [2]
        # the node and the runtime keep working afterwards
        t.inject("f", {"payload": 2})
        t.inject("other", {"payload": 10})
        await t.idle()
        assert len(t.outputs("err")[0]) == 2
        assert t.payloads("other") == [2, 11]


async def test_wrong_return_type_is_an_error(registry):
    out, errors = await run_one("return 42", {"payload": 1}, registry=registry)
    assert "must return a dict" in errors[0]["error"]["message"]


async def test_time_limit_and_extra_modules_come_from_settings(registry, monkeypatch):
    monkeypatch.setenv("SOFIAFLOW_FUNCTION_MODULES", "textwrap")
    body = "import textwrap\nmsg['payload'] = textwrap.shorten('a b c d e f', 5)\nreturn msg"
    flows = [TAB, fn(body)]
    t = FlowTester(flows, registry)
    t.engine.node_settings.update(functionTimeLimit=0.2, functionExtraModules=("textwrap",))
    async with t:
        assert t.node("f")._script.time_limit == 0.2
        t.inject("f", {})
        await t.idle()
        assert t.payloads("f") == ["[...]"]


async def test_backpressure_makes_sources_wait(registry):
    from sofiaflow.runtime.testing import FlowTester as Tester

    flows = [TAB, fn("return msg", id_="f")]
    async with Tester(flows, registry) as t:
        t.engine.high_water, t.engine.low_water = 10, 5
        node = t.node("f")
        peak = 0
        for i in range(100):
            await node.send_wait({"payload": i})
            peak = max(peak, t.engine.pending)
        await t.idle()
        assert len(t.payloads("f")) == 100
        assert peak <= 11  # without waiting, all 100 would be queued before the first ran
