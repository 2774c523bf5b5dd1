"""function (JavaScript): Node-RED's API in a V8 isolate, results per output, context, limits, errors.

Every test runs twice: with the isolate in the server process, and in a sandbox worker process.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from tests.js_sandbox_helpers import MODES, js_tester, set_mode

TAB = {"id": "t1", "type": "tab", "label": "f"}


@pytest.fixture(params=MODES, autouse=True)
def js_mode(request):
    """Where function nodes run in this test: "in-process" or "process" (a sandbox worker)."""
    set_mode(request.param)
    yield request.param
    set_mode(MODES[0])


def fn(body, outputs=1, wires=None, id_="f", **props):
    return {
        "id": id_,
        "type": "function",
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


async def run_one(body, msg, registry, outputs=1, **props):
    async with js_tester([TAB, fn(body, outputs, **props), catch([["err"]]), sink("err")], registry) as t:
        t.inject("f", msg)
        await t.idle()
        return t.outputs("f"), t.outputs("err")[0]


async def test_returns_the_message(registry):
    out, errors = await run_one(
        "msg.payload = msg.payload * 3; return msg;", {"payload": 5, "topic": "t"}, registry
    )
    assert [(m["payload"], m["topic"]) for m in out[0]] == [(15, "t")]
    assert errors == []


async def test_array_per_output_several_messages_and_null(registry):
    body = "return [[{payload: 1}, {payload: 2}], null, msg];"
    out, _ = await run_one(body, {"payload": "x", "_msgid": "m1"}, registry, outputs=3)
    assert [m["payload"] for m in out[0]] == [1, 2]
    assert out[1] == []
    assert [m["payload"] for m in out[2]] == ["x"]
    # as Node-RED, every message sent for an input carries that input's _msgid
    assert {m["_msgid"] for m in out[0] + out[2]} == {"m1"}


async def test_node_send_clones_and_return_null_sends_nothing(registry):
    body = "node.send(msg); msg.payload = 'changed after send'; return null;"
    out, _ = await run_one(body, {"payload": "orig"}, registry)
    assert [m["payload"] for m in out[0]] == ["orig"]


async def test_non_json_values_pass_through_untouched(registry):
    """msg.req/msg.res stay Python objects and come back by identity, also on new messages."""
    res, req = object(), object()
    body = "msg.payload = typeof msg.res; node.send({payload: 'copy', res: msg.res}); return msg;"
    out, errors = await run_one(body, {"payload": 1, "req": req, "res": res}, registry)
    assert errors == []
    assert [m["payload"] for m in out[0]] == ["copy", "object"]
    assert out[0][0]["res"] is res and out[0][1]["res"] is res and out[0][1]["req"] is req


async def test_bytes_are_buffers_inside(registry):
    body = "msg.hex = msg.payload.toString('hex'); msg.payload = Buffer.from('hé'); msg.n = msg.payload.length; return msg;"
    out, _ = await run_one(body, {"payload": b"\x01\xff"}, registry)
    assert out[0][0]["hex"] == "01ff"
    assert out[0][0]["payload"] == "hé".encode()
    assert out[0][0]["n"] == 3


async def test_context_flow_global_and_env(registry):
    body = (
        "var c = (context.get('count') || 0) + 1; context.set('count', c);"
        "flow.set('last', msg.payload); global.set('seen', true);"
        "msg.payload = {count: c, id: env.get('NR_NODE_ID'), keys: context.keys()}; return msg;"
    )
    async with js_tester([TAB, fn(body)], registry) as t:
        t.inject("f", {"payload": 16})
        t.inject("f", {"payload": 9})
        await t.idle()
        assert t.payloads("f") == [
            {"count": 1, "id": "f", "keys": ["count"]},
            {"count": 2, "id": "f", "keys": ["count"]},
        ]
        assert t.node("f").flow.get("last") == 9
        assert t.engine.global_context.get("seen") is True


async def test_context_keys_computed_at_run_time_and_mutated_objects(registry):
    """A key only known at run time is fetched and the call repeated; objects changed in place are kept."""
    body = (
        "var k = 'per-' + msg.topic; var n = (flow.get(k) || 0) + 1; flow.set(k, n);"
        "var list = context.get('list') || []; if (!context.get('list')) context.set('list', list);"
        "list.push(msg.topic); msg.payload = n; return msg;"
    )
    async with js_tester([TAB, fn(body)], registry) as t:
        for topic in ("a", "b", "a"):
            t.inject("f", {"topic": topic})
        await t.idle()
        assert t.payloads("f") == [1, 1, 2]
        assert t.node("f").context.get("list") == ["a", "b", "a"]


async def test_node_status_warn_and_error_with_message(registry):
    body = (
        "node.status({fill: 'green', shape: 'dot', text: 'ok ' + msg.payload}); node.warn('careful');"
        "node.error('bad thing', msg); return null;"
    )
    async with js_tester([TAB, fn(body), catch([["err"]]), sink("err")], registry) as t:
        t.inject("f", {"payload": 7})
        await t.idle()
        assert t.node("f").last_status == {"fill": "green", "shape": "dot", "text": "ok 7"}
        assert any(e["level"] == "warn" and e["msg"] == "careful" for e in t.logs)
        caught = t.outputs("err")[0]
        assert [(m["error"]["message"], m["payload"]) for m in caught] == [("bad thing", 7)]


async def test_thrown_errors_go_to_catch_with_node_red_text(registry):
    out, errors = await run_one("var x = 1;\nfoo.bar = x;\nreturn msg;", {"payload": 1}, registry)
    assert out[0] == []
    # Node-RED's text, name repeated included
    assert (
        errors[0]["error"]["message"] == "ReferenceError: ReferenceError: foo is not defined (line 2, col 1)"
    )
    assert errors[0]["error"]["source"]["type"] == "function"
    _, errors = await run_one("throw new Error('nope');", {"payload": 1}, registry)
    assert errors[0]["error"]["message"] == "Error: nope"
    _, errors = await run_one("throw 'plain text';", {"payload": 1}, registry)
    assert errors[0]["error"]["message"] == "plain text"


async def test_await_and_set_timeout(registry):
    body = "await new Promise(resolve => setTimeout(resolve, 50));msg.payload = 'after await'; return msg;"
    flows = [
        TAB,
        fn(body),
        fn("setTimeout(function () { node.send({payload: 'later'}); }, 30); return null;", id_="g"),
    ]
    async with js_tester(flows, registry, virtual_time=True) as t:
        t.inject("f", {})
        t.inject("g", {})
        await t.idle()
        assert t.payloads("f") == [] and t.payloads("g") == []
        await t.advance(0.1)
        await t.idle()
        assert t.payloads("f") == ["after await"]
        assert t.payloads("g") == ["later"]


async def test_set_interval_and_clear(registry):
    body = (
        "var n = 0; var id = setInterval(function () { n++; node.send({payload: n});"
        " if (n === 3) clearInterval(id); }, 10); return null;"
    )
    async with js_tester([TAB, fn(body)], registry, virtual_time=True) as t:
        t.inject("f", {})
        await t.idle()
        await t.advance(0.1)
        await t.idle()
        assert t.payloads("f") == [1, 2, 3]


async def test_node_done_marks_completion_of_the_message_as_left(registry):
    body = (
        "setTimeout(function () { node.send(msg); msg.payload = 'finished'; node.done(); }, 20); return null;"
    )
    flows = [
        TAB,
        fn(body),
        {"id": "done", "type": "complete", "z": "t1", "scope": ["f"], "wires": [["s"]]},
        sink("s"),
    ]
    async with js_tester(flows, registry, virtual_time=True) as t:
        t.inject("f", {"payload": 1})
        await t.idle()
        assert t.outputs("done")[0] == []
        await t.advance(0.05)
        await t.idle()
        assert [m["payload"] for m in t.outputs("done")[0]] == ["finished"]
        assert t.payloads("f") == [1]


async def test_complete_sees_the_message_as_the_body_left_it(registry):
    res = object()
    flows = [
        TAB,
        fn("msg.payload = msg.payload * 10; return null;"),
        {"id": "done", "type": "complete", "z": "t1", "scope": ["f"], "wires": [["s"]]},
        sink("s"),
    ]
    async with js_tester(flows, registry) as t:
        t.inject("f", {"payload": 2, "res": res})
        await t.idle()
        assert [(m["payload"], m["res"] is res) for m in t.outputs("done")[0]] == [(20, True)]


async def test_initialize_and_finalize(registry):
    flows = [
        TAB,
        fn(
            "msg.payload = context.get('ready'); return msg;",
            initialize="context.set('ready', 'yes');",
            finalize="global.set('finalized', true);",
        ),
    ]
    async with js_tester(flows, registry) as t:
        t.inject("f", {})
        await t.idle()
        assert t.payloads("f") == ["yes"]
    assert t.engine.global_context.get("finalized") is True


async def test_non_finite_numbers_enter_as_numbers_and_leave_as_null(registry):
    """A caveat: messages leave the isolate as JSON, where NaN and Infinity become null."""
    body = "msg.payload = [String(msg.payload), msg.payload > 1e308, 0 / 0]; return msg;"
    out, _ = await run_one(body, {"payload": float("inf")}, registry)
    assert out[0][0]["payload"] == ["Infinity", True, None]


async def test_held_values_reach_timers_and_async_errors_go_to_catch(registry):
    res = object()
    body = (
        "setTimeout(function () { node.send({payload: 'late', res: msg.res}); }, 10);"
        "await new Promise(function (resolve) { setTimeout(resolve, 20); });"
        "throw new Error('after await');"
    )
    flows = [TAB, fn(body), catch([["err"]]), sink("err")]
    async with js_tester(flows, registry, virtual_time=True) as t:
        t.inject("f", {"payload": 1, "res": res})
        await t.idle()
        await t.advance(0.05)
        await t.idle()
        assert [(m["payload"], m["res"] is res) for m in t.outputs("f")[0]] == [("late", True)]
        assert [(m["error"]["message"], m["payload"]) for m in t.outputs("err")[0]] == [
            ("Error: after await", 1)
        ]


async def test_timers_are_cancelled_on_redeploy(registry):
    body = "setTimeout(function () { node.send({payload: 'too late'}); }, 50); return null;"
    async with js_tester([TAB, fn(body)], registry, virtual_time=True) as t:
        t.inject("f", {})
        await t.idle()
        await t.deploy([TAB, fn("return msg;")])
        await t.advance(0.1)
        await t.idle()
        assert t.payloads("f") == []


async def test_red_util_clone_message(registry):
    body = "var c = RED.util.cloneMessage(msg); c.payload.a = 2; return [msg, c];"
    out, _ = await run_one(body, {"payload": {"a": 1}}, registry, outputs=2)
    assert out[0][0]["payload"] == {"a": 1} and out[1][0]["payload"] == {"a": 2}


async def test_runaway_is_stopped_within_its_timeout_and_other_flows_go_on(registry):
    flows = [
        TAB,
        fn("while (true) {}", timeout="0.3"),
        catch([["err"]]),
        sink("err"),
        fn("msg.payload += 1; return msg;", id_="other"),
    ]
    async with js_tester(flows, registry) as t:
        started = time.monotonic()
        t.inject("f", {"payload": 1})
        t.inject("other", {"payload": 1})
        await t.idle()
        assert time.monotonic() - started < 1.5
        assert t.outputs("err")[0][0]["error"]["message"] == "Error: Script execution timed out after 300ms"
        assert t.node("f").last_status["fill"] == "red"
        assert t.payloads("other") == [2]
        t.inject("f", {"payload": 2})
        t.inject("other", {"payload": 10})
        await t.idle()
        assert len(t.outputs("err")[0]) == 2
        assert t.payloads("other") == [2, 11]


async def test_memory_limit_stops_the_script_and_the_node_recovers(registry):
    body = "if (msg.payload === 'grow') { var a = []; while (true) a.push(new Array(100000).fill(1)); } return msg;"
    flows = [TAB, fn(body, timeout="5"), catch([["err"]]), sink("err")]
    t = js_tester(flows, registry)
    t.engine.node_settings.update(functionMemoryLimit=16)
    async with t:
        t.inject("f", {"payload": "grow"})
        await t.idle()
        assert "heap limit of 16 MB" in t.outputs("err")[0][0]["error"]["message"]
        t.inject("f", {"payload": "fine"})
        await t.idle()
        assert t.payloads("f") == ["fine"]


async def test_syntax_errors_and_libs_refuse_the_deploy(registry):
    with pytest.raises(FlowValidationError) as info:
        async with js_tester([TAB, fn("var x = 1;\nvar y = (;\nreturn msg;")], registry):
            pass
    assert "SyntaxError" in str(info.value) and "line 2" in str(info.value)
    with pytest.raises(FlowValidationError) as info:
        async with js_tester(
            [TAB, fn("return msg;", libs=[{"var": "moment", "module": "moment"}])], registry
        ):
            pass
    assert "libs" in str(info.value) and "moment" in str(info.value)


async def test_non_message_results_are_logged_errors(registry):
    """As Node-RED: logged as the node's error, without a message (so no catch node gets it)."""
    async with js_tester([TAB, fn("return [42, msg];", outputs=2)], registry) as t:
        t.inject("f", {"payload": 1})
        await t.idle()
        assert [e["msg"] for e in t.errors()] == ["Function tried to send a message of type number"]
        assert t.payloads("f", 1) == [1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**53), 2**53)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.binary(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )
)
def test_json_values_and_bytes_round_trip_unchanged(registry, value):
    async def scenario():
        async with js_tester([TAB, fn("return msg;")], registry) as t:
            t.inject("f", {"payload": value})
            await t.idle()
            return t.payloads("f")

    assert asyncio.run(scenario()) == [value]
