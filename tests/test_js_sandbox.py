"""JavaScript function nodes in sandbox worker processes: the worker-side handler, crashes, timer floods."""

from __future__ import annotations

import asyncio
import json
import os

import pytest

from sofiaflow.nodes.function import js_sandbox
from sofiaflow.nodes.function.js_function import OUT_OF_MEMORY
from sofiaflow.nodes.function.js_timer_budget import TimerBudget
from tests.js_sandbox_helpers import js_tester

TAB = {"id": "t1", "type": "tab", "label": "f"}
PRELUDE_FREE = [
    ["prelude", "var calls = 0;"],
    ["body", "function body(x) { calls++; return JSON.stringify([['v', x, calls], ['pending', 0]]); }"],
]


class NoHost:
    """The handler never calls the host for these operations (a call fails the test); events are kept."""

    events: list = []

    def call(self, op, payload=None):
        raise AssertionError(f"unexpected host call {op}")

    def event(self, op, payload=None):
        NoHost.events.append((op, payload))


@pytest.fixture
def isolate_key():
    key = f"test-{os.getpid()}-{id(object())}"
    yield key
    js_sandbox.handle("close", {"key": key}, NoHost())


def run(key, items, limit=1.0, drain=False):
    return js_sandbox.handle("run", {"key": key, "limit": limit, "drain": drain, "items": items}, NoHost())


# ----- the worker-side handler, called directly ------------------------------------------------------
def test_open_then_run_items_in_order_with_data(isolate_key):
    js_sandbox.handle(
        "open", {"key": isolate_key, "memory": 32 * 1024 * 1024, "setup": PRELUDE_FREE}, NoHost()
    )
    results = run(isolate_key, [["body(JSON.parse(__sfIn))", '"a"'], ["body(2)", None]])
    assert [(r[0], json.loads(r[1]), r[2], r[3]) for r in results] == [
        ("ok", [["v", "a", 1], ["pending", 0]], None, None),
        ("ok", [["v", 2, 2], ["pending", 0]], None, None),
    ]
    assert NoHost.events[-1] == ("running", isolate_key)  # the host learns whose request runs


def test_a_request_for_a_context_value_stops_the_items(isolate_key):
    setup = PRELUDE_FREE + [["need", "function needing() { return JSON.stringify([['need', 'flow||k']]); }"]]
    js_sandbox.handle("open", {"key": isolate_key, "memory": 0, "setup": setup}, NoHost())
    results = run(isolate_key, [["body(1)", None], ["needing()", None], ["body(3)", None]])
    assert [r[0] for r in results] == ["ok", "ok"]
    assert json.loads(results[1][1]) == [["need", "flow||k"]]


def test_timeout_stops_the_items_and_the_isolate_goes_on(isolate_key):
    js_sandbox.handle("open", {"key": isolate_key, "memory": 0, "setup": PRELUDE_FREE}, NoHost())
    results = run(isolate_key, [["while (true) {}", None], ["body(1)", None]], limit=0.2)
    assert results == [["timeout", "Script execution timed out after 200ms"]]
    assert json.loads(run(isolate_key, [["body(1)", None]])[0][1])[0] == ["v", 1, 1]


def test_heap_limit_answers_memory_and_the_isolate_is_set_up_again(isolate_key):
    js_sandbox.handle(
        "open", {"key": isolate_key, "memory": 16 * 1024 * 1024, "setup": PRELUDE_FREE}, NoHost()
    )
    run(isolate_key, [["body(0)", None]])
    grow = "var a = []; while (true) a.push(new Array(100000).fill(1));"
    results = run(isolate_key, [[grow, None]], limit=10)
    assert results[0][0] == "memory" and "16 MB" in results[0][1]
    # a fresh isolate, set up again: the counter starts over
    assert json.loads(run(isolate_key, [["body(0)", None]])[0][1])[0] == ["v", 0, 1]


def test_drain_collects_what_promises_did_after_the_evaluation(isolate_key):
    setup = [["prelude", "var later = []; function drain() { return JSON.stringify(later.splice(0)); }"]]
    js_sandbox.handle("open", {"key": isolate_key, "memory": 0, "setup": setup}, NoHost())
    code = "Promise.resolve().then(() => later.push(['late'])); JSON.stringify([['pending', 1]])"
    js_sandbox.handle(
        "open",
        {"key": isolate_key, "memory": 0, "setup": setup + [["sf", "var __sf = {drain: drain};"]]},
        NoHost(),
    )
    results = run(isolate_key, [[code, None]])
    assert results[0][0] == "ok" and json.loads(results[0][2]) == [["late"]]


