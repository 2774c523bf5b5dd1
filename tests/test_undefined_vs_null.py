"""JavaScript's undefined and null stay apart wherever a JSONata or JavaScript value becomes a message property:
undefined leaves the property absent (as Node-RED's setMessageProperty deletes it), null is kept as null.

change, switch and join/reduce have their own tests in their modules; here the function node's return values
and what a template then renders from them (mustache looks an absent name up in the enclosing context).
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.api import UNDEFINED, evaluate_jsonata
from sofiaflow.runtime.flows.registry import default_registry
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "f"}


def node(id_, type_, wires, **props):
    return {"id": id_, "type": type_, "z": "t1", "wires": wires, **props}


async def test_a_functions_undefined_properties_are_absent_and_its_nulls_kept(registry):
    body = "msg.payload = undefined; msg.a = {b: undefined, c: null}; msg.d = null; return msg;"
    flows = [TAB, node("f", "function", [[]], func=body, outputs=1)]
    async with FlowTester(flows, registry) as t:
        t.inject("f", {"payload": 1})
        await t.idle()
        out = t.outputs("f")[0][0]
    assert "payload" not in out
    assert out["a"] == {"c": None} and out["d"] is None


async def test_a_template_falls_back_to_the_enclosing_value_for_an_undefined_name_only(registry):
    items = '{"items": [{"label": "a", "name": nothing}, {"label": "b", "name": null}]}'
    change = node(
        "c",
        "change",
        [["tpl"]],
        rules=[{"t": "set", "p": "payload", "pt": "msg", "to": items, "tot": "jsonata"}],
    )
    template = node(
        "tpl",
        "template",
        [[]],
        field="payload",
        fieldType="msg",
        syntax="mustache",
        output="str",
        template="{{#payload.items}}{{label}}={{name}};{{/payload.items}}",
    )
    async with FlowTester([TAB, change, template], registry) as t:
        t.inject("c", {"name": "outer"})
        await t.idle()
        assert t.payloads("tpl") == ["a=outer;b=;"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


def _only_plain(value):
    if isinstance(value, list):
        return type(value) is list and all(_only_plain(v) for v in value)
    if isinstance(value, dict):
        return type(value) is dict and all(_only_plain(v) for v in value.values())
    return value is None or isinstance(value, (bool, int, float, str))


@given(json_values)
def test_jsonata_gives_back_present_values_as_plain_python_with_their_nulls(value):
    data = {"payload": value}
    assert evaluate_jsonata("payload", data, undefined=UNDEFINED) == value
    copied = evaluate_jsonata('{"v": [payload, payload]}', data, undefined=UNDEFINED)
    assert _only_plain(copied)
    assert evaluate_jsonata("payload.nothing.here", {"payload": {}}, undefined=UNDEFINED) is UNDEFINED
    assert evaluate_jsonata("payload.nothing.here", {"payload": {}}) is None


# ----- inject: a property whose value is undefined is not set ----------------------------------------------------


def inject(props):
    return node("i", "inject", [[]], props=props, repeat="", crontab="", once=False, onceDelay=0.1)


async def test_inject_leaves_out_properties_whose_value_is_undefined(registry, monkeypatch):
    monkeypatch.delenv("SOFIAFLOW_NOT_SET_ANYWHERE", raising=False)
    plan = [
        {"p": "payload", "v": "nothing.here", "vt": "jsonata"},
        {"p": "topic", "v": "null", "vt": "jsonata"},
        {"p": "deep.gone", "v": "$lookup({}, 'x')", "vt": "jsonata"},
        {"p": "fromflow", "v": "unset", "vt": "flow"},
        {"p": "fromglobal", "v": "unset", "vt": "global"},
        {"p": "set", "v": "kept", "vt": "flow"},
        {"p": "env", "v": "SOFIAFLOW_NOT_SET_ANYWHERE", "vt": "env"},
        {"p": "n", "v": "1 + 1", "vt": "jsonata"},
    ]
    async with FlowTester([TAB, inject(plan)], registry) as t:
        t.node("i").flow.set("kept", "yes")
        t.node("i").trigger()
        await t.idle()
        [out] = t.outputs("i")[0]
    assert "payload" not in out and "fromflow" not in out and "fromglobal" not in out
    assert out["deep"] == {}  # the parent is made (Node-RED's createMissing), the property left out
    assert out["topic"] is None and out["set"] == "yes" and out["n"] == 2
    assert out["env"] == ""  # Node-RED's env property gives "" for a variable that is not set


async def test_inject_button_props_with_an_undefined_value_remove_what_the_body_set(registry):
    plan = [{"p": "payload", "v": "1", "vt": "num"}]
    async with FlowTester([TAB, inject(plan)], registry) as t:
        t.node("i").trigger(
            {"__user_inject_props__": [{"p": "payload", "v": "nothing", "vt": "jsonata"}], "payload": "body"}
        )
        await t.idle()
        [out] = t.outputs("i")[0]
    assert "payload" not in out


# ----- debug: an undefined value shows as undefined, not null ------------------------------------------------------


def debug(**cfg):
    base = {
        "active": True,
        "tosidebar": True,
        "console": False,
        "tostatus": True,
        "complete": "payload",
        "targetType": "msg",
        "statusVal": "",
        "statusType": "auto",
    }
    return node("d", "debug", [], **{**base, **cfg})


async def test_debug_shows_an_undefined_jsonata_value_as_undefined_and_null_as_null(registry):
    async with FlowTester([TAB, debug(complete="payload.nothing", targetType="jsonata")], registry) as t:
        t.inject("d", {"payload": {}})
        await t.idle()
        first_status = t.node("d").last_status["text"]
        t.inject("d", {"payload": {"nothing": None}})
        await t.idle()
        second_status = t.node("d").last_status["text"]
        events = [(e["msg"], e["format"]) for e in t.debug]
    assert events == [("(undefined)", "undefined"), ("(undefined)", "null")]
    assert (first_status, second_status) == ("undefined", "null")


async def test_debug_status_expression_giving_undefined_shows_undefined(registry):
    flows = [TAB, debug(tosidebar=False, statusType="jsonata", statusVal="payload.nothing")]
    async with FlowTester(flows, registry) as t:
        t.inject("d", {"payload": 1})
        await t.idle()
        assert t.node("d").last_status["text"] == "undefined"


async def test_debug_keeps_undefined_inside_a_function_result_apart_from_null(registry):
    body = "msg.payload = [undefined, null, {a: undefined, b: null}]; return msg;"
    flows = [TAB, node("f", "function", [["d"]], func=body, outputs=1), debug()]
    async with FlowTester(flows, registry) as t:
        t.inject("f", {"payload": 1})
        await t.idle()
        [event] = t.debug
    # JSON keeps no undefined: the array's slot is null on the way out of the function; the key is left out
    assert json.loads(event["msg"]) == [None, None, {"b": None}] and event["format"] == "array[3]"


# ----- sort: Node-RED's comparison with undefined keys -------------------------------------------------------------


def sort_node(id_="s", **cfg):
    base = {
        "order": "ascending",
        "as_num": False,
        "target": "payload",
        "targetType": "msg",
        "msgKey": "k",
        "msgKeyType": "jsonata",
        "seqKey": "payload",
        "seqKeyType": "msg",
    }
    return node(id_, "sort", [[]], **{**base, **cfg})


def node_red_sort(keys: list, direction: int = 1, as_num: bool = False) -> list[int]:
    """The order (indices) Node-RED's comparator gives under a TimSort, with undefined as JavaScript compares it:
    never equal to a number or string, never greater (so it always sorts as "less" in either direction)."""
    import functools
    import math

    missing = object()

    def num(v):
        if v is missing:
            return math.nan
        return 0.0 if v is None else float(v)

    def compare(i, j):
        x, y = keys[i], keys[j]
        if as_num:
            x, y = num(x), num(y)
            if x == y:
                return 0
            return direction if x > y else -direction
        if x is y or (x is not missing and y is not missing and x == y and type(x) is type(y)):
            return 0
        if x is missing or y is missing:
            return -direction
        if isinstance(x, str) and isinstance(y, str):
            return direction if x > y else -direction
        return direction if num(x) > num(y) else -direction

    keys = [missing if k is UNDEFINED else k for k in keys]
    return sorted(range(len(keys)), key=functools.cmp_to_key(compare))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from([UNDEFINED, None, 0, 1, 2, 3]), min_size=0, max_size=12),
    st.sampled_from(["ascending", "descending"]),
    st.booleans(),
)
def test_sort_by_a_jsonata_key_orders_undefined_keys_as_node_red(keys, order, as_num):
    items = [{"i": i} if k is UNDEFINED else {"i": i, "k": k} for i, k in enumerate(keys)]

    async def run():
        async with FlowTester([TAB, sort_node(order=order, as_num=as_num)], default_registry()) as t:
            t.inject("s", {"payload": items})
            await t.idle()
            return t.outputs("s")[0]

    [out] = asyncio.run(run())
    want = node_red_sort(keys, 1 if order == "ascending" else -1, as_num)
    assert [item["i"] for item in out["payload"]] == want


async def test_sort_of_a_sequence_by_a_jsonata_key_puts_undefined_keys_where_node_red_does(registry):
    """Messages of a sequence whose key expression gives nothing: `undefined` is never greater and never equal."""
    keys = [2, UNDEFINED, 1, None, UNDEFINED, 0]
    async with FlowTester(
        [TAB, sort_node(targetType="seq", seqKey="payload.k", seqKeyType="jsonata")], registry
    ) as t:
        for i, k in enumerate(keys):
            payload = {"i": i} if k is UNDEFINED else {"i": i, "k": k}
            t.inject("s", {"payload": payload, "parts": {"id": "p", "index": i, "count": len(keys)}})
        await t.idle()
        order = [m["payload"]["i"] for m in t.outputs("s")[0]]
    assert order == node_red_sort(keys)
    assert order != node_red_sort([None if k is UNDEFINED else k for k in keys])  # null would sort elsewhere
