"""switch node: rules, loose JS comparisons, checkall, else, prev, sequences (head/tail/index, repair)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.function.switch import UNDEFINED, js_less, js_loose_eq, js_number, js_string
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1", "env": [{"name": "LIMIT", "value": "10", "type": "num"}]}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": "t1",
        "name": "",
        "x": 100,
        "y": 100,
        "wires": [list(w) for w in wires],
        **props,
    }


def switch(rules, checkall="true", property="payload", propertyType="msg", **extra):
    return node(
        "s",
        "switch",
        [[] for _ in rules],
        property=property,
        propertyType=propertyType,
        rules=rules,
        checkall=checkall,
        outputs=len(rules),
        **extra,
    )


async def route(registry, sw, msgs, extra=()):
    """Ports each message went to: one list of port numbers per message, in order."""
    async with FlowTester([TAB, sw, *extra], registry) as t:
        sent = [t.inject("s", m) for m in msgs]
        await t.idle()
        ports = t.outputs("s")
        result = []
        for m in sent:
            result.append(
                [i for i, port in enumerate(ports) if any(o["_msgid"] == m["_msgid"] for o in port)]
            )
        return result, t


def r(t, v=None, vt=None, **kw):
    out = {"t": t, **kw}
    if v is not None:
        out["v"] = v
    if vt is not None:
        out["vt"] = vt
    return out


# ----- comparisons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "payload", "matches"),
    [
        (r("eq", "5", "num"), 5, True),
        (r("eq", "5", "num"), "5", True),  # "5" == 5
        (r("eq", "5", "str"), 5, True),
        (r("eq", "5", "num"), "5.0", True),
        (r("eq", "1", "num"), True, True),  # true == 1
        (r("eq", "abc", "str"), "abc", True),
        (r("eq", "abc", "str"), "ABC", False),
        (r("eq", "", "str"), 0, True),  # "" == 0
        (r("eq", "x", "str"), None, False),
        (r("neq", "5", "num"), "5", False),
        (r("neq", "5", "num"), 6, True),
        (r("lt", "10", "num"), 9, True),
        (r("lt", "10", "num"), "9", True),  # numeric string vs number compares as numbers
        (r("lt", "10", "str"), "9", False),  # two strings compare as strings
        (r("lt", "10", "num"), "abc", False),  # NaN
        (r("lte", "10", "num"), 10, True),
        (r("gt", "10", "num"), 10.5, True),
        (r("gt", "10", "num"), None, False),
        (r("gte", "10", "num"), 10, True),
        (r("gte", "b", "str"), "a", False),
        (r("btwn", "1", "num", v2="5", v2t="num"), 3, True),
        (r("btwn", "5", "num", v2="1", v2t="num"), 3, True),  # bounds in either order
        (r("btwn", "1", "num", v2="5", v2t="num"), 5, True),
        (r("btwn", "1", "num", v2="5", v2t="num"), 6, False),
        (r("cont", "ell", "str"), "hello", True),
        (r("cont", "ELL", "str"), "hello", False),
        (r("cont", "ELL", "str", case=True), "hello", True),
        (r("cont", "2", "str"), [1, 2], True),  # String([1,2]) = "1,2"
        (r("regex", "^h.l+o$", "str"), "hello", True),
        (r("regex", "^H", "str"), "hello", False),
        (r("regex", "^H", "str", case=True), "hello", True),
        (r("regex", "^1", "str"), 12, True),
        (r("regex", r"(?<y>\d{4})-\k<y>", "str"), "2024-2024", True),  # JS named groups
        (r("true"), True, True),
        (r("true"), "true", False),
        (r("false"), False, True),
        (r("false"), 0, False),
        (r("null"), None, True),
        (r("nnull"), None, False),
        (r("nnull"), 0, True),
        (r("empty"), "", True),
        (r("empty"), [], True),
        (r("empty"), {}, True),
        (r("empty"), 0, False),
        (r("nempty"), "x", True),
        (r("nempty"), 0, False),
        (r("nempty"), {"a": 1}, True),
        (r("hask", "a", "str"), {"a": None}, True),
        (r("hask", "b", "str"), {"a": 1}, False),
        (r("hask", "1", "str"), [5, 6], True),
        (r("hask", "a", "str"), "a", False),
    ],
)
async def test_rule_matches(registry, rule, payload, matches):
    result, _ = await route(registry, switch([rule]), [{"payload": payload}])
    assert result == [[0] if matches else []]


@pytest.mark.parametrize(
    ("kind", "yes", "no"),
    [
        ("string", "x", 1),
        ("number", 1.5, "1"),
        ("boolean", False, 0),
        ("array", [1], {"a": 1}),
        ("buffer", b"ab", "ab"),
        ("object", {"a": 1}, [1]),
        ("json", '{"a": 1}', "{a:1}"),
        ("null", None, 0),
    ],
)
async def test_istype(registry, kind, yes, no):
    result, _ = await route(registry, switch([r("istype", kind, kind)]), [{"payload": yes}, {"payload": no}])
    assert result == [[0], []]


async def test_null_and_istype_undefined_on_missing_property(registry):
    sw = switch(
        [r("null"), r("istype", "undefined", "undefined"), r("istype", "null", "null"), r("lt", "5", "num")],
        property="missing",
    )
    result, _ = await route(registry, sw, [{"payload": 1}, {"payload": 1, "missing": None}])
    # undefined < 5 is false in JavaScript, null < 5 is true
    assert result == [[0, 1], [0, 2, 3]]


async def test_a_jsonata_property_or_value_keeps_undefined_apart_from_null(registry):
    rules = [r("istype", "undefined", "undefined"), r("istype", "null", "null"), r("lt", "5", "num")]
    sw = switch(rules, property="payload.x", propertyType="jsonata")
    result, _ = await route(registry, sw, [{"payload": {}}, {"payload": {"x": None}}])
    assert result == [[0], [1, 2]]
    # -1 < undefined is false, -1 < null is true
    sw = switch([r("lt", "$sum(nothing)", "jsonata"), r("lt", "null", "jsonata")])
    result, _ = await route(registry, sw, [{"payload": -1}])
    assert result == [[1]]


# ----- checkall, else, outputs ------------------------------------------------------------------


async def test_checkall_sends_the_same_message_to_every_matching_output(registry):
    sw = switch([r("gt", "1", "num"), r("gt", "2", "num"), r("lt", "0", "num"), r("else")])
    async with FlowTester([TAB, sw], registry) as t:
        sent = t.inject("s", {"payload": 5})
        t.inject("s", {"payload": -1})
        t.inject("s", {"payload": 1})
        await t.idle()
        ports = t.outputs("s")
        assert [m["payload"] for m in ports[0]] == [5]
        assert [m["payload"] for m in ports[1]] == [5]
        assert [m["payload"] for m in ports[2]] == [-1]
        assert [m["payload"] for m in ports[3]] == [1]
        assert ports[0][0] is sent  # the first delivery is the original object (later ones are clones)


@pytest.mark.parametrize("checkall", ["false", False])
async def test_checkall_false_stops_at_first_match(registry, checkall):
    sw = switch([r("gt", "1", "num"), r("gt", "2", "num"), r("else")], checkall=checkall)
    result, _ = await route(registry, sw, [{"payload": 5}, {"payload": 0}])
    assert result == [[0], [2]]


async def test_else_only_looks_back_to_the_previous_else(registry):
    # Node-RED resets its "nothing matched" flag at every else rule
    sw = switch([r("eq", "a", "str"), r("else"), r("eq", "b", "str"), r("else")])
    result, _ = await route(registry, sw, [{"payload": "a"}, {"payload": "b"}, {"payload": "c"}])
    assert result == [[0, 3], [1, 2], [1]]


async def test_output_count_is_the_number_of_rules(registry):
    from sofiaflow.nodes.function.switch import SwitchConfig, SwitchNode

    cfg = SwitchConfig.model_validate(switch([r("true"), r("false"), r("null")]))
    assert SwitchNode.output_count(cfg) == 3


# ----- value types -------------------------------------------------------------------------------


async def test_prev_compares_with_previous_value(registry):
    sw = switch([r("neq", vt="prev", v=""), r("gt", vt="prev", v="")])
    result, _ = await route(registry, sw, [{"payload": 1}, {"payload": 1}, {"payload": 3}, {"payload": 2}])
    # first: 1 != null and 1 > null (null -> 0)
    assert result == [[0, 1], [], [0, 1], [0]]


async def test_values_from_msg_flow_global_env_and_jsonata(registry):
    sw = switch(
        [
            r("eq", "other", "msg"),
            r("gt", "limit", "flow"),
            r("eq", "#:(memory)::name", "global"),
            r("lt", "LIMIT", "env"),
            r("eq", "other * 2", "jsonata"),
        ]
    )
    async with FlowTester([TAB, sw], registry) as t:
        t.node("s").flow.set("limit", 4)
        t.node("s").global_.set("name", 8)
        t.inject("s", {"payload": 8, "other": 4})
        t.inject("s", {"payload": 3, "other": 3})
        await t.idle()
        assert [[m["payload"] for m in port] for port in t.outputs("s")] == [[3], [8], [8], [8, 3], [8]]


async def test_property_types_flow_jsonata_and_env(registry):
    flows = [
        node(
            "s1",
            "switch",
            [[]],
            property="mode",
            propertyType="flow",
            rules=[r("eq", "on", "str")],
            checkall="true",
            outputs=1,
        ),
        node(
            "s2",
            "switch",
            [[], []],
            property="payload.a + payload.b",
            propertyType="jsonata",
            rules=[r("eq", "3", "num"), r("else")],
            checkall="true",
            outputs=2,
        ),
        node(
            "s3",
            "switch",
            [[]],
            property="LIMIT",
            propertyType="env",
            rules=[r("eq", "10", "num")],
            checkall="true",
            outputs=1,
        ),
    ]
    async with FlowTester([TAB, *flows], registry) as t:
        t.node("s1").flow.set("mode", "on")
        t.inject("s1", {"payload": 1})
        t.inject("s2", {"payload": {"a": 1, "b": 2}})
        t.inject("s2", {"payload": {"a": 1, "b": 1}})
        t.inject("s3", {"payload": 1})
        await t.idle()
        assert len(t.outputs("s1")[0]) == 1
        assert [len(p) for p in t.outputs("s2")] == [1, 1]
        assert len(t.outputs("s3")[0]) == 1


async def test_jsonata_exp_rule(registry):
    sw = switch([{"t": "jsonata_exp", "v": "payload.temp > 20 and topic = 'room'", "vt": "jsonata"}])
    result, _ = await route(
        registry, sw, [{"payload": {"temp": 25}, "topic": "room"}, {"payload": {"temp": 15}, "topic": "room"}]
    )
    assert result == [[0], []]


async def test_regex_from_message_and_bad_regex_in_message_goes_to_catch(registry):
    sw = switch([r("regex", "pattern", "msg")])
    extra = [node("c", "catch", [["o"]], scope=None), node("o", "junction", [[]])]
    result, t = await route(
        registry, sw, [{"payload": "abc", "pattern": "^a"}, {"payload": "abc", "pattern": "("}], extra
    )
    assert result == [[0], []]
    assert len(t.outputs("o")[0]) == 1


# ----- sequences ---------------------------------------------------------------------------------


def seq(n, gid="g1", with_count=True):
    return [
        {
            "payload": i,
            "parts": {"id": gid, "index": i, **({"count": n} if with_count else {}), "type": "array"},
        }
        for i in range(n)
    ]


async def test_head_index_and_tail(registry):
    sw = switch([r("head", "2", "num"), r("index", "1", "num", v2="3", v2t="num"), r("tail", "2", "num")])
    result, _ = await route(registry, sw, seq(5))
    assert result == [[0], [0, 1], [1], [1, 2], [2]]


async def test_tail_waits_for_the_count_of_a_streamed_sequence(registry):
    msgs = seq(4, with_count=False)
    msgs[-1]["parts"]["count"] = 4  # only the last message knows the count
    sw = switch([r("tail", "1", "num"), r("else")])
    async with FlowTester([TAB, sw], registry) as t:
        for m in msgs[:3]:
            t.inject("s", m)
        await t.idle()
        assert t.outputs("s") == [[], []]
        t.inject("s", msgs[3])
        await t.idle()
        assert [m["payload"] for m in t.outputs("s")[0]] == [3]
        assert [m["payload"] for m in t.outputs("s")[1]] == [0, 1, 2]
        assert all(m["parts"]["count"] == 4 for m in t.outputs("s")[1])


async def test_head_without_parts_is_an_error(registry):
    extra = [node("c", "catch", [["o"]], scope=None), node("o", "junction", [[]])]
    result, t = await route(registry, switch([r("head", "1", "num")]), [{"payload": 1}], extra)
    assert result == [[]]
    assert "msg.parts" in t.outputs("o")[0][0]["error"]["message"]


async def test_repair_rewrites_parts_per_output(registry):
    sw = switch([r("gt", "1", "num"), r("else")], repair=True)
    async with FlowTester([TAB, sw], registry) as t:
        for m in seq(4):
            t.inject("s", m)
        t.inject("s", {"payload": 9})  # not a sequence: routed normally
        await t.idle()
        high, low = t.outputs("s")
        assert [m["payload"] for m in high] == [2, 3, 9]
        assert [(m["parts"]["index"], m["parts"]["count"]) for m in high[:2]] == [(0, 2), (1, 2)]
        assert [(m["payload"], m["parts"]["index"], m["parts"]["count"]) for m in low] == [
            (0, 0, 2),
            (1, 1, 2),
        ]
        assert high[0]["parts"]["id"] != low[0]["parts"]["id"] != "g1"


# ----- deploy errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        [r("regex", "(", "str")],
        [r("eq", "abc", "num")],
        [r("eq", "$$$(", "jsonata")],
        [r("frob", "1", "num")],
    ],
)
async def test_bad_rule_refuses_deploy(registry, bad):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester([TAB, switch(bad)], registry):
            pass
    assert "rules[0]" in str(info.value)


async def test_bad_jsonata_property_refuses_deploy(registry):
    with pytest.raises(FlowValidationError):
        async with FlowTester([TAB, switch([r("true")], property="$$$(", propertyType="jsonata")], registry):
            pass


# ----- JS semantics and properties ---------------------------------------------------------------


def test_js_helpers():
    assert js_number("  12 ") == 12 and js_number("0x1f") == 31 and js_number("") == 0
    assert js_number(None) == 0 and js_number([7]) == 7
    assert js_number("1e3") == 1000.0
    assert js_string(1.0) == "1" and js_string(0.1) == "0.1" and js_string(1e-7) == "1e-7"
    assert js_string(0.00001) == "0.00001" and js_string([1, None, "a"]) == "1,,a"
    assert js_loose_eq(None, UNDEFINED) and not js_loose_eq(0, None)
    assert js_loose_eq([1, 2], "1,2") and not js_loose_eq({}, {})
    assert js_less("10", 9) is False and js_less("10", "9") is True


_scalars = (
    st.integers(-20, 20)
    | st.floats(-20, 20, allow_nan=False)
    | st.booleans()
    | st.none()
    | st.sampled_from(["", "0", "5", "-3", "1.5", "abc", "true", " 7 "])
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payloads=st.lists(_scalars, min_size=1, max_size=8),
    v=st.sampled_from(["0", "5", "-3", "1.5", "abc", ""]),
    vt=st.sampled_from(["str", "num"]),
)
def test_eq_and_neq_are_complementary(registry, payloads, v, vt):
    if vt == "num" and v == "abc":
        vt = "str"
    sw = switch([r("eq", v, vt), r("neq", v, vt)])
    result, _ = asyncio.run(route(registry, sw, [{"payload": p} for p in payloads]))
    assert all(len(ports) == 1 for ports in result)


@settings(max_examples=200, deadline=None)
@given(a=_scalars, b=_scalars)
def test_lt_gte_complement_for_numbers(a, b):
    # For values that convert to real numbers, a < b is exactly not (b <= a)
    na, nb = js_number(a), js_number(b)
    if isinstance(a, str) and isinstance(b, str):
        return
    if na != na or nb != nb:
        assert not js_less(a, b) and not js_less(b, a, True)
    else:
        assert js_less(a, b) == (not js_less(b, a, True))