def test_syntax_errors_name_the_part_and_line_and_bad_requests_are_refused(isolate_key):
    with pytest.raises(Exception, match=r"SyntaxError.*\(initialize:line 2\)"):
        js_sandbox.handle(
            "open",
            {
                "key": isolate_key,
                "memory": 0,
                "setup": [["initialize", "(function(){\nvar x = 1;\nvar y = (;\n})"]],
            },
            NoHost(),
        )
    with pytest.raises(ValueError, match="no isolate"):
        run(isolate_key, [["1", None]])
    with pytest.raises(ValueError, match="string 'key'"):
        js_sandbox.handle("run", {"items": []}, NoHost())
    with pytest.raises(ValueError, match="unknown operation 'eval'"):
        js_sandbox.handle("eval", {"key": isolate_key}, NoHost())


def test_timer_budget_trips_on_a_flood_and_not_on_light_callbacks():
    flood, light = TimerBudget(window=3.0, share=0.5), TimerBudget(window=3.0, share=0.5)
    now, tripped = 0.0, []
    for _ in range(3):  # 900 ms callbacks back to back
        tripped.append(flood.over(now, now + 0.9))
        now += 0.901
    assert tripped == [False, True, True]
    assert not any(light.over(t * 0.01, t * 0.01 + 0.001) for t in range(1000))
    with pytest.raises(ValueError, match="share"):
        TimerBudget(share=0)


# ----- nodes in a real worker process -----------------------------------------------------------------
def fn(body, id_="f", **props):
    return {"id": id_, "type": "function", "z": "t1", "func": body, "outputs": 1, "wires": [[]], **props}


async def test_the_isolate_lives_in_another_process(registry):
    async with js_tester(
        [TAB, fn("msg.payload = typeof process; return msg;")], registry, mode="process"
    ) as t:
        t.inject("f", {})
        await t.idle()
        assert t.node("f").in_worker
        assert t.payloads("f") == ["undefined"]
        pid = t.pool.worker("(admin)").pid
        assert pid is not None and pid != os.getpid()


async def test_a_huge_allocation_kills_the_worker_not_the_server_and_the_node_recovers(registry):
    bomb = "if (msg.payload === 'bomb') { new Array(1e9).fill(0); } msg.payload += '!'; return msg;"
    flows = [
        TAB,
        fn(bomb, id_="b"),
        fn("msg.payload += 1; return msg;", id_="other"),
        {"id": "c", "type": "catch", "z": "t1", "scope": None, "wires": [["err"]]},
        {"id": "err", "type": "junction", "z": "t1", "wires": [[]]},
    ]
    async with js_tester(flows, registry, mode="process") as t:
        t.inject("b", {"payload": "bomb"})
        await asyncio.sleep(0.3)
        t.inject(
            "other", {"payload": 0}
        )  # waits in the same worker behind the bomb: run again after the crash
        await t.idle()
        assert [m["error"]["message"] for m in t.outputs("err")[0]] == [OUT_OF_MEMORY]
        assert t.payloads("other") == [1]
        assert t.node("b").last_status == {"fill": "red", "shape": "ring", "text": "stopped: out of memory"}
        t.inject("b", {"payload": "fine"})
        t.inject("other", {"payload": 1})
        await t.idle()
        assert t.payloads("b") == ["fine!"]
        assert t.payloads("other") == [1, 2]


async def test_an_interval_flood_is_cleared_and_the_node_turns_red(registry):
    body = (
        "setInterval(function () { var end = Date.now() + 400; while (Date.now() < end) {} "
        "node.send({payload: 'tick'}); }, 1); return null;"
    )
    async with js_tester([TAB, fn(body)], registry, mode="process") as t:
        t.inject("f", {})
        for _ in range(100):  # bounded: the budget trips after about 1.5 s of busy callbacks
            await asyncio.sleep(0.1)
            if t.node("f").last_status.get("fill") == "red":
                break
        assert t.node("f").last_status["text"] == "stopped: timers took over half of the time"
        assert any("timers cleared" in e["msg"] for e in t.errors())
        ticks = len(t.payloads("f"))
        await asyncio.sleep(0.6)
        await t.idle()
        assert len(t.payloads("f")) == ticks  # no callback ran since


