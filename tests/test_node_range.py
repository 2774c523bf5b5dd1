"""range node: scale, clamp, roll, drop, round, property, errors (Node-RED 16-range.js)."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def rng(action="scale", minin="0", maxin="10", minout="0", maxout="100", round=False, property="payload"):
    return {
        "id": "r",
        "type": "range",
        "z": "t1",
        "name": "",
        "x": 1,
        "y": 1,
        "wires": [[]],
        "minin": minin,
        "maxin": maxin,
        "minout": minout,
        "maxout": maxout,
        "action": action,
        "round": round,
        "property": property,
    }


async def run(registry, node, msgs, extra=()):
    async with FlowTester([TAB, node, *extra], registry) as t:
        for m in msgs:
            t.inject("r", m)
        await t.idle()
        return t.outputs("r")[0], t


async def payloads(registry, node, values):
    out, _ = await run(registry, node, [{"payload": v} for v in values])
    return [m["payload"] for m in out]


async def test_scale_maps_linearly_and_extrapolates(registry):
    assert await payloads(registry, rng(), [0, 5, 10, 2.5, -1, 20, "7", " 3 "]) == [
        0,
        50,
        100,
        25,
        -10,
        200,
        70,
        30,
    ]


async def test_scale_into_a_reversed_and_offset_range(registry):
    assert await payloads(registry, rng(minout="100", maxout="0"), [0, 2.5, 10]) == [100, 75, 0]
    assert await payloads(registry, rng(minin="-10", maxin="10", minout="4", maxout="20"), [0]) == [12]


async def test_clamp_limits_to_the_input_range_first(registry):
    assert await payloads(registry, rng("clamp"), [-5, 0, 5, 15]) == [0, 0, 50, 100]


async def test_roll_wraps_round(registry):
    node = rng("roll", minin="0", maxin="360", minout="0", maxout="360")
    assert await payloads(registry, node, [370, -10, 720, 359]) == [10, 350, 0, 359]


async def test_drop_discards_outside_the_input_range(registry):
    assert await payloads(registry, rng("drop"), [-1, 0, 10, 11, 5]) == [0, 100, 50]


async def test_round_uses_math_round(registry):
    node = rng(minin="0", maxin="1", minout="0", maxout="1", round=True)
    assert await payloads(registry, node, [0.5, 1.5, 2.5, -0.5, -1.5, 0.49]) == [1, 2, 3, 0, -1, 0]
    unrounded = await payloads(registry, rng(maxout="1"), [1])
    assert unrounded == [0.1]


async def test_other_property_and_missing_value_passes_through(registry):
    out, _ = await run(registry, rng(property="data.v"), [{"data": {"v": 2}}, {"payload": "untouched"}])
    assert out[0]["data"]["v"] == 20
    assert out[1] == {"payload": "untouched", "_msgid": out[1]["_msgid"]}


async def test_not_a_number_is_logged_and_dropped_as_node_red_does(registry):
    extra = [
        {"id": "c", "type": "catch", "z": "t1", "x": 1, "y": 1, "wires": [["o"]], "scope": None},
        {"id": "o", "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[]]},
    ]
    out, t = await run(registry, rng(), [{"payload": "abc"}, {"payload": {"a": 1}}, {"payload": 1}], extra)
    assert [m["payload"] for m in out] == [10]
    assert t.outputs("o")[0] == []
    logged = [e["msg"] for e in t.logs if e["level"] == "info"]
    assert logged == ["Payload is not a number: abc", "Payload is not a number: [object Object]"]


async def test_numbers_stored_as_numbers_are_accepted(registry):
    assert await payloads(registry, rng(minin=0, maxin=4, minout=0, maxout=1), [1]) == [0.25]


@pytest.mark.parametrize(
    "bad",
    [
        {"minin": ""},
        {"maxout": "abc"},
        {"minin": "5", "maxin": "5"},
        {"action": "bounce"},
        {"property": "a..b"},
    ],
)
async def test_bad_config_refuses_deploy(registry, bad):
    with pytest.raises(FlowValidationError):
        async with FlowTester([TAB, rng(**bad)], registry):
            pass


_bounds = st.integers(-1000, 1000)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    minin=_bounds,
    span=st.integers(1, 500),
    minout=_bounds,
    maxout=_bounds,
    values=st.lists(st.floats(-5000, 5000, allow_nan=False), min_size=1, max_size=10),
)
def test_clamp_stays_in_output_range_and_scale_is_affine(registry, minin, span, minout, maxout, values):
    maxin = minin + span

    async def scenario():
        clamped = await payloads(registry, rng("clamp", minin, maxin, minout, maxout), values)
        scaled = await payloads(registry, rng("scale", minin, maxin, minout, maxout), values)
        dropped = await payloads(registry, rng("drop", minin, maxin, minout, maxout), values)
        return clamped, scaled, dropped

    clamped, scaled, dropped = asyncio.run(scenario())
    lo, hi = min(minout, maxout), max(minout, maxout)
    eps = 1e-9 * max(1, abs(lo), abs(hi))
    assert all(lo - eps <= c <= hi + eps for c in clamped)
    for v, s in zip(values, scaled, strict=True):
        assert math.isclose(s, (v - minin) / span * (maxout - minout) + minout, rel_tol=1e-9, abs_tol=1e-9)
    assert len(dropped) == sum(1 for v in values if minin <= v <= maxin)
