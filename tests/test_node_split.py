"""split node: strings (separator, escapes, fixed length, byte separator, stream), arrays (chunks), objects
(keys, addname), buffers, nested parts, other properties, done/complete, config errors, and the split→join
round trip as a hypothesis property."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry
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


def split(wires=(("o",),), **props):
    """A split node with Node-RED's stored defaults."""
    base = {
        "splt": "\\n",
        "spltType": "str",
        "arraySplt": 1,
        "arraySpltType": "len",
        "stream": False,
        "addname": "",
        "property": "payload",
    }
    base.update(props)
    return node("s", "split", wires, **base)


def flow(**props):
    return [TAB, split(**props), node("o", "junction", [[]])]


async def outputs(flows, registry, *msgs):
    async with FlowTester(flows, registry) as t:
        for m in msgs:
            t.inject("s", m)
        await t.idle()
        return t.outputs("s")[0], t


# ----- strings ---------------------------------------------------------------------------------------------
async def test_string_splits_on_newline_by_default_with_parts(registry):
    out, _ = await outputs(flow(), registry, {"payload": "Da\nve\n \nCJ", "topic": "t", "_msgid": "orig"})
    assert [m["payload"] for m in out] == ["Da", "ve", " ", "CJ"]
    ids = {m["parts"]["id"] for m in out}
    assert len(ids) == 1 and len(ids.pop()) == 16
    for i, m in enumerate(out):
        assert m["topic"] == "t"
        assert {k: v for k, v in m["parts"].items() if k != "id"} == {
            "type": "string",
            "ch": "\n",
            "index": i,
            "count": 4,
        }
    msgids = [m["_msgid"] for m in out]
    assert "orig" not in msgids and len(set(msgids)) == 4  # each part is a new message


async def test_stored_escapes_become_control_characters(registry):
    out, _ = await outputs(flow(splt="\\t"), registry, {"payload": "a\tb\\tc"})
    assert [m["payload"] for m in out] == ["a", "b\\tc"]
    assert out[0]["parts"]["ch"] == "\t"
    out, _ = await outputs(flow(splt="\\r\\n"), registry, {"payload": "x\r\ny"})
    assert [m["payload"] for m in out] == ["x", "y"]


async def test_empty_separator_falls_back_to_newline(registry):
    out, _ = await outputs(flow(splt=""), registry, {"payload": "a\nb"})
    assert [m["payload"] for m in out] == ["a", "b"]


async def test_leading_and_trailing_separators_give_empty_parts(registry):
    out, _ = await outputs(flow(splt=","), registry, {"payload": ",a,"})
    assert [m["payload"] for m in out] == ["", "a", ""]
    assert [m["parts"]["count"] for m in out] == [3, 3, 3]


async def test_fixed_length_split_rounds_the_count_up(registry):
    out, _ = await outputs(flow(splt="3", spltType="len"), registry, {"payload": "abcdefgh"})
    assert [m["payload"] for m in out] == ["abc", "def", "gh"]
    assert out[0]["parts"] | {"id": None} == {
        "id": None,
        "type": "string",
        "ch": "",
        "len": 3,
        "index": 0,
        "count": 3,
    }


async def test_byte_separator_splits_strings_and_passes_the_array_as_ch(registry):
    out, _ = await outputs(flow(splt="[44,45]", spltType="bin"), registry, {"payload": "a,-b,-c"})
    assert [m["payload"] for m in out] == ["a", "b", "c"]
    assert out[0]["parts"]["ch"] == [44, 45]


async def test_stream_mode_carries_the_remainder_and_keeps_counting(registry):
    out, _ = await outputs(
        flow(splt=",", stream=True), registry, {"payload": "a,b,c"}, {"payload": "d,e"}, {"payload": ",f,"}
    )
    assert [m["payload"] for m in out] == ["a", "b", "cd", "e", "f"]
    assert [m["parts"]["index"] for m in out] == [0, 1, 2, 3, 4]
    assert all("count" not in m["parts"] for m in out)


async def test_stream_mode_fixed_length_sends_whole_chunks_only(registry):
    out, _ = await outputs(
        flow(splt="2", spltType="len", stream=True),
        registry,
        {"payload": "a"},
        {"payload": "b"},
        {"payload": "cde"},
    )
    assert [m["payload"] for m in out] == ["ab", "cd"]
    assert [m["parts"]["index"] for m in out] == [0, 1]


# ----- arrays and objects ----------------------------------------------------------------------------------
async def test_array_splits_into_elements(registry):
    out, _ = await outputs(flow(), registry, {"payload": [1, {"a": 2}, [3]]})
    assert [m["payload"] for m in out] == [1, {"a": 2}, [3]]
    assert [
        (m["parts"]["type"], m["parts"]["index"], m["parts"]["count"], m["parts"]["len"]) for m in out
    ] == [("array", 0, 3, 1), ("array", 1, 3, 1), ("array", 2, 3, 1)]


