"""join node: automatic (reverse a split: strings, arrays, chunks, objects, buffers, nested parts, other
properties), manual (array, string, buffer, object, merged, whole messages, count, timeout, msg.complete,
msg.reset, msg.restartTimeout, accumulate, useparts), reduce (JSONata with $A/$I/$N, init, fix-up, right to
left), done/complete, state across a `nodes` redeploy, and config errors."""

from __future__ import annotations

import asyncio
import copy

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


def join(**props):
    """A join node with Node-RED's stored defaults (as the editor saves them)."""
    base = {
        "mode": "auto",
        "build": "object",
        "property": "payload",
        "propertyType": "msg",
        "key": "topic",
        "joiner": "\\n",
        "joinerType": "str",
        "useparts": False,
        "accumulate": "false",
        "timeout": "",
        "count": "",
        "reduceRight": False,
        "reduceExp": "",
        "reduceInit": "",
        "reduceInitType": "",
        "reduceFixup": "",
    }
    base.update(props)
    return node("j", "join", [["o"]], **base)


def manual(**props):
    return join(mode="custom", **props)


def flows_for(j, extra=()):
    return [TAB, j, node("o", "junction", [[]]), *extra]


def parts(pid, index, count=None, **more):
    p = {"id": pid, "index": index, **more}
    if count is not None:
        p["count"] = count
    return p


async def run(j, registry, *msgs, extra=()):
    async with FlowTester(flows_for(j, extra), registry) as t:
        for m in msgs:
            t.inject("j", copy.deepcopy(m))
        await t.idle()
        return t.outputs("j")[0], t


def warnings(t):
    return [e["msg"] for e in t.logs if e["level"] == "warn"]


# ----- automatic mode ----------------------------------------------------------------------------------------
async def test_auto_joins_string_parts_in_index_order_with_their_joiner(registry):
    msgs = [{"payload": p, "parts": parts("g", i, 4, type="string", ch=",")} for i, p in enumerate("ABCD")]
    out, _ = await run(join(), registry, msgs[2], msgs[0], msgs[3], msgs[1])
    assert [m["payload"] for m in out] == ["A,B,C,D"]
    assert "parts" not in out[0]


async def test_auto_output_is_based_on_the_last_message(registry):
    a = {"payload": 1, "topic": "first", "only_first": True, "parts": parts("g", 0, 2, type="array")}
    b = {"payload": 2, "topic": "last", "_msgid": "lastid", "parts": parts("g", 1, 2, type="array")}
    out, _ = await run(join(), registry, a, b)
    assert out == [{"payload": [1, 2], "topic": "last", "only_first": True, "_msgid": "lastid"}]


async def test_auto_rebuilds_array_chunks(registry):
    msgs = [
        {"payload": [3, 4], "parts": parts("g", 1, 3, type="array", len=2)},
        {"payload": [1, 2], "parts": parts("g", 0, 3, type="array", len=2)},
        {"payload": [5], "parts": parts("g", 2, 3, type="array", len=2)},
    ]
    out, _ = await run(join(), registry, *msgs)
    assert out[0]["payload"] == [1, 2, 3, 4, 5]


async def test_auto_rebuilds_objects_by_key_and_warns_without_a_key(registry):
    msgs = [
        {"payload": 1, "parts": parts("g", 0, 2, type="object", key="a")},
        {"payload": 9, "parts": parts("g", 1, 2, type="object")},
        {"payload": {"x": 2}, "parts": parts("g", 1, 2, type="object", key="b")},
    ]
    out, t = await run(join(), registry, *msgs)
    assert [m["payload"] for m in out] == [{"a": 1, "b": {"x": 2}}]
    assert warnings(t) == ["Message missing 'msg.parts.key' property - cannot add to object"]


async def test_auto_joins_buffers_with_and_without_a_joiner(registry):
    msgs = [{"payload": bytes([65 + i]), "parts": parts("g", i, 3, type="buffer", ch=[45])} for i in range(3)]
    out, _ = await run(join(), registry, *msgs)
    assert out[0]["payload"] == b"A-B-C"
    msgs = [{"payload": bytes([65 + i]), "parts": parts("h", i, 3, type="buffer", len=1)} for i in range(3)]
    out, _ = await run(join(), registry, *msgs)
    assert out[0]["payload"] == b"ABC"


