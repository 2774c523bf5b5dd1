"""json node: JSON string <-> object, as Node-RED's 70-JSON.js (messages as V8 words them)."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.jsvalues import js_json_parse, js_json_stringify
from sofiaflow.nodes.jsvalues import js_number_string as js_number
from sofiaflow.runtime.api import NodeError
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": props.pop("z", "t1"),
        "name": props.pop("name", ""),
        "x": 100,
        "y": 100,
        "wires": [list(w) for w in wires],
        **props,
    }


def flow(**cfg):
    cfg.setdefault("property", "payload")
    cfg.setdefault("action", "")
    cfg.setdefault("pretty", False)
    return [
        TAB,
        node("j", "json", [["o"]], **cfg),
        node("o", "junction", [[]]),
        node("c", "catch", [["e"]], scope=None, uncaught=False),
        node("e", "junction", [[]]),
    ]


async def run(registry, msgs, **cfg):
    async with FlowTester(flow(**cfg), registry) as t:
        for m in msgs:
            t.inject("j", m)
        await t.idle()
        return t.outputs("o")[0], t.outputs("e")[0], t.logs


async def test_string_becomes_object_and_object_becomes_string(registry):
    out, err, _ = await run(
        registry, [{"payload": '{"a":1,"b":[true,null,"x"]}'}, {"payload": {"a": 1.0, "b": [1.5, "é"]}}]
    )
    assert out[0]["payload"] == {"a": 1, "b": [True, None, "x"]}
    assert out[1]["payload"] == '{"a":1,"b":[1.5,"é"]}'
    assert err == []


async def test_numbers_booleans_and_null_become_json_text(registry):
    out, _, _ = await run(registry, [{"payload": 5}, {"payload": True}, {"payload": None}, {"payload": 2.0}])
    assert [m["payload"] for m in out] == ["5", "true", "null", "2"]


async def test_pretty_uses_four_spaces(registry):
    out, _, _ = await run(registry, [{"payload": {"a": [1, 2], "b": {}}}], pretty=True)
    assert out[0]["payload"] == '{\n    "a": [\n        1,\n        2\n    ],\n    "b": {}\n}'


async def test_always_obj_and_always_str_leave_the_right_kind_alone(registry):
    out, _, _ = await run(registry, [{"payload": {"a": 1}}, {"payload": '{"a":1}'}], action="obj")
    assert [m["payload"] for m in out] == [{"a": 1}, {"a": 1}]
    out, _, _ = await run(registry, [{"payload": {"a": 1}}, {"payload": '{"a":1}'}], action="str")
    assert [m["payload"] for m in out] == ['{"a":1}', '{"a":1}']


async def test_invalid_json_goes_to_catch_with_v8_message(registry):
    # the exact text Node-RED 4.1 gave in the observed run (fixtures/nodered-admin-api/comms-events.jsonl)
    out, err, _ = await run(registry, [{"payload": "{not json", "topic": "t"}])
    assert out == []
    assert err[0]["error"]["message"] == "Expected property name or '}' in JSON at position 1"
    assert err[0]["error"]["source"] == {"id": "j", "type": "json", "name": "", "count": 1}
    assert err[0]["payload"] == "{not json"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Unexpected end of JSON input"),
        ("[1", "Expected ',' or ']' after array element in JSON at position 2"),
        ('{"a":1 "b":2}', "Expected ',' or '}' after property value in JSON at position 7"),
        ('{"a" 1}', "Expected ':' after property name in JSON at position 5"),
        ("1 2", "Unexpected non-whitespace character after JSON at position 2"),
        ("hello", "Unexpected token 'h', \"hello\" is not valid JSON"),
        ("NaN", '"NaN" is not valid JSON'),
    ],
)
def test_parse_errors_read_like_v8(text, message):
    with pytest.raises(NodeError) as info:
        js_json_parse(text)
    assert str(info.value) == message


async def test_nested_property_and_missing_property(registry):
    out, _, _ = await run(registry, [{"data": {"raw": "[1,2]"}}, {"payload": 1}], property="data.raw")
    assert out[0]["data"]["raw"] == [1, 2]
    assert out[1] == {"payload": 1, "_msgid": out[1]["_msgid"]}  # no property: passed on untouched


async def test_buffer_is_decoded_as_utf8_then_parsed(registry):
    out, err, _ = await run(
        registry, [{"payload": b'{"k":"\xc3\xa9"}'}, {"payload": bytearray(b"[1]")}, {"payload": b"\xff"}]
    )
    assert [m["payload"] for m in out] == [{"k": "é"}, [1]]
    assert "UTF-8" in err[0]["error"]["message"]


async def test_buffer_with_always_string_is_ignored_with_a_warning(registry):
    out, _, logs = await run(registry, [{"payload": b"{}"}], action="str")
    assert out == []
    assert any(e["level"] == "warn" and e["msg"] == "Ignored non-object payload" for e in logs)


async def test_nested_bytes_and_dates_stringify_like_node(registry):
    from datetime import UTC, datetime

    out, _, _ = await run(
        registry, [{"payload": {"b": b"\x01\x02", "d": datetime(2024, 1, 2, 3, 4, 5, 6000, UTC)}}]
    )
    assert json.loads(out[0]["payload"]) == {
        "b": {"type": "Buffer", "data": [1, 2]},
        "d": "2024-01-02T03:04:05.006Z",
    }


async def test_schema_valid_removes_schema(registry):
    schema = {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}
    out, err, _ = await run(
        registry, [{"payload": '{"a":1}', "schema": schema}, {"payload": {"a": 2}, "schema": schema}]
    )
    assert [m["payload"] for m in out] == [{"a": 1}, '{"a":2}']
    assert all("schema" not in m for m in out)
    assert err == []


async def test_schema_failure_sets_schema_error_and_raises(registry):
    schema = {
        "type": "object",
        "properties": {"a": {"type": "number"}},
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    out, err, _ = await run(registry, [{"payload": '{"a":"x","c":1}', "schema": schema}])
    assert out == []
    caught = err[0]
    assert caught["error"]["message"] == (
        "JSON Schema error: data/a must be number, data must have required property 'b', "
        "data must NOT have additional properties"
    )
    kinds = sorted(e["keyword"] for e in caught["schemaError"])
    assert kinds == ["additionalProperties", "required", "type"]
    typed = next(e for e in caught["schemaError"] if e["keyword"] == "type")
    assert typed == {
        "instancePath": "/a",
        "schemaPath": "#/properties/a/type",
        "keyword": "type",
        "params": {"type": "number"},
        "message": "must be number",
    }
    assert caught["payload"] == {"a": "x", "c": 1}  # parsed before validation, as Node-RED


async def test_schema_that_does_not_compile(registry):
    out, err, _ = await run(registry, [{"payload": "{}", "schema": {"type": 12}}])
    assert out == []
    assert err[0]["error"]["message"] == "JSON Schema error: failed to compile schema"


async def test_bad_action_refuses_deploy(registry):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(flow(action="xml"), registry):
            pass
    assert info.value.problems[0].node_id == "j"
    assert "action" in info.value.problems[0].message


async def test_bad_property_refuses_deploy(registry):
    with pytest.raises(FlowValidationError):
        async with FlowTester(flow(property="a..b"), registry):
            pass


def test_js_number_formats_like_javascript():
    assert [js_number(x) for x in (7.0, 0.1, 1e21, 1e-7, 0.00001, 1e16, -0.0, 2.5e-10, float("nan"))] == [
        "7",
        "0.1",
        "1e+21",
        "1e-7",
        "0.00001",
        "10000000000000000",
        "0",
        "2.5e-10",
        "NaN",
    ]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_stringify_then_parse_round_trips(value):
    text = js_json_stringify(value)
    assert js_json_parse(text) == value
    assert json.loads(text) == value


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=10), max_size=5))
def test_node_toggle_twice_gives_back_the_object(value):
    async def go():
        flows = [
            TAB,
            node("a", "json", [["b"]], property="payload", action=""),
            node("b", "json", [["o"]], property="payload", action=""),
            node("o", "junction", [[]]),
        ]
        async with FlowTester(flows) as t:
            t.inject("a", {"payload": value})
            await t.idle()
            return t.payloads("o"), t.payloads("a")

    final, middle = asyncio.run(go())
    assert final == [value]
    assert middle == [json.dumps(value, separators=(",", ":"), ensure_ascii=False)]
