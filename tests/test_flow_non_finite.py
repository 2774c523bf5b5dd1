"""Non-finite numbers in flow JSON are found wherever they are (the quick check agrees with the full walk)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.runtime.flows.model import non_finite_numbers

LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
JSONISH = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=30,
)


def _all_non_finite(value) -> int:
    if isinstance(value, float):
        return 0 if math.isfinite(value) else 1
    if isinstance(value, dict):
        return sum(_all_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return sum(_all_non_finite(v) for v in value)
    return 0


@given(st.dictionaries(st.text(max_size=5), JSONISH, max_size=6))
def test_every_non_finite_number_is_found_with_its_path(obj):
    found = non_finite_numbers(obj, limit=1000)
    assert len(found) == _all_non_finite(obj)
    assert all(not math.isfinite(value) for _, value in found)


def test_a_deeply_nested_value_is_still_checked():
    obj: dict = {"a": float("nan")}
    for _ in range(5000):
        obj = {"n": obj}
    assert non_finite_numbers({"id": "x", "deep": obj})[0][0].endswith(".a")