async def test_an_interval_whose_callback_runs_past_the_limit_is_cleared(registry):
    body = "var n = 0; setInterval(function () { n++; if (n === 2) { while (true) {} } node.send({payload: n}); }, 5);"
    async with js_tester([TAB, fn(body, timeout="0.2")], registry, mode="process") as t:
        t.inject("f", {})
        for _ in range(50):
            await asyncio.sleep(0.1)
            if t.node("f").last_status.get("fill") == "red":
                break
        await asyncio.sleep(0.2)
        await t.idle()
        assert t.node("f").last_status["text"] == "stopped: a timer callback ran past the time limit"
        assert t.payloads("f") == [1]
        assert "Error: Script execution timed out after 200ms" in [e["msg"] for e in t.errors()]


# ----- several messages per request ------------------------------------------------------------------------
def with_catch(*nodes):
    return [
        TAB,
        *nodes,
        {"id": "c", "type": "catch", "z": "t1", "scope": None, "wires": [["err"]]},
        {"id": "err", "type": "junction", "z": "t1", "wires": [[]]},
    ]


async def test_a_backlog_crosses_in_batches_with_context_as_each_message_left_it(registry):
    body = (
        "var n = (context.get('n') || 0) + 1; context.set('n', n);"
        "var k = 'seen-' + (msg.payload % 3); flow.set(k, (flow.get(k) || 0) + 1);"
        "msg.payload = [n, flow.get(k)]; return msg;"
    )
    async with js_tester([TAB, fn(body)], registry, mode="process") as t:
        for i in range(300):
            t.inject("f", {"payload": i})
        await t.idle()
        assert t.payloads("f") == [[i + 1, i // 3 + 1] for i in range(300)]
        assert t.node("f").context.get("n") == 300
        assert [t.node("f").flow.get(f"seen-{r}") for r in range(3)] == [100, 100, 100]


async def test_in_a_batch_each_message_fails_alone_and_order_is_kept(registry):
    body = (
        "if (msg.payload === 'loop') { while (true) {} }"
        "if (msg.payload === 'throw') { throw new Error('bad ' + msg.topic); }"
        "msg.payload = msg.topic; return msg;"
    )
    async with js_tester(with_catch(fn(body, timeout="0.3")), registry, mode="process") as t:
        kinds = ["ok", "throw", "ok", "loop", "ok", "nan", "ok"]
        for i, kind in enumerate(kinds):
            t.inject("f", {"payload": float("nan") if kind == "nan" else kind, "topic": i})
        await t.idle()
        assert t.payloads("f") == [0, 2, 4, 5, 6]
        assert [(m["error"]["message"], m["topic"]) for m in t.outputs("err")[0]] == [
            ("Error: bad 1", 1),
            ("Error: Script execution timed out after 300ms", 3),
        ]


async def test_a_bomb_in_a_batch_fails_only_its_own_message(registry):
    body = "if (msg.payload === 'bomb') { new Array(1e9).fill(0); } return msg;"
    async with js_tester(with_catch(fn(body)), registry, mode="process") as t:
        for payload in ("a", "b", "bomb", "c"):
            t.inject("f", {"payload": payload})
        await t.idle()
        assert t.payloads("f") == ["a", "b", "c"]
        assert [(m["error"]["message"], m["payload"]) for m in t.outputs("err")[0]] == [
            (OUT_OF_MEMORY, "bomb")
        ]


async def test_a_body_that_closes_its_function_is_refused_at_deploy_without_running(registry):
    """The deploy check runs in the server process: it must parse such a body, never run what it injects."""
    from sofiaflow.nodes.function import js_checks
    from sofiaflow.runtime.errors import FlowValidationError

    escape = "}); globalThis.__escaped = 1; (function(){"
    with pytest.raises(FlowValidationError, match="closes the function it is written in"):
        async with js_tester([TAB, fn(escape)], registry, mode="process"):
            pass
    assert js_checks._checker.run("typeof __escaped", 1.0) == "undefined"


@pytest.mark.parametrize(
    ("isolation", "in_worker"), [("process", True), ("admin-in-process", False), ("in-process", False)]
)
async def test_function_isolation_decides_where_an_ownerless_flow_runs(registry, isolation, in_worker):
    t = js_tester([TAB, fn("msg.payload = 1; return msg;")], registry, mode="process")
    t.engine.node_settings["functionIsolation"] = isolation
    async with t:
        t.inject("f", {})
        await t.idle()
        assert t.payloads("f") == [1]
        assert t.node("f").in_worker is in_worker


async def test_an_unknown_isolation_setting_refuses_the_deploy(registry):
    from sofiaflow.runtime.errors import FlowValidationError

    t = js_tester([TAB, fn("return msg;")], registry, mode="process")
    t.engine.node_settings["functionIsolation"] = "sometimes"
    with pytest.raises(FlowValidationError, match="functionIsolation: 'sometimes'"):
        async with t:
            pass