async def test_auto_string_with_byte_array_joiner_uses_its_text_as_node_red(registry):
    # Node-RED joins with String([44]) == "44" here; kept for compatibility
    msgs = [{"payload": p, "parts": parts("g", i, 2, type="string", ch=[44])} for i, p in enumerate("ab")]
    out, _ = await run(join(), registry, *msgs)
    assert out[0]["payload"] == "a44b"


async def test_auto_restores_the_outer_parts_of_a_nested_split(registry):
    outer = parts("outer", 1, 2, type="array")
    msgs = [{"payload": i, "parts": parts("inner", i, 2, type="array", parts=outer)} for i in range(2)]
    out, _ = await run(join(), registry, *msgs)
    assert out == [{"payload": [0, 1], "parts": outer, "_msgid": out[0]["_msgid"]}]


async def test_auto_joins_the_property_named_in_parts(registry):
    msgs = [
        {"data": {"v": i}, "payload": "keep", "parts": parts("g", i, 2, type="array", property="data.v")}
        for i in range(2)
    ]
    out, _ = await run(join(), registry, *msgs)
    assert out[0]["data"] == {"v": [0, 1]} and out[0]["payload"] == "keep"


async def test_auto_keeps_separate_groups_apart(registry):
    msgs = [
        {"payload": 1, "parts": parts("g1", 0, 2, type="array")},
        {"payload": "x", "parts": parts("g2", 0, 1, type="array")},
        {"payload": 2, "parts": parts("g1", 1, 2, type="array")},
    ]
    out, _ = await run(join(), registry, *msgs)
    assert [m["payload"] for m in out] == [["x"], [1, 2]]


async def test_auto_repeated_index_replaces_and_does_not_count(registry):
    msgs = [
        {"payload": 1, "parts": parts("g", 0, 2, type="array")},
        {"payload": 9, "parts": parts("g", 0, 2, type="array")},
        {"payload": 2, "parts": parts("g", 1, 2, type="array")},
    ]
    out, _ = await run(join(), registry, *msgs)
    assert [m["payload"] for m in out] == [[9, 2]]


async def test_auto_count_may_arrive_on_a_later_part(registry):
    msgs = [
        {"payload": 1, "parts": parts("g", 1, type="array")},
        {"payload": 0, "parts": parts("g", 0, 2, type="array")},
    ]
    out, _ = await run(join(), registry, *msgs)
    assert [m["payload"] for m in out] == [[0, 1]]


async def test_auto_without_parts_warns_and_reset_drops_everything(registry):
    msgs = [
        {"payload": 1},
        {"payload": "a", "parts": parts("g", 0, 2, type="string", ch="")},
        {"reset": True},
        {"payload": "b", "parts": parts("g", 1, 2, type="string", ch="")},
    ]
    out, t = await run(join(), registry, *msgs)
    assert out == []
    assert warnings(t) == ["Message missing msg.parts property - cannot join in 'auto' mode"]


async def test_auto_reset_with_parts_drops_only_that_group(registry):
    msgs = [
        {"payload": "a", "parts": parts("g", 0, 2, type="string", ch=",")},
        {"payload": "x", "parts": parts("h", 0, 2, type="string", ch=",")},
        {"reset": True, "parts": {"id": "g"}},
        {"payload": "b", "parts": parts("g", 1, 2, type="string", ch=",")},
        {"payload": "y", "parts": parts("h", 1, 2, type="string", ch=",")},
    ]
    out, _ = await run(join(), registry, *msgs)
    assert [m["payload"] for m in out] == ["x,y"]


# ----- manual mode -----------------------------------------------------------------------------------------
async def test_manual_array_after_count(registry):
    out, _ = await run(
        manual(build="array", count="3"),
        registry,
        {"payload": 1},
        {"payload": True},
        {"payload": {"a": 1}},
        {"payload": 4},
        {"nothing": 1},
    )
    assert [m["payload"] for m in out] == [[1, True, {"a": 1}]]


async def test_manual_string_with_escaped_joiner_and_js_text(registry):
    out, _ = await run(
        manual(build="string", count="4", joiner="\\n"),
        registry,
        {"payload": "a"},
        {"payload": 2},
        {"payload": 1.5},
        {"payload": None},
    )
    assert out[0]["payload"] == "a\n2\n1.5\n"


