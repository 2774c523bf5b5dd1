"""A JavaScript function node with a backlog gets it in few evaluations, in the server process as in a worker, with
the per-message semantics of one message at a time: order, node.send, node.done, errors to catch, timeouts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.function.js_isolate import JsIsolate
from sofiaflow.runtime.flows.registry import default_registry
from tests.js_sandbox_helpers import MODES, js_tester

TAB = {"id": "t1", "type": "tab", "label": "t"}
BODY = """
if (msg.payload % 7 === 3) { throw new Error('bad ' + msg.payload); }
if (msg.payload % 5 === 0) { node.send({payload: -msg.payload}); node.done(); return null; }
const seen = context.get('seen') || 0;
context.set('seen', seen + 1);
msg.seen = seen;
msg.payload = msg.payload * 2;
return msg;
"""


def _flows(body: str = BODY, **props) -> list[dict]:
    return [
        TAB,
        {"id": "f", "type": "function", "z": "t1", "func": body, "outputs": 1, "wires": [["out"]], **props},
        {"id": "out", "type": "junction", "z": "t1", "wires": [[]]},
        {"id": "c", "type": "catch", "z": "t1", "scope": None, "wires": [["err"]]},
        {"id": "err", "type": "junction", "z": "t1", "wires": [[]]},
    ]


def _expected(payloads: list[int]) -> tuple[list[dict], list[str]]:
    out, errors, seen = [], [], 0
    for p in payloads:
        if math.fmod(p, 7) == 3:  # JavaScript's %: the sign of the dividend
            errors.append(f"Error: bad {p}")
        elif math.fmod(p, 5) == 0:
            out.append({"payload": -p})
        else:
            out.append({"payload": p * 2, "seen": seen})
            seen += 1
    return out, errors


async def _run(mode: str, payloads: list[int]) -> tuple[list[dict], list[str]]:
    async with js_tester(_flows(), default_registry(), mode=mode) as t:
        for p in payloads:
            t.inject("f", {"payload": p})
        await t.idle()
        out = [{k: m[k] for k in ("payload", "seen") if k in m} for m in t.outputs("out")[0]]
        errors = [m["error"]["message"] for m in t.outputs("err")[0]]
        return out, errors


@pytest.mark.parametrize("mode", MODES)
async def test_a_backlog_keeps_order_sends_errors_and_context(mode):
    payloads = list(range(400))
    assert await _run(mode, payloads) == _expected(payloads)


async def test_a_backlog_in_the_server_process_takes_few_evaluations(monkeypatch):
    runs = []
    real = JsIsolate.run

    def counted(self, *args, **kwargs):
        runs.append(args[0][:20])
        return real(self, *args, **kwargs)

    async with js_tester(_flows("msg.payload += 1; return msg;"), default_registry(), mode="in-process") as t:
        monkeypatch.setattr(JsIsolate, "run", counted)
        for p in range(1000):
            t.inject("f", {"payload": p})
        await t.idle()
        assert t.payloads("out") == [p + 1 for p in range(1000)]
    assert len(runs) < 100, len(runs)  # one per message before


@pytest.mark.parametrize("mode", MODES)
async def test_a_timeout_in_a_backlog_fails_that_message_only(mode):
    body = "if (msg.payload === 5) { while (true) {} }\nmsg.payload += 100;\nreturn msg;"
    async with js_tester(_flows(body, timeout="0.3"), default_registry(), mode=mode) as t:
        for p in range(10):
            t.inject("f", {"payload": p})
        await t.idle()
        assert t.payloads("out") == [p + 100 for p in range(10) if p != 5]
        assert [m["error"]["message"] for m in t.outputs("err")[0]] == [
            "Error: Script execution timed out after 300ms"
        ]


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(-50, 50), max_size=60))
async def test_any_backlog_in_the_server_process_answers_as_one_by_one(payloads):
    assert await _run("in-process", payloads) == _expected(payloads)
