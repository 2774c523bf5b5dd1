"""A JavaScript function node's backlog that mixes strict JSON messages with ones that are not (NaN, Infinity) and
ones carrying bytes: each message is evaluated as it would be alone, in order, in process and in a worker."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.flows.registry import default_registry
from tests.js_sandbox_helpers import MODES, js_tester

TAB = {"id": "t1", "type": "tab", "label": "t"}
BODY = """
const p = msg.payload;
msg.kind = Buffer.isBuffer(p) ? 'buffer:' + p.length
  : (typeof p === 'number' && isNaN(p)) ? 'nan'
  : (p === Infinity) ? 'inf'
  : typeof p;
return msg;
"""
FLOWS = [
    TAB,
    {"id": "f", "type": "function", "z": "t1", "func": BODY, "outputs": 1, "wires": [["out"]]},
    {"id": "out", "type": "junction", "z": "t1", "wires": [[]]},
]
payloads = st.lists(
    st.one_of(
        st.integers(-1000, 1000),
        st.just(math.nan),
        st.just(math.inf),
        st.binary(max_size=4),
        st.text(max_size=3),
    ),
    max_size=30,
)


def _kind(p: object) -> str:
    if isinstance(p, bytes):
        return f"buffer:{len(p)}"
    if isinstance(p, float) and math.isnan(p):
        return "nan"
    if p == math.inf:
        return "inf"
    return "number" if isinstance(p, int) else "string"


async def _kinds(mode: str, batch: list) -> list[str]:
    async with js_tester(FLOWS, default_registry(), mode=mode) as t:
        for i, p in enumerate(batch):
            t.inject("f", {"payload": p, "i": i})
        await t.idle()
        out = t.outputs("out")[0]
        assert [m["i"] for m in out] == list(range(len(batch)))
        return [m["kind"] for m in out]


@settings(max_examples=10, deadline=None)
@given(payloads)
async def test_a_mixed_backlog_in_process_is_evaluated_message_by_message(batch):
    assert await _kinds("in-process", batch) == [_kind(p) for p in batch]


@pytest.mark.parametrize("mode", MODES)
async def test_a_mixed_backlog_keeps_each_message_as_it_is(mode):
    batch = [1, math.nan, b"ab", 2, math.inf, "x", b"", 3, math.nan, 4] * 30
    assert await _kinds(mode, batch) == [_kind(p) for p in batch]