async def test_array_splits_into_chunks(registry):
    out, _ = await outputs(flow(arraySplt="2"), registry, {"payload": [1, 2, 3, 4, 5]})
    assert [m["payload"] for m in out] == [[1, 2], [3, 4], [5]]
    assert out[0]["parts"]["len"] == 2 and out[0]["parts"]["count"] == 3


async def test_empty_array_and_object_send_nothing(registry):
    out, _ = await outputs(flow(), registry, {"payload": []}, {"payload": {}})
    assert out == []


async def test_object_splits_into_one_message_per_key(registry):
    out, _ = await outputs(flow(), registry, {"payload": {"a": 1, "b": "2", "c": True}, "topic": "foo"})
    assert [(m["payload"], m["parts"]["key"], m["parts"]["index"], m["topic"]) for m in out] == [
        (1, "a", 0, "foo"),
        ("2", "b", 1, "foo"),
        (True, "c", 2, "foo"),
    ]
    assert {m["parts"]["type"] for m in out} == {"object"} and {m["parts"]["count"] for m in out} == {3}


async def test_addname_copies_the_key_to_a_property(registry):
    out, _ = await outputs(flow(addname="topic"), registry, {"payload": {"a": 1, "b": 2}, "topic": "foo"})
    assert [(m["topic"], m["payload"]) for m in out] == [("a", 1), ("b", 2)]
    out, _ = await outputs(flow(addname="meta.key"), registry, {"payload": {"a": 1}})
    assert out[0]["meta"] == {"key": "a"}


async def test_parts_are_independent_clones(registry):
    out, _ = await outputs(flow(), registry, {"payload": [1, 2], "shared": {"x": 1}})
    out[0]["shared"]["x"] = 99
    out[0]["parts"]["index"] = 42
    assert out[1]["shared"] == {"x": 1} and out[1]["parts"]["index"] == 1


# ----- buffers ---------------------------------------------------------------------------------------------
async def test_buffer_splits_on_string_separator(registry):
    out, _ = await outputs(flow(splt=","), registry, {"payload": b"12,34,5"})
    assert [m["payload"] for m in out] == [b"12", b"34", b"5"]
    assert [m["parts"]["count"] for m in out] == [3, 3, 3]
    assert {m["parts"]["type"] for m in out} == {"buffer"} and out[0]["parts"]["ch"] == ","


async def test_buffer_splits_on_bytes_in_stream_mode(registry):
    out, _ = await outputs(
        flow(splt="[52]", spltType="bin", stream=True),
        registry,
        {"payload": b"123412"},
        {"payload": bytearray(b"341234")},
    )
    assert [bytes(m["payload"]) for m in out] == [b"123", b"123", b"123"]
    assert [m["parts"]["index"] for m in out] == [0, 1, 2]
    assert isinstance(out[1]["payload"], bytearray)  # the type of the buffer that arrived


async def test_buffer_splits_into_fixed_lengths(registry):
    out, _ = await outputs(flow(splt="2", spltType="len"), registry, {"payload": b"12345"})
    assert [m["payload"] for m in out] == [b"12", b"34", b"5"]
    assert out[0]["parts"]["len"] == 2 and out[0]["parts"]["count"] == 3


async def test_buffer_ending_in_the_separator_sends_no_empty_last_part_as_node_red(registry):
    out, _ = await outputs(flow(splt=","), registry, {"payload": b"1,2,"})
    assert [m["payload"] for m in out] == [b"1", b"2"]
    assert [m["parts"]["count"] for m in out] == [3, 3]  # Node-RED counts the empty tail it never sends


async def test_buffer_split_does_not_disturb_the_next_string_split(registry):
    out, _ = await outputs(flow(), registry, {"payload": b"a\nb"}, {"payload": "x\ny"})
    assert [m["parts"]["index"] for m in out] == [0, 1, 0, 1]


# ----- other properties, nesting, ignored messages ---------------------------------------------------------
async def test_nested_split_pushes_the_previous_parts(registry):
    outer = {"id": "outer", "type": "array", "index": 1, "count": 2}
    out, _ = await outputs(flow(), registry, {"payload": "a\nb", "parts": outer})
    assert [m["parts"]["parts"] for m in out] == [outer, outer]
    assert out[0]["parts"]["id"] != "outer"


async def test_another_property_is_split_and_named_in_parts(registry):
    out, _ = await outputs(
        flow(property="data.list"), registry, {"data": {"list": [1, 2]}, "payload": "keep"}
    )
    assert [m["data"]["list"] for m in out] == [1, 2]
    assert [m["payload"] for m in out] == ["keep", "keep"]
    assert out[0]["parts"]["property"] == "data.list"


async def test_missing_property_and_unsplittable_values_send_nothing(registry):
    out, _ = await outputs(flow(property="nothere"), registry, {"payload": "a\nb"})
    assert out == []
    out, _ = await outputs(flow(), registry, {"payload": 5}, {"payload": True})
    assert out == []


