"""The JavaScript function node's per-message JSON (js_json) gives exactly what js_bridge's rules give."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.function.js_bridge import Encoder, HeldValues, decode
from sofiaflow.nodes.function.js_json import ValueEncoder, decode_answer


class Opaque:
    """A value that is not JSON: it stays on the Python side."""


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=8),
    st.builds(Opaque),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=20,
)


def _same(a, b) -> bool:
    """Equal, NaN equal to NaN, types and held objects included."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=4))
def test_one_encoder_for_many_values_gives_what_an_encoder_per_value_gives(batch):
    held_a, held_b = HeldValues(), HeldValues()
    reused = ValueEncoder(held_a)
    for value in batch:
        fresh = Encoder(held_b)
        expected = fresh.encode(value)
        assert reused.encode_value(value) == (expected, fresh.buffers, fresh.strict)


def test_a_failed_encoding_leaves_the_encoder_usable():
    encoder = ValueEncoder(HeldValues())
    loop: list = []
    loop.append(loop)
    try:
        encoder.encode_value({"a": loop})
    except ValueError as exc:
        assert "Circular reference" in str(exc)
    else:
        raise AssertionError("a circular value was encoded")
    assert encoder.encode_value({"a": [1, 2]}) == ('{"a":[1,2]}', False, True)


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_answers_decode_as_js_bridge_decodes_them(value):
    held = HeldValues()
    text = json.dumps(value, ensure_ascii=False)
    assert _same(decode_answer(text, held), decode(text, held))


def test_what_msgspec_refuses_or_would_read_otherwise_takes_the_general_path():
    held = HeldValues()
    marker = object()
    ref = held.hold(marker)
    for text in (
        '"\\ud800"',  # a lone surrogate, as JSON.stringify writes it
        "1e400",
        "[1152921504606846976, -12345678901234567]",  # whole numbers a double holds only approximately
        '{"type": "Buffer", "data": [1, 2]}',
        json.dumps({"res": ref}),
    ):
        assert _same(decode_answer(text, held), decode(text, held)), text
    assert decode_answer("[1152921504606846976]", held) == [1152921504606846976.0]
    assert type(decode_answer("[1152921504606846976]", held)[0]) is float
    assert decode_answer(json.dumps({"res": ref}), held)["res"] is marker