async def test_manual_buffer_with_byte_joiner_accepts_strings_and_arrays(registry):
    out, _ = await run(
        manual(build="buffer", count="3", joiner="[32]", joinerType="bin"),
        registry,
        {"payload": "hello"},
        {"payload": b"big"},
        {"payload": [119, 111]},
    )
    assert out[0]["payload"] == b"hello big wo"


async def test_manual_buffer_rejects_numbers(registry):
    catch = [node("c", "catch", [["co"]], scope=None), node("co", "junction", [[]])]
    out, t = await run(
        manual(build="buffer", count="2", joiner=""),
        registry,
        {"payload": "a"},
        {"payload": 5},
        {"payload": "b"},
        extra=catch,
    )
    assert [m["payload"] for m in out] == [b"ab"]
    assert t.outputs("co")[0][0]["error"]["message"] == "Cannot join number to buffer"


async def test_manual_object_by_topic_later_values_win(registry):
    msgs = [
        {"payload": 1, "topic": "a"},
        {"payload": 2, "topic": "a"},
        {"payload": 3},
        {"payload": 4, "topic": 5},
        {"payload": 5, "topic": "c"},
    ]
    out, t = await run(manual(build="object", count="3"), registry, *msgs)
    assert [m["payload"] for m in out] == [{"a": 2, "5": 4, "c": 5}]
    assert warnings(t) == ["Message missing key property 'msg.topic' - cannot add to object"]


async def test_manual_object_key_from_a_nested_property(registry):
    out, _ = await run(
        manual(build="object", count="2", key="meta.name"),
        registry,
        {"payload": 1, "meta": {"name": "x"}},
        {"payload": 2, "meta": {"name": "y"}},
    )
    assert out[0]["payload"] == {"x": 1, "y": 2}


async def test_manual_merged_objects(registry):
    msgs = [{"payload": {"a": 9}}, {"payload": {"a": 1, "b": 2}}, {"payload": 7}, {"payload": {"c": 3}}]
    out, t = await run(manual(build="merged", count="3"), registry, *msgs)
    assert [m["payload"] for m in out] == [{"a": 1, "b": 2, "c": 3}]
    assert warnings(t) == ["Cannot merge non-object types"]


async def test_manual_merged_whole_messages(registry):
    msgs = [{"payload": 1, "topic": "f"}, {"payload": 2, "foo": "b"}, {"payload": 3, "bar": "c"}]
    out, _ = await run(manual(build="merged", count="4", propertyType="full", property=""), registry, *msgs)
    assert out[0]["payload"] == {"payload": 3, "topic": "f", "foo": "b", "bar": "c"}


async def test_manual_array_of_whole_messages(registry):
    msgs = [{"payload": 1, "topic": "a", "_msgid": "m1"}, {"payload": 2, "_msgid": "m2"}]
    out, _ = await run(manual(build="array", count="2", propertyType="full"), registry, *msgs)
    assert out[0]["payload"] == msgs and out[0]["topic"] == "a"


async def test_manual_property_path_is_read_and_written(registry):
    out, _ = await run(
        manual(build="array", count="2", property="x.y"),
        registry,
        {"x": {"y": 1}, "payload": "p1"},
        {"x": {"y": 2}, "payload": "p2"},
    )
    assert out[0]["x"] == {"y": [1, 2]} and out[0]["payload"] == "p2"


async def test_msg_complete_sends_now_and_is_removed(registry):
    out, _ = await run(
        manual(build="array"),
        registry,
        {"payload": 1},
        {"payload": 2, "complete": True},
        {"payload": 3, "complete": True},
    )
    assert [m["payload"] for m in out] == [[1, 2], [3]]
    assert all("complete" not in m for m in out)


async def test_msg_complete_without_a_key_sends_the_object_so_far(registry):
    out, _ = await run(manual(build="object"), registry, {"payload": 1, "topic": "a"}, {"complete": True})
    assert [m["payload"] for m in out] == [{"a": 1}]


async def test_msg_reset_drops_the_pending_group(registry):
    out, _ = await run(
        manual(build="array", count="2"),
        registry,
        {"payload": 1},
        {"reset": True},
        {"payload": 2},
        {"payload": 3},
    )
    assert [m["payload"] for m in out] == [[2, 3]]