async def test_null_payload_is_an_error_for_catch(registry):
    flows = flow() + [node("c", "catch", [["co"]], scope=None), node("co", "junction", [[]])]
    async with FlowTester(flows, registry) as t:
        t.inject("s", {"payload": None})
        await t.idle()
        assert t.outputs("s")[0] == []
        assert "null" in t.outputs("co")[0][0]["error"]["message"]


async def test_done_fires_once_per_input_and_stream_waits_for_the_remainder(registry):
    flows = flow(splt=",", stream=True) + [
        node("c", "complete", [["co"]], scope=["s"]),
        node("co", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("s", {"payload": "a,b"})
        await t.idle()
        assert len(t.outputs("co")[0]) == 1
    flows = flow(splt="2", spltType="len", stream=True) + [
        node("c", "complete", [["co"]], scope=["s"]),
        node("co", "junction", [[]]),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("s", {"payload": "a"})
        await t.idle()
        assert t.outputs("co")[0] == []  # held until the remainder is sent
        t.inject("s", {"payload": "b"})
        await t.idle()
        assert len(t.outputs("co")[0]) == 2


# ----- config errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "props, needle",
    [
        ({"splt": "0", "spltType": "len"}, "split length"),
        ({"splt": "abc", "spltType": "len"}, "split length"),
        ({"splt": "1", "spltType": "bin"}, "splt"),
        ({"splt": "[1,", "spltType": "bin"}, "splt"),
        ({"splt": "[]", "spltType": "bin"}, "empty"),
        ({"arraySplt": 0}, "array split length"),
        ({"arraySplt": ""}, "array split length"),
        ({"spltType": "regex"}, "spltType"),
    ],
)
async def test_bad_config_refuses_the_deploy(registry, props, needle):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(flow(**props), registry):
            pass
    assert needle in str(info.value)


# ----- property: split then join restores the payload ---------------------------------------------------
def make_registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in default_registry().types():
        reg.register(cls, default_registry().origin(cls.type))
    return reg


REGISTRY = make_registry()


def roundtrip(payload, **split_props):
    flows = [
        TAB,
        split(wires=[["j"]], **split_props),
        node("j", "join", [["o"]], mode="auto"),
        node("o", "junction", [[]]),
    ]

    async def scenario():
        async with FlowTester(flows, REGISTRY) as t:
            t.inject("s", {"payload": payload, "topic": "keep"})
            await t.idle()
            return t.outputs("j")[0]

    return asyncio.run(scenario())


texts = st.text(alphabet=st.sampled_from("ab,;\n\t xyz"), max_size=40)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(text=texts, sep=st.sampled_from([",", ";", "\\n", "\\t", "ab", " "]))
def test_property_split_join_restores_strings(text, sep):
    out = roundtrip(text, splt=sep)
    assert len(out) == 1
    assert out[0]["payload"] == text and out[0]["topic"] == "keep" and "parts" not in out[0]


@SETTINGS
@given(text=st.text(min_size=1, max_size=40), size=st.integers(1, 7))
def test_property_split_join_restores_strings_split_by_length(text, size):
    out = roundtrip(text, splt=str(size), spltType="len")
    assert [m["payload"] for m in out] == [text]


@SETTINGS
@given(items=st.lists(JSON_VALUES, min_size=1, max_size=12), size=st.integers(1, 5))
def test_property_split_join_restores_arrays_for_any_chunk_size(items, size):
    out = roundtrip(items, arraySplt=size)
    assert [m["payload"] for m in out] == [items]


@SETTINGS
@given(obj=st.dictionaries(st.text(min_size=1, max_size=6), JSON_VALUES, min_size=1, max_size=8))
def test_property_split_join_restores_objects(obj):
    out = roundtrip(obj)
    assert [m["payload"] for m in out] == [obj]
    assert list(out[0]["payload"]) == list(obj)  # key order kept


@SETTINGS
@given(data=st.binary(min_size=1, max_size=40).filter(lambda b: not b.endswith(b",")))
def test_property_split_join_restores_buffers(data):
    out = roundtrip(data, splt=",")
    assert [m["payload"] for m in out] == [data]


@SETTINGS
@given(rows=st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=4), min_size=1, max_size=5))
def test_property_nested_split_join_restores_nested_arrays(rows):
    flows = [
        TAB,
        split(wires=[["s2"]]),
        node("s2", "split", [["j1"]]),
        node("j1", "join", [["j2"]], mode="auto"),
        node("j2", "join", [["o"]], mode="auto"),
        node("o", "junction", [[]]),
    ]

    async def scenario():
        async with FlowTester(flows, REGISTRY) as t:
            t.inject("s", {"payload": rows})
            await t.idle()
            return t.outputs("j2")[0]

    out = asyncio.run(scenario())
    assert [m["payload"] for m in out] == [rows] and "parts" not in out[0]
