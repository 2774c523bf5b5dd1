"""yaml node: YAML string <-> object, as Node-RED's 70-YAML.js (js-yaml's layout, safe tags only)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.parser.yaml_node import dump, load
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def flow(**cfg):
    return [
        TAB,
        {"id": "y", "type": "yaml", "z": "t1", "wires": [["o"]], "property": cfg.get("property", "payload")},
        {"id": "o", "type": "junction", "z": "t1", "wires": [[]]},
        {"id": "c", "type": "catch", "z": "t1", "wires": [["e"]], "scope": None, "uncaught": False},
        {"id": "e", "type": "junction", "z": "t1", "wires": [[]]},
    ]


async def run(registry, msgs, **cfg):
    async with FlowTester(flow(**cfg), registry) as t:
        for m in msgs:
            t.inject("y", m)
        await t.idle()
        return t.outputs("o")[0], t.outputs("e")[0], t.logs


async def test_string_becomes_object_and_object_becomes_js_yaml_text(registry):
    out, err, _ = await run(
        registry,
        [{"payload": "a: 1\nb:\n  - x\n  - {c: true}\n"}, {"payload": {"a": 1.0, "b": ["x", {"c": None}]}}],
    )
    assert out[0]["payload"] == {"a": 1, "b": ["x", {"c": True}]}
    assert out[1]["payload"] == "a: 1\nb:\n  - x\n  - c: null\n"
    assert err == []


async def test_strings_that_look_like_other_types_are_quoted(registry):
    out, _, _ = await run(registry, [{"payload": {"n": "123", "t": "true", "e": {}, "l": [], "u": "é"}}])
    assert out[0]["payload"] == "'n': '123'\nt: 'true'\ne: {}\nl: []\nu: é\n"


async def test_bad_yaml_goes_to_catch_and_python_tags_are_refused(registry):
    out, err, _ = await run(
        registry, [{"payload": "a: [1, 2"}, {"payload": "!!python/object/apply:os.system ['x']"}]
    )
    assert out == []
    assert len(err) == 2
    assert "expected ',' or ']'" in err[0]["error"]["message"]
    assert "could not determine a constructor" in err[1]["error"]["message"]


async def test_other_types_are_dropped_with_a_warning_and_missing_property_passes(registry):
    out, err, logs = await run(
        registry, [{"payload": 5}, {"payload": b"a: 1"}, {"topic": "x"}, {"data": "k: v"}]
    )
    assert [m.get("topic") for m in out] == ["x", None]
    assert err == []
    warnings = [entry["msg"] for entry in logs if entry["level"] == "warn"]
    assert warnings == ["Ignored unsupported payload type", "Ignored non-object payload"]
    out, _, _ = await run(registry, [{"data": {"k": "v"}}], property="data")
    assert out[0]["data"] == "k: v\n"


def test_layout_matches_js_yaml():
    # tests/fixtures/js_yaml_dumps.json: [value, yaml.dump(value)] pairs written by the js-yaml in Node-RED 4.1
    cases = json.loads((Path(__file__).parent / "fixtures" / "js_yaml_dumps.json").read_text())
    for value, expected in cases:
        assert dump(value) == expected


def test_yaml_1_2_booleans_and_exponents_as_js_yaml_reads_them():
    assert load("a: yes\nb: off\nc: True\nd: 1e3\ne: 2.5E-1") == {
        "a": "yes",
        "b": "off",
        "c": True,
        "d": 1000,
        "e": 0.25,
    }


def test_non_finite_numbers_and_dates():
    assert dump({"a": math.inf, "b": -math.inf}) == "a: .inf\nb: -.inf\n"
    assert dump([1.5, 2.0, 1e21, 1.5e-7]) == "- 1.5\n- 2\n- 1e+21\n- 1.5e-7\n"
    assert load("d: 2024-01-02")["d"].isoformat() == "2024-01-02"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.lists(st.sampled_from(["word", "a", "", " ", "longerword" * 5]), max_size=40).map(" ".join),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_dump_then_load_gives_the_value_back(value):
    assert load(dump(value)) == value
