"""change node: set / change / delete / move on msg, flow and global, as Node-RED 15-change.js."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {
    "id": "t1",
    "type": "tab",
    "label": "Flow 1",
    "env": [{"name": "GREETING", "value": "hello", "type": "str"}],
}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": "t1",
        "name": props.pop("name", ""),
        "x": 100,
        "y": 100,
        "wires": [list(w) for w in wires],
        **props,
    }


def change(*rules, **extra):
    return node("c", "change", [[]], rules=list(rules), **extra)


def rule(t, p="payload", pt="msg", **kw):
    return {"t": t, "p": p, "pt": pt, **kw}


class Ctx:
    """Flow and global context of the tested flow, readable after it stopped."""

    def __init__(self, t):
        self.flow = t.node("c").flow
        self.global_ = t.node("c").global_
        self.logs = t.logs
        self.outputs = t.outputs


async def run(registry, flows, *msgs):
    async with FlowTester([TAB, *flows], registry) as t:
        for m in msgs:
            t.inject("c", m)
        await t.idle()
        return t.outputs("c")[0], Ctx(t)


async def one(registry, rules, msg, **extra):
    out, _ = await run(registry, [change(*rules, **extra)], msg)
    assert len(out) == 1
    return out[0]


# ----- set ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "tot", "expected"),
    [
        ("hello", "str", "hello"),
        ("", "str", ""),
        ("42", "num", 42),
        ("-1.5", "num", -1.5),
        ("true", "bool", True),
        ("TRUE", "bool", True),
        ("false", "bool", False),
        ('{"a":[1,2]}', "json", {"a": [1, 2]}),
        ("[1,2,3]", "bin", bytearray(b"\x01\x02\x03")),
    ],
)
async def test_set_constant_types(registry, to, tot, expected):
    out = await one(registry, [rule("set", to=to, tot=tot)], {"payload": "old"})
    assert out["payload"] == expected
    assert type(out["payload"]) is type(expected)


async def test_set_date_is_a_millisecond_timestamp(registry):
    before = int(time.time() * 1000)
    out = await one(registry, [rule("set", to="", tot="date")], {"payload": 0})
    assert before <= out["payload"] <= int(time.time() * 1000) + 1


async def test_set_json_gives_each_message_its_own_object(registry):
    out, _ = await run(
        registry,
        [change(rule("set", to='{"n":[]}', tot="json"), rule("set", p="payload.n[0]", to="x"))],
        {"payload": 1},
        {"payload": 2},
    )
    assert [m["payload"] for m in out] == [{"n": ["x"]}, {"n": ["x"]}]
    assert out[0]["payload"] is not out[1]["payload"]


async def test_set_nested_creates_objects_and_arrays(registry):
    out = await one(
        registry, [rule("set", p="a.b.c", to="1", tot="num"), rule("set", p="list[1]", to="x")], {}
    )
    assert out["a"] == {"b": {"c": 1}}
    assert out["list"] == [None, "x"]


async def test_set_from_msg_property_and_missing_source_deletes_target(registry):
    out = await one(
        registry,
        [
            rule("set", p="topic", to="payload.name", tot="msg"),
            rule("set", p="other", to="nothere", tot="msg"),
        ],
        {"payload": {"name": "n1"}, "other": 5},
    )
    assert out["topic"] == "n1"
    assert "other" not in out  # Node-RED: setting undefined deletes the property


async def test_set_without_deep_clone_shares_and_with_dc_copies(registry):
    flows = [
        change(
            rule("set", p="shared", to="payload", tot="msg"),
            rule("set", p="copy", to="payload", tot="msg", dc=True),
            rule("set", p="payload.x", to="changed"),
        )
    ]
    out, _ = await run(registry, flows, {"payload": {"x": "orig"}})
    assert out[0]["shared"] == {"x": "changed"}
    assert out[0]["copy"] == {"x": "orig"}


async def test_set_legacy_to_with_msg_prefix_and_no_tot(registry):
    out = await one(registry, [{"t": "set", "p": "topic", "to": "msg.payload"}], {"payload": "p"})
    # Node-RED migrates `to: "msg.payload"` without tot to a msg reference
    assert out["topic"] == "p"


async def test_set_flow_and_global_with_store_prefix_and_read_back(registry):
    flows = [
        change(
            rule("set", p="count", pt="flow", to="payload", tot="msg"),
            rule("set", p="#:(memory)::g.name", pt="global", to="hello"),
            rule("set", p="fromflow", to="count", tot="flow"),
            rule("set", p="fromglobal", to="#:(memory)::g.name", tot="global"),
        )
    ]
    out, t = await run(registry, flows, {"payload": 7})
    assert t.flow.get("count") == 7
    assert t.global_.get("g") == {"name": "hello"}
    assert out[0]["fromflow"] == 7 and out[0]["fromglobal"] == "hello"


async def test_set_flow_key_with_nested_msg_reference(registry):
    flows = [change(rule("set", p="rooms[msg.topic]", pt="flow", to="payload", tot="msg"))]
    _, t = await run(registry, flows, {"topic": "kitchen", "payload": 21})
    assert t.flow.get("rooms") == {"kitchen": 21}


async def test_set_env_reads_tab_env(registry):
    out = await one(registry, [rule("set", to="GREETING", tot="env")], {"payload": 0})
    assert out["payload"] == "hello"


async def test_set_jsonata_sees_msg_context_and_env(registry):
    flows = [
        change(
            rule("set", p="count", pt="flow", to="3", tot="num"),
            rule("set", p="g", pt="global", to="4", tot="num"),
            rule("set", to='payload * 2 + $flowContext("count") + $globalContext("g")', tot="jsonata"),
            rule("set", p="topic", to='$env("GREETING") & "-" & topic', tot="jsonata"),
        )
    ]
    out, _ = await run(registry, flows, {"payload": 10, "topic": "t"})
    assert out[0]["payload"] == 27
    assert out[0]["topic"] == "hello-t"


async def test_set_jsonata_undefined_leaves_the_property_absent_and_null_stays_null(registry):
    flows = [
        change(
            rule("set", to="$sum(payload.nothing)", tot="jsonata"),
            rule("set", p="a.b", to="nothing.here", tot="jsonata"),
            rule("set", p="topic", to="null", tot="jsonata"),
            rule("set", p="kept", pt="flow", to="1", tot="num"),
            rule("set", p="kept", pt="flow", to="nothing", tot="jsonata"),
            rule("set", p="nested", to='{"x": null, "y": nothing}', tot="jsonata"),
        )
    ]
    out, ctx = await run(registry, flows, {"payload": {}, "a": {"b": 1}})
    assert "payload" not in out[0] and out[0]["a"] == {}  # Node-RED deletes on undefined, never null
    assert out[0]["topic"] is None
    assert out[0]["nested"] == {"x": None}
    assert ctx.flow.get("kept") is None and "kept" not in ctx.flow.keys()


async def test_jsonata_runtime_error_goes_to_catch_and_drops_message(registry):
    flows = [
        change(rule("set", to='$error("boom")', tot="jsonata")),
        node("k", "catch", [["o"]], scope=None),
        node("o", "junction", [[]]),
    ]
    out, t = await run(registry, flows, {"payload": 1})
    assert out == []
    assert len(t.outputs("o")[0]) == 1
    assert "boom" in t.outputs("o")[0][0]["error"]["message"]


async def test_set_below_a_non_object_warns_and_keeps_message(registry):
    out, t = await run(registry, [change(rule("set", p="payload.a", to="x"))], {"payload": "text"})
    assert out[0]["payload"] == "text"
    assert any("Cannot set property" in str(e.get("msg")) for e in t.logs if e["level"] == "warn")


# ----- change ------------------------------------------------------------------------------------


async def test_change_replaces_every_occurrence_of_a_string(registry):
    out = await one(
        registry,
        [rule("change", **{"from": "a.b", "fromt": "str", "to": "X", "tot": "str"})],
        {"payload": "a.b-aab-a.b"},
    )
    assert out["payload"] == "X-aab-X"  # the search string is literal: '.' is not a wildcard


async def test_change_regex_with_js_backrefs(registry):
    rules = [
        rule("change", **{"from": r"(\w+)@(\w+)", "fromt": "re", "to": "$2 at $1 ($&) $$", "tot": "str"})
    ]
    out = await one(registry, rules, {"payload": "joe@example bob@home"})
    assert out["payload"] == "example at joe (joe@example) $ home at bob (bob@home) $"


async def test_change_regex_named_groups_and_unknown_group_left_literal(registry):
    rules = [
        rule("change", **{"from": r"(?<first>\d)(\d)", "fromt": "re", "to": "$<first>|$2|$3", "tot": "str"})
    ]
    out = await one(registry, rules, {"payload": "12"})
    assert out["payload"] == "1|2|$3"


async def test_change_whole_string_match_gets_typed_value(registry):
    out, _ = await run(
        registry,
        [
            change(
                rule("change", **{"from": "on", "fromt": "str", "to": "1", "tot": "num"}),
                rule("change", p="topic", **{"from": "x", "fromt": "str", "to": '{"a":1}', "tot": "json"}),
            )
        ],
        {"payload": "on", "topic": "x"},
        {"payload": "turn on", "topic": "xx"},
    )
    assert out[0]["payload"] == 1 and out[0]["topic"] == {"a": 1}
    assert out[1]["payload"] == "turn 1" and out[1]["topic"] == "[object Object][object Object]"


async def test_change_numbers_and_booleans_only_on_exact_match(registry):
    rules = [
        rule("change", **{"from": "5", "fromt": "num", "to": "five", "tot": "str"}),
        rule("change", p="flag", **{"from": "true", "fromt": "bool", "to": "0", "tot": "num"}),
        rule("change", p="other", **{"from": "5", "fromt": "str", "to": "z", "tot": "str"}),
    ]
    out, _ = await run(
        registry,
        [change(*rules)],
        {"payload": 5, "flag": True, "other": 5},
        {"payload": 6, "flag": False, "other": "5"},
        {"payload": "a5", "flag": "true"},
    )
    assert [(m["payload"], m["flag"], m.get("other")) for m in out] == [
        ("five", 0, 5),
        (6, False, "z"),
        ("afive", 0, None),
    ]


async def test_change_from_msg_property_and_on_flow_context(registry):
    flows = [
        change(
            rule("set", p="s", pt="flow", to="hello world"),
            rule("change", p="s", pt="flow", **{"from": "word", "fromt": "msg", "to": "there", "tot": "str"}),
            rule("set", p="result", to="s", tot="flow"),
        )
    ]
    out, _ = await run(registry, flows, {"word": "world"})
    assert out[0]["result"] == "hello there"


async def test_change_missing_property_is_left_alone(registry):
    out = await one(
        registry, [rule("change", **{"from": "a", "fromt": "str", "to": "b", "tot": "str"})], {"topic": 1}
    )
    assert "payload" not in out


# ----- delete / move -----------------------------------------------------------------------------


async def test_delete_msg_nested_array_and_context(registry):
    flows = [
        change(
            rule("set", p="x", pt="flow", to="1"),
            rule("delete", p="payload.a"),
            rule("delete", p="list[0]"),
            rule("delete", p="x", pt="flow"),
            rule("delete", p="topic"),
        )
    ]
    out, t = await run(registry, flows, {"payload": {"a": 1, "b": 2}, "list": [1, 2], "topic": "t"})
    assert out[0]["payload"] == {"b": 2} and out[0]["list"] == [2] and "topic" not in out[0]
    assert t.flow.get("x") is None


async def test_move_between_properties_and_scopes(registry):
    flows = [
        change(
            rule("move", p="payload", to="topic", tot="msg"), rule("move", p="topic.v", to="kept", tot="flow")
        )
    ]
    out, t = await run(registry, flows, {"payload": {"v": 1, "w": 2}, "topic": "old"})
    assert "payload" not in out[0]
    assert out[0]["topic"] == {"w": 2}
    assert t.flow.get("kept") == 1


async def test_move_to_a_child_and_from_a_child(registry):
    out, _ = await run(
        registry, [change(rule("move", p="payload", to="payload.inner", tot="msg"))], {"payload": 3}
    )
    assert out[0]["payload"] == {"inner": 3}
    out, _ = await run(
        registry,
        [change(rule("move", p="payload.inner", to="payload", tot="msg"))],
        {"payload": {"inner": [1]}},
    )
    assert out[0]["payload"] == [1]


async def test_move_onto_itself_is_a_no_op(registry):
    out = await one(registry, [rule("move", p="payload", to="payload", tot="msg")], {"payload": {"a": 1}})
    assert out["payload"] == {"a": 1}


async def test_rules_apply_in_order(registry):
    rules = [
        rule("set", to="a"),
        rule("change", **{"from": "a", "fromt": "str", "to": "b", "tot": "str"}),
        rule("set", p="topic", to="payload", tot="msg"),
        rule("delete"),
    ]
    out = await one(registry, rules, {"payload": "x"})
    assert out == {"topic": "b", "_msgid": out["_msgid"]}


# ----- legacy single-rule form -------------------------------------------------------------------


async def test_legacy_replace_change_and_delete(registry):
    legacy = [
        node("c", "change", [[]], action="replace", property="payload", to="new"),
        node(
            "c2",
            "change",
            [[]],
            action="change",
            property="payload",
            reg=True,
            **{"from": "(a+)", "to": "<$1>"},
        ),
        node("c3", "change", [[]], action="delete", property="topic"),
    ]
    async with FlowTester([TAB, *legacy], registry) as t:
        t.inject("c", {"payload": "old"})
        t.inject("c2", {"payload": "baad"})
        t.inject("c3", {"payload": 1, "topic": "x"})
        await t.idle()
        assert t.payloads("c") == ["new"]
        assert t.payloads("c2") == ["b<aa>d"]
        assert "topic" not in t.outputs("c3")[0][0]


async def test_same_message_object_is_passed_on(registry):
    flows = [change(rule("set", to="v"))]
    async with FlowTester([TAB, *flows], registry) as t:
        sent = t.inject("c", {"payload": 1})
        await t.idle()
        assert t.outputs("c")[0][0] is sent


# ----- deploy errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        rule("change", **{"from": "(", "fromt": "re", "to": "", "tot": "str"}),
        rule("set", to="{nope", tot="json"),
        rule("set", to="abc", tot="num"),
        rule("set", to="$$$(", tot="jsonata"),
        rule("set", to="x", tot="nosuchtype"),
        rule("frobnicate"),
        rule("set", p=""),
        rule("set", p="a..b"),
        rule("move", to=""),
    ],
)
async def test_bad_rule_refuses_deploy(registry, bad):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester([TAB, change(bad)], registry):
            pass
    assert "rules[0]" in str(info.value)


# ----- properties --------------------------------------------------------------------------------

_keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda k: k != "_msgid"
)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.dictionaries(_keys, _values, max_size=4), key=_keys, value=st.text(max_size=10))
def test_set_then_delete_round_trip(registry, base, key, value):
    async def scenario():
        flows = [
            change(
                rule("set", p=key, to=value),
                rule("set", p="seen", pt="flow", to=key, tot="msg"),
                rule("delete", p=key),
            )
        ]
        out, t = await run(registry, flows, dict(base))
        return out[0], t.flow.get("seen")

    out, seen = asyncio.run(scenario())
    out.pop("_msgid")
    expected = {k: v for k, v in base.items() if k != key}
    assert out == expected
    assert seen == value


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(max_size=20), old=st.text(min_size=1, max_size=3), new=st.text(alphabet="xyz-", max_size=3)
)
def test_string_change_matches_python_replace(registry, text, old, new):
    async def scenario():
        return await one(
            registry,
            [rule("change", **{"from": old, "fromt": "str", "to": new, "tot": "str"})],
            {"payload": text},
        )

    out = asyncio.run(scenario())
    assert out["payload"] == (new if text == old else text.replace(old, new))
