"""debug node: sidebar events shaped as Node-RED's /comms `debug` topic, console log and node status."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.common.debug import UNDEFINED, encode_debug
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


def debug(id_="d", **cfg):
    base = {
        "active": True,
        "tosidebar": True,
        "console": False,
        "tostatus": False,
        "complete": "payload",
        "targetType": "msg",
        "statusVal": "",
        "statusType": "auto",
    }
    base.update(cfg)
    return node(id_, "debug", [], **base)


async def run(registry, msgs, *nodes, virtual_time=False):
    async with FlowTester([TAB, *nodes], registry, virtual_time=virtual_time) as t:
        for m in msgs:
            t.inject("d", m)
        await t.idle()
        return t


async def test_property_event_has_node_reds_shape_and_key_order(registry):
    # as fixtures/nodered-admin-api/comms-events.jsonl: {"id","z","path","name","topic","property","msg","format"}
    t = await run(registry, [{"payload": 15, "topic": "burst"}, {"payload": 70}], debug(name="payload"))
    first, second = t.debug
    assert list(first) == ["id", "z", "path", "name", "topic", "property", "msg", "format"]
    assert first == {
        "id": "d",
        "z": "t1",
        "path": "t1",
        "name": "payload",
        "topic": "burst",
        "property": "payload",
        "msg": "15",
        "format": "number",
    }
    assert "topic" not in second  # undefined topic is left out, as JSON.stringify does


async def test_complete_message_is_an_object_without_property(registry):
    t = await run(
        registry,
        [{"_msgid": "e092cecb96825844", "payload": 15, "topic": "sample", "ratio": 2.0}],
        debug(name="via link", complete="true", targetType="full"),
    )
    event = t.debug[0]
    assert "property" not in event
    assert event["format"] == "Object"
    assert event["msg"] == '{"_msgid":"e092cecb96825844","payload":15,"topic":"sample","ratio":2}'


@pytest.mark.parametrize(
    ("value", "msg", "fmt"),
    [
        ("hello", "hello", "string[5]"),
        ("é😀", "é😀", "string[3]"),  # JS counts UTF-16 units
        ([1, "a"], '[1,"a"]', "array[2]"),
        (b"\x01\xff\x10", "01ff10", "buffer[3]"),
        (bytearray(b"ab"), "6162", "buffer[2]"),
        (True, "true", "boolean"),
        (None, "(undefined)", "null"),
        (UNDEFINED, "(undefined)", "undefined"),
        (1.5, "1.5", "number"),
        (7.0, "7", "number"),
        (float("nan"), "NaN", "number"),
        (
            {"b": b"\x01", "n": float("inf"), "f": 3.0},
            '{"b":{"type":"Buffer","data":[1],"__enc__":true,"length":1},'
            '"n":{"__enc__":true,"type":"number","data":"Infinity"},"f":3}',
            "Object",
        ),
        (ValueError("bad"), '{"name":"ValueError","message":"bad"}', "error"),
    ],
)
def test_encode_object(value, msg, fmt):
    assert encode_debug(value) == (msg, fmt)


def test_long_values_are_cut_at_debug_max_length():
    text, fmt = encode_debug("x" * 1500)
    assert fmt == "string[1500]" and text == "x" * 1000 + "..."
    text, fmt = encode_debug({"s": "y" * 1001, "l": list(range(1002))})
    data = json.loads(text)
    assert data["s"] == "y" * 1000 + "..."
    assert data["l"] == {"__enc__": True, "type": "array", "data": list(range(1000)), "length": 1002}
    text, fmt = encode_debug(bytes(600))
    assert fmt == "buffer[600]" and len(text) == 1000
    cyclic: dict = {"a": 1}
    cyclic["self"] = cyclic
    assert json.loads(encode_debug(cyclic)[0]) == {"a": 1, "self": "[Circular ~]"}


def test_live_objects_are_internal():
    text, _ = encode_debug({"res": {"_res": object(), "send": print}, "socket": object()})
    assert json.loads(text) == {
        "res": {"_res": {"__enc__": True, "type": "internal"}, "send": {"__enc__": True, "type": "function"}},
        "socket": "[internal]",
    }


async def test_missing_property_is_undefined(registry):
    t = await run(registry, [{"payload": 1}], debug(complete="nope.deeper"))
    assert (t.debug[0]["property"], t.debug[0]["msg"], t.debug[0]["format"]) == (
        "nope.deeper",
        "(undefined)",
        "undefined",
    )


async def test_complete_false_means_payload(registry):
    t = await run(registry, [{"payload": "p", "other": 1}], debug(complete="false"))
    assert t.debug[0]["property"] == "payload" and t.debug[0]["msg"] == "p"


async def test_jsonata_target(registry):
    t = await run(registry, [{"payload": 15}], debug(complete="payload * 2", targetType="jsonata"))
    assert t.debug[0]["msg"] == "30" and t.debug[0]["format"] == "number"
    assert "property" not in t.debug[0]


async def test_inactive_and_no_sidebar_publish_nothing_and_set_active_toggles(registry):
    async with FlowTester([TAB, debug(active=False), debug("d2", tosidebar=False)], registry) as t:
        t.inject("d", {"payload": 1})
        t.inject("d2", {"payload": 1})
        await t.idle()
        assert t.debug == []
        t.node("d").set_active(True)
        t.inject("d", {"payload": 2})
        await t.idle()
        assert [e["msg"] for e in t.debug] == ["2"]
        t.node("d").set_active(False)
        t.inject("d", {"payload": 3})
        await t.idle()
        assert len(t.debug) == 1


async def test_console_logs(registry):
    t = await run(
        registry, [{"payload": "line1\nline2"}, {"payload": {"a": 1}}], debug(console=True, tosidebar=False)
    )
    texts = [e["msg"] for e in t.logs if e["level"] == "info" and e["id"] == "d"]
    assert texts == ["\nline1\nline2", "\n{ a: 1 }"]
    assert t.debug == []


async def test_status_shows_the_value_cut_at_32_characters(registry):
    async with FlowTester([TAB, debug(tostatus=True, tosidebar=False)], registry) as t:
        t.inject("d", {"payload": "a" * 40})
        await t.idle()
        assert t.node("d").last_status == {"fill": "grey", "shape": "dot", "text": "a" * 32 + "..."}
        t.inject("d", {"payload": {"k": [1, 2]}})
        await t.idle()
        assert t.node("d").last_status["text"] == "{ k: [ 1, 2 ] }"
        t.inject("d", {"payload": 1, "error": {"message": "boom"}})
        await t.idle()
        assert t.node("d").last_status == {"fill": "red", "shape": "dot", "text": "boom"}


async def test_status_from_msg_property_and_jsonata(registry):
    async with FlowTester(
        [
            TAB,
            debug(tostatus=True, statusType="msg", statusVal="level"),
            debug("d2", tostatus=True, statusType="jsonata", statusVal="'n=' & payload"),
        ],
        registry,
    ) as t:
        t.inject("d", {"payload": 1, "level": 42})
        t.inject("d2", {"payload": 5})
        await t.idle()
        assert t.node("d").last_status["text"] == "42"
        assert t.node("d2").last_status["text"] == "n=5"


async def test_status_counter_debounces(registry):
    async with FlowTester(
        [TAB, debug(tostatus=True, statusType="counter")], registry, virtual_time=True
    ) as t:
        statuses: list = []
        t.events.subscribe("status/d", lambda _t, s: statuses.append(s.get("text")))
        for i in range(5):
            t.inject("d", {"payload": i})
        await t.idle()
        assert statuses == ["1"]  # the first after a quiet spell shows at once; the burst is debounced
        await t.advance(0.3)
        assert statuses == ["1", "5"]


async def test_own_status_coming_back_is_ignored(registry):
    t = await run(registry, [{"status": {"text": "x", "source": {"id": "d"}}}, {"payload": 1}], debug())
    assert [e["msg"] for e in t.debug] == ["1"]


async def test_subflow_instance_path_and_alias(registry):
    flows = [
        TAB,
        {
            "id": "sf",
            "type": "subflow",
            "name": "S",
            "in": [{"x": 0, "y": 0, "wires": [{"id": "dd"}]}],
            "out": [],
            "env": [],
        },
        debug("dd", z="sf", name="inner"),
        node("inst", "subflow:sf", []),
    ]
    async with FlowTester(flows, registry) as t:
        t.inject("inst", {"payload": 1})
        await t.idle()
        event = t.debug[0]
        assert (event["id"], event["z"], event["_alias"], event["path"]) == (
            "inst-dd",
            "inst",
            "dd",
            "t1/inst",
        )


async def test_bad_jsonata_refuses_deploy(registry):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester([TAB, debug(complete="payload +", targetType="jsonata")], registry):
            pass
    assert "Invalid JSONata expression" in info.value.problems[0].message


async def test_bad_status_type_refuses_deploy(registry):
    with pytest.raises(FlowValidationError):
        async with FlowTester([TAB, debug(tostatus=True, statusType="sometimes")], registry):
            pass


json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**9), 10**9) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        # not `_req`/`_res`: Node-RED's encoder shows those as internal, whatever they hold
        | st.dictionaries(st.text(max_size=8).filter(lambda k: k not in ("_req", "_res")), inner, max_size=4)
    ),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(json_like)
def test_encoded_json_values_decode_back(value):
    text, fmt = encode_debug(value)
    if isinstance(value, dict):
        assert fmt == "Object" and json.loads(text) == value
    elif isinstance(value, list):
        assert fmt == f"array[{len(value)}]" and json.loads(text) == value
    elif isinstance(value, str):
        assert fmt.startswith("string[") and text == value
    elif value is None:
        assert (text, fmt) == ("(undefined)", "null")
    elif isinstance(value, bool):
        assert fmt == "boolean"
    else:
        assert fmt == "number" and int(text) == value


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_keep_their_value(value):
    text, fmt = encode_debug(value)
    assert fmt == "number" and float(text) == value
