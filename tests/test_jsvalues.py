"""nodes/jsvalues.py: the JavaScript value semantics the nodes share."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.nodes.jsvalues import (
    UNDEFINED,
    is_number,
    js_json_parse,
    js_json_stringify,
    js_less,
    js_loose_eq,
    js_number,
    js_number_string,
    js_parse_float,
    js_regex,
    js_strict_equal,
    js_string,
    js_typeof,
)
from sofiaflow.runtime import api
from sofiaflow.runtime.api import NodeError


def test_undefined_is_the_runtimes_and_falsy():
    assert UNDEFINED is api.UNDEFINED
    assert not UNDEFINED and repr(UNDEFINED) == "undefined"


def test_number_conversion():
    assert js_number(" 12 ") == 12 and js_number("0b101") == 5 and js_number("-Infinity") == -math.inf
    assert js_number(True) == 1 and js_number(None) == 0 and js_number([]) == 0 and js_number(["3"]) == 3
    assert math.isnan(js_number("12px")) and math.isnan(js_number({})) and math.isnan(js_number(UNDEFINED))
    assert js_parse_float("  3.5abc") == 3.5 and js_parse_float([5, 6]) == 5.0
    assert js_parse_float("-Infinityx") == -math.inf and math.isnan(js_parse_float("abc"))


def test_string_conversion():
    assert js_string([1, None, [2.5, UNDEFINED], True]) == "1,,2.5,,true"
    assert js_string({"a": 1}) == "[object Object]" and js_string(None) == "null"
    assert js_string(UNDEFINED) == "undefined" and js_string(b"hi") == "hi"
    assert js_string(9007199254740994.0) == "9007199254740994"
    assert [js_number_string(x) for x in (5.0, 0.00001, 1e-7, 1e21, -math.inf)] == [
        "5",
        "0.00001",
        "1e-7",
        "1e+21",
        "-Infinity",
    ]


def test_types():
    assert [js_typeof(v) for v in (UNDEFINED, None, True, 1.5, "x", [], {}, b"")] == [
        "undefined",
        "object",
        "boolean",
        "number",
        "string",
        "object",
        "object",
        "object",
    ]
    assert is_number(3) and is_number(2.5) and not is_number(True) and not is_number("3")


def test_comparisons():
    assert js_loose_eq("5", 5) and js_loose_eq(None, UNDEFINED) and js_loose_eq(True, 1)
    assert not js_loose_eq(None, 0) and not js_loose_eq(math.nan, math.nan) and not js_loose_eq([], [])
    assert js_strict_equal(1, 1.0) and not js_strict_equal(True, 1) and not js_strict_equal("1", 1)
    same = [1]
    assert js_strict_equal(same, same) and not js_strict_equal([1], [1])
    assert js_less("10", "9") and not js_less(10, "9") and js_less(2, 2, or_equal=True)
    assert not js_less(UNDEFINED, 1) and not js_less(1, UNDEFINED)


def test_regex_named_groups():
    m = js_regex(r"(?<word>a+)-\k<word>").search("xaa-aa")
    assert m is not None and m.group("word") == "aa"
    assert js_regex("ABC", True).search("abc")


def test_json_round_trip_and_errors():
    assert js_json_stringify({"a": 1.0, "b": math.nan, "c": b"\x01", "d": [1e-7]}) == (
        '{"a":1,"b":null,"c":{"type":"Buffer","data":[1]},"d":[1e-7]}'
    )
    assert js_json_parse('{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    with pytest.raises(NodeError, match="Unexpected end of JSON input"):
        js_json_parse('{"a": ')
    with pytest.raises(NodeError, match='"NaN" is not valid JSON'):
        js_json_parse("NaN")
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(NodeError, match="circular"):
        js_json_stringify(cyclic)


_primitives = (
    st.none()
    | st.just(UNDEFINED)
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", " ", "0", "1", "1.0", "0x10", "true", "null", "abc", "1e3", "-Infinity"])
    | st.text(max_size=5)
)
_values = st.recursive(
    _primitives,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=2),
    max_leaves=6,
)


@given(_values, _values)
def test_loose_equality_is_symmetric(a, b):
    assert js_loose_eq(a, b) == js_loose_eq(b, a)


@given(st.integers())
def test_number_of_string_of_an_integer_is_itself(n):
    assert js_number(js_string(n)) == n


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_string_of_a_float_reads_back_as_the_same_double(x):
    # float(): js_number keeps integer text exact (an int), where JavaScript would round it to a double
    assert float(js_number(js_string(x))) == x
