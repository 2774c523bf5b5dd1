"""inject node: props and their types, legacy payload/topic, once/repeat/crontab timers, the button."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.common.inject import moment_format
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {
    "id": "t1",
    "type": "tab",
    "label": "Flow 1",
    "env": [{"name": "GREETING", "value": "hello", "type": "str"}],
}
START = 1_700_000_000.0  # the virtual clock's start: 2023-11-14T22:13:20Z


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


def inject(**cfg):
    base = {
        "props": [{"p": "payload"}, {"p": "topic", "vt": "str"}],
        "repeat": "",
        "crontab": "",
        "once": False,
        "onceDelay": 0.1,
        "topic": "",
        "payload": "",
        "payloadType": "date",
    }
    base.update(cfg)
    return [
        TAB,
        node("i", "inject", [["o"]], **base),
        node("o", "junction", [[]]),
        node("c", "catch", [["e"]], scope=None, uncaught=False),
        node("e", "junction", [[]]),
    ]


async def fire(registry, overrides=None, setup=None, **cfg):
    async with FlowTester(inject(**cfg), registry, virtual_time=True) as t:
        if setup:
            setup(t)
        t.node("i").trigger(overrides)
        await t.idle()
        return t.outputs("o")[0], t.outputs("e")[0]


async def test_legacy_payload_and_topic_fill_props(registry):
    # fixture node a1f0c0de00000001: props without v, payload "5" of type num, topic "sample"
    out, _ = await fire(registry, payload="5", payloadType="num", topic="sample")
    assert len(out) == 1
    assert {k: v for k, v in out[0].items() if k != "_msgid"} == {"payload": 5, "topic": "sample"}
    assert len(out[0]["_msgid"]) == 16


async def test_flows_without_props_use_the_legacy_fields(registry):
    flows = inject(payload="hi", payloadType="str", topic="t")
    del flows[1]["props"]
    async with FlowTester(flows, registry) as t:
        t.node("i").trigger()
        await t.idle()
        assert [(m["payload"], m["topic"]) for m in t.outputs("o")[0]] == [("hi", "t")]


async def test_default_payload_is_a_millisecond_timestamp_on_the_runtime_clock(registry):
    out, _ = await fire(registry)
    assert out[0]["payload"] == int(START * 1000)
    assert out[0]["topic"] == ""


@pytest.mark.parametrize(
    ("v", "vt", "expected"),
    [
        ("text", "str", "text"),
        (5, "str", "5"),
        ("42", "num", 42),
        ("2.5", "num", 2.5),
        ("", "num", 0),
        ("true", "bool", True),
        ("false", "bool", False),
        ('{"a":[1,2]}', "json", {"a": [1, 2]}),
        ("[1,2,255]", "bin", bytearray([1, 2, 255])),
        ("", "date", int(START * 1000)),
        ("iso", "date", "2023-11-14T22:13:20.000Z"),
        ("GREETING", "env", "hello"),
        ("${GREETING}-x", "env", "hello-x"),
        ("NOT_SET_ANYWHERE_42", "env", ""),
        ("1 + 2", "jsonata", 3),
        ("$flowContext('count') * 10", "jsonata", 40),
        ("count", "flow", 4),
        ("site.name", "global", "north"),
    ],
)
async def test_value_types(registry, v, vt, expected):
    def setup(t):
        t.node("i").flow.set("count", 4)
        t.node("i").global_.set("site", {"name": "north"})

    out, err = await fire(registry, setup=setup, props=[{"p": "payload", "v": v, "vt": vt}])
    assert err == []
    assert out[0]["payload"] == expected
    assert "topic" not in out[0]


async def test_date_object_and_moment_format(registry):
    out, _ = await fire(
        registry,
        props=[
            {"p": "a", "v": "object", "vt": "date"},
            {"p": "b", "v": "YYYY-MM-DD [at] HH:mm", "vt": "date"},
        ],
    )
    assert out[0]["a"].timestamp() == START
    assert out[0]["b"] == datetime.fromtimestamp(START).strftime("%Y-%m-%d at %H:%M")


async def test_json_values_are_fresh_per_message(registry):
    async with FlowTester(inject(props=[{"p": "payload", "v": '{"list":[]}', "vt": "json"}]), registry) as t:
        t.node("i").trigger()
        await t.idle()
        t.outputs("o")[0][0]["payload"]["list"].append(1)
        t.node("i").trigger()
        await t.idle()
        assert t.outputs("o")[0][1]["payload"] == {"list": []}


async def test_nested_paths_msg_references_and_empty_entries(registry):
    out, _ = await fire(
        registry,
        props=[
            {"p": "a.b[1]", "v": "x", "vt": "str"},
            {"p": "copy", "v": "a.b", "vt": "msg"},
            {"p": "", "v": "ignored"},
            {"p": "skip", "v": "", "vt": "jsonata"},
            {"p": "msg.plain", "v": "p"},
        ],
    )
    msg = out[0]
    assert msg["a"] == {"b": [None, "x"]} and msg["copy"] == [None, "x"]
    assert msg["plain"] == "p" and "skip" not in msg and "" not in msg


async def test_failing_property_errors_with_the_message_to_catch(registry):
    out, err = await fire(
        registry,
        props=[
            {"p": "payload", "v": "$error('boom')", "vt": "jsonata"},
            {"p": "topic", "v": "t", "vt": "str"},
        ],
    )
    assert out == []
    assert "boom" in err[0]["error"]["message"]
    assert err[0]["error"]["source"]["id"] == "i"
    assert err[0]["topic"] == "t"  # the other properties were still set, as in Node-RED


async def test_user_inject_props_replace_the_configured_ones(registry):
    body = {"__user_inject_props__": [{"p": "payload", "v": "7", "vt": "num"}, {"p": "extra", "v": "x"}]}
    out, _ = await fire(registry, overrides=body, payload="5", payloadType="num", topic="sample")
    assert {k: v for k, v in out[0].items() if k != "_msgid"} == {"payload": 7, "extra": "x"}
    assert "__user_inject_props__" not in out[0]
    out, err = await fire(
        registry, overrides={"__user_inject_props__": [{"p": "payload", "v": "{", "vt": "json"}]}
    )
    assert out == [] and "invalid JSON" in err[0]["error"]["message"]


async def test_once_after_delay(registry):
    async with FlowTester(inject(once=True, onceDelay="0.5"), registry, virtual_time=True) as t:
        await t.advance(0.4)
        assert t.payloads("o") == []
        await t.advance(0.2)
        assert t.payloads("o") == [int((START + 0.5) * 1000)]
        await t.advance(100)
        assert len(t.payloads("o")) == 1


async def test_once_delay_zero_means_a_tenth_of_a_second(registry):
    async with FlowTester(inject(once=True, onceDelay=0), registry, virtual_time=True) as t:
        await t.advance(0.05)
        assert t.payloads("o") == []
        await t.advance(0.06)
        assert len(t.payloads("o")) == 1


async def test_repeat_interval_and_once_then_repeat(registry):
    async with FlowTester(inject(repeat="2"), registry, virtual_time=True) as t:
        await t.advance(7)
        assert t.payloads("o") == [int((START + s) * 1000) for s in (2, 4, 6)]
    async with FlowTester(inject(repeat="2", once=True, onceDelay=0.5), registry, virtual_time=True) as t:
        await t.advance(5)
        assert t.payloads("o") == [int((START + s) * 1000) for s in (0.5, 2.5, 4.5)]


async def test_crontab_every_minute_and_with_seconds(registry):
    async with FlowTester(inject(crontab="* * * * *"), registry, virtual_time=True) as t:
        await t.advance(150)  # START is 20 s past a minute: fires at +40 s and +100 s
        assert t.payloads("o") == [int((START + s) * 1000) for s in (40, 100)]
    async with FlowTester(inject(crontab="*/10 * * * * *"), registry, virtual_time=True) as t:
        await t.advance(35)
        assert t.payloads("o") == [int((START + s) * 1000) for s in (10, 20, 30)]


async def test_repeat_wins_over_crontab(registry):
    async with FlowTester(inject(repeat="1", crontab="0 0 1 1 *"), registry, virtual_time=True) as t:
        await t.advance(3)
        assert len(t.payloads("o")) == 3


async def test_redeploy_and_close_cancel_timers(registry):
    async with FlowTester(inject(repeat="1"), registry, virtual_time=True) as t:
        await t.advance(1.5)
        assert len(t.payloads("o")) == 1
        await t.deploy([TAB])
        assert t.clock.pending == 0
        await t.advance(5)
        assert len(t.payloads("o")) == 1


@pytest.mark.parametrize(
    "cfg",
    [
        {"props": [{"p": "payload", "v": "{bad", "vt": "json"}]},
        {"props": [{"p": "payload", "v": "1 +", "vt": "jsonata"}]},
        {"props": [{"p": "payload", "v": "abc", "vt": "num"}]},
        {"props": [{"p": "a..b", "v": "x", "vt": "str"}]},
        {"props": [{"p": "payload", "v": "x", "vt": "nonsense"}]},
        {"crontab": "every day"},
        {"crontab": "61 * * * *"},
        {"crontab": "0 0 30 2 *"},
        {"repeat": "3000000"},
        {"repeat": "soon"},
    ],
)
async def test_bad_config_refuses_deploy(registry, cfg):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(inject(**cfg), registry, virtual_time=True):
            pass
    assert info.value.problems[0].node_id == "i"


def test_moment_format_tokens():
    dt = datetime(2024, 3, 5, 14, 7, 9, 45000).astimezone()
    assert moment_format(dt, "YYYY-MM-DD HH:mm:ss.SSS") == "2024-03-05 14:07:09.045"
    assert moment_format(dt, "D/M/YY h:mm A, dddd Do MMMM") == "5/3/24 2:07 PM, Tuesday 5th March"


@settings(max_examples=30, deadline=None)
@given(st.text(max_size=30).filter(lambda s: not s.startswith("$")), st.integers(-(10**15), 10**15))
def test_string_and_number_values_arrive_unchanged(text, number):
    async def go():
        flows = inject(
            props=[{"p": "payload", "v": text, "vt": "str"}, {"p": "n", "v": str(number), "vt": "num"}]
        )
        async with FlowTester(flows) as t:
            t.node("i").trigger()
            await t.idle()
            return t.outputs("o")[0]

    out = asyncio.run(go())
    assert [(m["payload"], m["n"]) for m in out] == [(text, number)]