async def test_timeout_sends_what_arrived(registry):
    async with FlowTester(flows_for(manual(build="array", timeout="2")), registry, virtual_time=True) as t:
        t.inject("j", {"payload": 1})
        await t.advance(1)
        t.inject("j", {"payload": 2})
        await t.advance(0.9)
        assert t.outputs("j")[0] == []
        await t.advance(0.2)
        assert t.payloads("j") == [[1, 2]]
        t.inject("j", {"payload": 3})
        await t.advance(2.1)
        assert t.payloads("j") == [[1, 2], [3]]


async def test_restart_timeout_extends_the_wait(registry):
    async with FlowTester(flows_for(manual(build="array", timeout="2")), registry, virtual_time=True) as t:
        t.inject("j", {"payload": 1})
        await t.advance(1.5)
        t.inject("j", {"payload": 2, "restartTimeout": True})
        await t.advance(1.5)
        assert t.outputs("j")[0] == []
        await t.advance(0.6)
        assert t.payloads("j") == [[1, 2]]


async def test_accumulate_sends_every_subsequent_message(registry):
    msgs = [
        {"payload": 1, "topic": "a"},
        {"payload": 2, "topic": "b"},
        {"payload": 3, "topic": "c"},
        {"payload": 4, "topic": "a", "complete": True},
        {"payload": 5, "topic": "z"},
    ]
    out, _ = await run(manual(build="object", count="2", accumulate=True), registry, *msgs)
    assert [m["payload"] for m in out] == [
        {"a": 1, "b": 2},
        {"a": 1, "b": 2, "c": 3},
        {"a": 4, "b": 2, "c": 3},
    ]


async def test_blank_count_uses_parts_when_useparts_is_absent(registry):
    # flows from Node-RED 3.x have no useparts: msg.parts (count, index, id) are used
    j = manual(build="array")
    del j["useparts"]
    msgs = [{"payload": "b", "parts": parts("g", 1, 2)}, {"payload": "a", "parts": parts("g", 0, 2)}]
    out, _ = await run(j, registry, *msgs)
    assert [m["payload"] for m in out] == [["b", "a"]]


async def test_useparts_false_ignores_parts(registry):
    msgs = [
        {"payload": 1, "parts": parts("g", 1, 2)},
        {"payload": 2, "parts": parts("g", 0, 2)},
        {"payload": 3, "complete": True},
    ]
    out, _ = await run(manual(build="array", useparts=False), registry, *msgs)
    assert [m["payload"] for m in out] == [[1, 2, 3]]
    assert "parts" not in out[0]


async def test_useparts_false_keeps_the_outer_parts_of_a_nested_sequence(registry):
    outer = parts("outer", 0, 1)
    msgs = [{"payload": i, "topic": f"k{i}", "parts": parts("g", i, 2, parts=outer)} for i in range(2)]
    out, _ = await run(manual(build="object", count="2"), registry, *msgs)
    assert out[0]["payload"] == {"k0": 0, "k1": 1} and out[0]["parts"] == outer


# ----- reduce mode -----------------------------------------------------------------------------------------
def reduce(**props):
    return join(mode="reduce", **props)


def seq(values, pid="g", start=0):
    return [{"payload": v, "parts": parts(pid, start + i, len(values))} for i, v in enumerate(values)]


async def test_reduce_sum_with_fixup_average(registry):
    msgs = seq([2, 1, 6])
    out, _ = await run(
        reduce(reduceExp="$A+payload", reduceInit="0", reduceInitType="num", reduceFixup="$A/$N"),
        registry,
        msgs[1],
        msgs[2],
        msgs[0],
    )
    assert [m["payload"] for m in out] == [3]
    assert out[0]["parts"]["index"] == 2  # the last message of the sequence, as Node-RED


async def test_reduce_to_undefined_leaves_the_payload_absent_and_null_stays_null(registry):
    out, _ = await run(
        reduce(reduceExp="payload.nothing", reduceInit="0", reduceInitType="num"), registry, *seq([1, 2])
    )
    assert "payload" not in out[0] and out[0]["parts"]["index"] == 1
    out, _ = await run(reduce(reduceExp="null", reduceInit="0", reduceInitType="num"), registry, *seq([1, 2]))
    assert out[0]["payload"] is None
    fixup = reduce(reduceExp="$A+payload", reduceInit="0", reduceInitType="num", reduceFixup="$A.nothing")
    out, _ = await run(fixup, registry, *seq([1, 2]))
    assert "payload" not in out[0]


async def test_reduce_sees_index_and_count_and_can_run_right_to_left(registry):
    exp = '$A & $string($I) & "/" & $string($N) & payload & ";"'
    out, _ = await run(reduce(reduceExp=exp, reduceInit="", reduceInitType="str"), registry, *seq(list("ab")))
    assert out[0]["payload"] == "0/2a;1/2b;"
    out, _ = await run(
        reduce(reduceExp="$append($A, payload)", reduceInit="[]", reduceInitType="json", reduceRight=True),
        registry,
        *seq(list("abc")),
    )
    assert out[0]["payload"] == ["c", "b", "a"]


async def test_reduce_init_from_jsonata_and_passes_messages_without_parts(registry):
    out, _ = await run(
        reduce(reduceExp="$A*payload", reduceInit="1+1", reduceInitType="jsonata"),
        registry,
        {"payload": "plain"},
        *seq([3]),
    )
    assert [m["payload"] for m in out] == ["plain", 6]


async def test_reduce_error_goes_to_catch_with_the_last_message(registry):
    catch = [node("c", "catch", [["co"]], scope=None), node("co", "junction", [[]])]
    out, t = await run(
        reduce(reduceExp="$A+payload", reduceInit="0", reduceInitType="num"),
        registry,
        *seq([1, "x"]),
        extra=catch,
    )
    assert out == []
    caught = t.outputs("co")[0]
    assert len(caught) == 1 and caught[0]["payload"] == "x"


# ----- done and redeploy -------------------------------------------------------------------------------------
async def test_done_fires_for_every_message_when_the_group_completes(registry):
    complete = [node("c", "complete", [["co"]], scope=["j"]), node("co", "junction", [[]])]
    async with FlowTester(flows_for(manual(build="array", count="3"), complete), registry) as t:
        t.inject("j", {"payload": 1})
        t.inject("j", {"payload": 2})
        await t.idle()
        assert t.outputs("co")[0] == []
        t.inject("j", {"payload": 3})
        await t.idle()
        assert [m["payload"] for m in t.outputs("co")[0]] == [1, 2, 3]
        t.inject("j", {"payload": 4})
        t.inject("j", {"reset": True})
        await t.idle()
        assert [m.get("payload") for m in t.outputs("co")[0]][3:] == [4, None]


async def test_pending_group_survives_a_nodes_redeploy_of_other_nodes(registry):
    flows = flows_for(manual(build="array", count="2"), [node("x", "junction", [[]], name="before")])
    async with FlowTester(flows, registry) as t:
        t.inject("j", {"payload": 1})
        await t.idle()
        changed = copy.deepcopy(flows)
        changed[-1]["name"] = "after"
        await t.deploy(changed, "nodes")
        t.inject("j", {"payload": 2})
        await t.idle()
        assert t.payloads("j") == [[1, 2]]


# ----- config errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "props, needle",
    [
        ({"mode": "reduce", "reduceExp": ""}, "reduceExp"),
        ({"mode": "reduce", "reduceExp": "$A +"}, "JSONata"),
        ({"mode": "reduce", "reduceExp": "$A", "reduceFixup": "(("}, "JSONata"),
        ({"mode": "custom", "joinerType": "bin", "joiner": "[1,"}, "joiner"),
        ({"mode": "custom", "joinerType": "bin", "joiner": "7"}, "joiner"),
        ({"mode": "merge"}, "mode"),
        ({"mode": "custom", "build": "set"}, "build"),
        ({"mode": "custom", "timeout": "soon"}, "timeout"),
    ],
)
async def test_bad_config_refuses_the_deploy(registry, props, needle):
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(flows_for(join(**props)), registry):
            pass
    assert needle in str(info.value)


# ----- property: auto join restores any order of parts ------------------------------------------------------
def make_registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in default_registry().types():
        reg.register(cls, default_registry().origin(cls.type))
    return reg


REGISTRY = make_registry()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.integers(-50, 50), min_size=1, max_size=15), data=st.data())
def test_property_auto_join_is_independent_of_arrival_order(items, data):
    order = data.draw(st.permutations(range(len(items))))
    msgs = [{"payload": items[i], "parts": parts("g", i, len(items), type="array", len=1)} for i in order]

    async def scenario():
        async with FlowTester(flows_for(join()), REGISTRY) as t:
            for m in msgs:
                t.inject("j", m)
            await t.idle()
            return t.payloads("j")

    assert asyncio.run(scenario()) == [items]
