"""window node: keyed tumbling, sliding, count and session windows against the brute-force evaluator in
tests/cep_reference.py (state directly, and the node through FlowTester with event time and with arrival time on
the virtual clock), bounds, late events, bad input and redeploys."""

from __future__ import annotations

import copy
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.cep.aggregates import NAMES
from sofiaflow.nodes.cep.state import Spec, WindowStore
from sofiaflow.nodes.cep.window import WindowNode
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester
from tests.cep_reference import Reference, Step, sort_key

TAB = {"id": "t1", "type": "tab", "label": "cep"}
KINDS = [
    ("tumbling", "time", "event"),
    ("tumbling", "time", "close"),
    ("tumbling", "count", "event"),
    ("tumbling", "count", "close"),
    ("sliding", "time", "event"),
    ("sliding", "count", "event"),
    ("session", "time", "event"),
    ("session", "time", "close"),
]


@pytest.fixture
def reg(registry):
    assert "window" in registry  # installed through the sofiaflow.nodes entry points
    return registry


# ----- comparing outputs --------------------------------------------------------------------------------------
def same_value(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def same(out, expected) -> bool:
    return (
        len(out) == len(expected)
        and all(
            same_value(x, y) for o, e in zip(out, expected, strict=True) for x, y in zip(o, e, strict=True)
        )
        and all(len(o) == len(e) for o, e in zip(out, expected, strict=True))
    )


def expected_batch(step: Step) -> list:
    return [*step.closed, *([step.event] if step.event else [])]


# ----- random streams -------------------------------------------------------------------------------------------
values = st.one_of(st.integers(-20, 20), st.integers(-40, 40).map(lambda x: x / 4))


@st.composite
def configs(draw, kinds=KINDS):
    window, measure, emit = draw(st.sampled_from(kinds))
    return {
        "window": window,
        "measure": measure,
        "emit": emit,
        "size": draw(st.integers(1, 5)) if measure == "count" else draw(st.integers(1, 40)),
        "gap": draw(st.integers(1, 20)),
        "aggregate": draw(st.sampled_from(NAMES)),
        "percentile": draw(st.sampled_from([0, 25, 50, 90, 100, 33.3])),
        "lateness": draw(st.sampled_from([0, 0, 5, 17])),
    }


@st.composite
def streams(draw, max_size=40):
    """(key, time ms, value): times move forward in steps, some come back a little (out of order), some repeat."""
    n = draw(st.integers(1, max_size))
    newest, out = 0, []
    for _ in range(n):
        key = draw(st.sampled_from(["a", "b", "c"]))
        step = draw(st.sampled_from([0, 0, 1, 3, 7, 15, 30]))
        back = draw(st.sampled_from([0, 0, 0, 2, 6, 25]))
        newest += step
        out.append((key, max(0, newest - back), draw(values)))
    return out


def spec_of(cfg: dict, **over) -> Spec:
    return Spec(
        window=cfg["window"],
        measure=cfg["measure"],
        size=cfg["size"],
        aggregate=cfg["aggregate"],
        gap=cfg["gap"],
        percentile=cfg["percentile"],
        emit=cfg["emit"],
        lateness=over.get("lateness", cfg["lateness"]),
    )


def reference_of(cfg: dict, arrival: bool = False) -> Reference:
    return Reference(
        cfg["window"],
        cfg["measure"],
        cfg["size"],
        cfg["aggregate"],
        gap=cfg["gap"],
        percentile=cfg["percentile"],
        emit=cfg["emit"],
        lateness=0 if arrival else cfg["lateness"],
        arrival=arrival,
    )


# ----- the state against the reference --------------------------------------------------------------------------
SESSION = {"window": "session", "measure": "time", "emit": "close", "size": 1, "gap": 10, "aggregate": "sum"}


@settings(max_examples=600, deadline=None)
@given(configs(), streams())
@example(  # an event exactly `gap` before a session starts opens a session of its own
    {**SESSION, "percentile": 50, "lateness": 17}, [("a", 20, 1), ("a", 10, 2), ("a", 100, 4)]
)
@example(  # ... and one exactly `gap` after it ends too
    {**SESSION, "percentile": 50, "lateness": 0}, [("a", 20, 1), ("a", 30, 2), ("a", 100, 4)]
)
def test_state_agrees_with_the_reference_for_event_time(cfg, events):
    store = WindowStore(spec_of(cfg))
    ref = reference_of(cfg)
    for i, (key, t, value) in enumerate(events):
        step = ref.step(i, key, t, value)
        got = store.add(key, t, value)
        if step.late:
            assert got is None, (i, key, t)
            continue
        assert got is not None, (i, key, t)
        closed = sorted((tuple(e) for e in got if e.closed and cfg["emit"] == "close"), key=sort_key)
        rest = [tuple(e) for e in got if not (e.closed and cfg["emit"] == "close")]
        assert same(closed + rest, expected_batch(step)), (i, key, t, got, step)


@settings(max_examples=300, deadline=None)
@given(configs(), streams())
def test_state_counts_exactly_the_late_events(cfg, events):
    store = WindowStore(spec_of(cfg))
    ref = reference_of(cfg)
    late = sum(ref.step(i, k, t, v).late for i, (k, t, v) in enumerate(events))
    for k, t, v in events:
        store.add(k, t, v)
    assert store.late == late


@settings(max_examples=300, deadline=None)
@given(configs(), streams())
def test_state_agrees_with_the_reference_for_arrival_time(cfg, events):
    ordered = sorted(events, key=lambda e: e[1])  # a clock never goes back
    store = WindowStore(spec_of(cfg, lateness=0), arrival=True)
    ref = reference_of(cfg, arrival=True)
    for i, (key, t, value) in enumerate(ordered):
        step = ref.step(i, key, t, value)
        got = store.add(key, t, value) or []
        closed = sorted((tuple(e) for e in got if cfg["emit"] == "close"), key=sort_key)
        rest = [tuple(e) for e in got if cfg["emit"] != "close"]
        assert same(closed + rest, expected_batch(step)), (i, key, t, got, step)
    final = sorted((tuple(e) for e in store.close_due(math.inf)), key=sort_key)
    assert same(final, ref.finish())


# ----- the node against the reference ---------------------------------------------------------------------------
def window_node(id_="w", wires=("out",), **props):
    node = {
        "id": id_,
        "type": "window",
        "z": "t1",
        "name": "",
        "x": 100,
        "y": 100,
        "key": "topic",
        "keyType": "msg",
        "units": "milliseconds",
        "wires": [list(wires)],
    }
    node.update(props)
    return node


def flow_of(**props):
    return [
        TAB,
        window_node(**props),
        {"id": "out", "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[]]},
    ]


def node_batch(t, cfg) -> list:
    """What the node sent since the last clear, as reference outputs (closed windows sorted)."""
    sent = t.outputs("w")[0] if t.outputs("w") else []
    outs = [
        (m["window"]["key"], m["payload"], m["window"]["start"], m["window"]["end"], m["window"]["count"])
        for m in sent
    ]
    if cfg["emit"] == "close":
        return sorted(((*o, True) for o in outs), key=sort_key)
    return [(*o, m["window"]["closed"]) for o, m in zip(outs, sent, strict=True)]


def node_props(cfg: dict, arrival: bool) -> dict:
    return {
        "window": cfg["window"],
        "measure": cfg["measure"],
        "emit": cfg["emit"],
        "size": cfg["size"],
        "gap": cfg["gap"],
        "aggregate": cfg["aggregate"],
        "percentile": cfg["percentile"],
        "timeSource": "arrival" if arrival else "msg",
        "timeProperty": "ts",
        "late": "include",
        "lateness": cfg["lateness"] / 1000,
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=configs(), events=streams(max_size=25))
async def test_node_agrees_with_the_reference_for_event_time(reg, cfg, events):
    ref = reference_of(cfg)
    late = 0
    async with FlowTester(flow_of(**node_props(cfg, False)), reg, virtual_time=True) as t:
        for i, (key, ts, value) in enumerate(events):
            step = ref.step(i, key, ts, value)
            late += step.late
            t.clear()
            t.inject("w", {"topic": key, "payload": value, "ts": ts})
            await t.idle()
            assert same(node_batch(t, cfg), [] if step.late else expected_batch(step)), (i, key, ts, step)
        assert t.node("w").counters["late"] == late
        assert t.errors() == []


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cfg=configs(), events=streams(max_size=25))
async def test_node_agrees_with_the_reference_for_arrival_time(reg, cfg, events):
    ordered = sorted(events, key=lambda e: e[1])
    ref = reference_of(cfg, arrival=True)
    async with FlowTester(flow_of(**node_props(cfg, True)), reg, virtual_time=True) as t:
        origin = round(t.clock.now() * 1000)
        for i, (key, ts, value) in enumerate(ordered):
            at = origin + ts
            # the reference works on the times the node sees: the clock's, in whole ms
            step = ref.step(i, key, at, value)
            t.clear()
            await t.advance(at / 1000 - t.clock.now())
            assert round(t.clock.now() * 1000) == at
            t.inject("w", {"topic": key, "payload": value})
            await t.idle()
            assert same(node_batch(t, cfg), expected_batch(step)), (i, key, at, step)
        t.clear()
        await t.advance(3600)
        assert same(node_batch(t, cfg), ref.finish())
        assert t.errors() == []


def test_arrival_time_forgets_keys_whose_windows_all_closed():
    spec = Spec("tumbling", "time", 100, "avg", emit="close")
    store = WindowStore(spec, arrival=True)
    for i in range(50):
        store.add(f"k{i}", 10, i)
    assert len(store.keys) == 50
    closed = store.close_due(100)
    assert [e.value for e in closed] == list(range(50))
    assert store.keys == {} and store.next_due() is None


# ----- configuration and bad input --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("props", "text"),
    [
        ({"size": 0}, "size: 0.0 must be a number above 0"),
        ({"size": "abc"}, "size"),
        ({"window": "session", "gap": -1}, "gap: -1.0 must be a number above 0"),
        ({"window": "session", "measure": "count"}, "session windows are time windows"),
        ({"window": "sliding", "emit": "close"}, "sliding window ends with every event"),
        ({"measure": "count", "size": 2.5}, "not a whole number of events"),
        ({"measure": "count", "size": 20, "maxEvents": 10}, "over maxEvents"),
        ({"aggregate": "median"}, "aggregate"),
        ({"aggregate": "percentile", "percentile": 150}, "percentile: 150.0 is not between 0 and 100"),
        ({"maxKeys": 0}, "maxKeys: 0 must be at least 1"),
        ({"timeSource": "msg", "timeProperty": ""}, "timeProperty"),
        ({"late": "include", "timeSource": "msg", "lateness": -3}, "lateness: -3.0 seconds is negative"),
        ({"key": "$$$(", "keyType": "jsonata"}, "key"),
    ],
)
async def test_bad_configuration_refuses_the_deploy_naming_the_field(reg, props, text):
    with pytest.raises(FlowValidationError, match=text):
        async with FlowTester(flow_of(**props), reg, virtual_time=True):
            pass


async def test_values_and_times_that_do_not_fit_fail_the_message_clearly(reg):
    flow = flow_of(aggregate="avg", timeSource="msg", timeProperty="ts", emit="event")
    async with FlowTester(flow, reg, virtual_time=True) as t:
        t.inject("w", {"topic": "a", "payload": "hot", "ts": 5})
        t.inject("w", {"topic": "a", "payload": True, "ts": 5})
        t.inject("w", {"topic": "a", "payload": 3, "ts": "yesterday"})
        t.inject("w", {"topic": "a", "payload": 3})
        await t.idle()
        messages = [e["msg"] for e in t.errors()]
        assert messages == [
            "msg.payload is 'hot', not a number: the avg aggregate needs numbers",
            "msg.payload is True, not a number: the avg aggregate needs numbers",
            "msg.ts is 'yesterday': the event time must be epoch milliseconds or an ISO 8601 date",
            "msg.ts is None: the event time must be epoch milliseconds or an ISO 8601 date",
        ]
        t.inject("w", {"topic": "a", "payload": 3, "ts": "2026-05-01T08:00:00Z"})
        t.inject("w", {"topic": "a", "payload": 5, "ts": 1777622400001})  # 1 ms later
        await t.idle()
        assert t.payloads("out") == [3, 4]
        assert t.outputs("out")[0][1]["window"]["count"] == 2


async def test_count_first_last_and_distinct_take_any_value_and_keys_may_be_objects(reg):
    flow = flow_of(aggregate="distinct", key="payload.device", property="payload.v", emit="event")
    async with FlowTester(flow, reg, virtual_time=True) as t:
        for v in ["on", "off", "on", {"x": 1}, {"x": 1}]:
            t.inject("w", {"payload": {"device": {"id": 7}, "v": v}})
        await t.idle()
        assert t.payloads("out") == [1, 2, 2, 3, 3]
        assert t.outputs("out")[0][0]["window"]["key"] == '{"id":7}'


# ----- bounds and late events -----------------------------------------------------------------------------------
async def test_over_max_keys_the_least_recent_key_is_dropped_counted_and_warned_once(reg):
    flow = flow_of(aggregate="count", maxKeys=3, emit="close", size=1000)
    async with FlowTester(flow, reg, virtual_time=True) as t:
        for key in ["a", "b", "c", "a", "d", "e"]:
            t.inject("w", {"topic": key, "payload": 1})
        await t.idle()
        node = t.node("w")
        assert node.counters == {"late": 0, "evictedKeys": 2, "evictedEvents": 0}
        assert list(node.store.keys) == ["a", "d", "e"]
        warnings = [e["msg"] for e in t.logs if e["level"] == "warn"]
        assert len(warnings) == 1 and "maxKeys (3)" in warnings[0]
        await t.advance(1)
        assert sorted((m["topic"], m["payload"]) for m in t.outputs("out")[0]) == [
            ("a", 2),
            ("d", 1),
            ("e", 1),
        ]


async def test_over_max_events_the_oldest_event_is_dropped_counted_and_warned_once(reg):
    for window in ("tumbling", "sliding", "session"):
        flow = flow_of(window=window, aggregate="sum", maxEvents=3, emit="event", size=1000, gap=1000)
        async with FlowTester(flow, reg, virtual_time=True) as t:
            for v in [1, 2, 4, 8, 16]:
                t.inject("w", {"topic": "a", "payload": v})
            await t.idle()
            assert t.payloads("out") == [1, 3, 7, 14, 28], window
            assert t.node("w").counters["evictedEvents"] == 2
            assert len([e for e in t.logs if e["level"] == "warn" and "maxEvents (3)" in e["msg"]]) == 1


async def test_late_events_are_dropped_and_counted_or_included_within_the_allowed_lateness(reg):
    for late, lateness, expected, dropped in (("drop", 5, [10, 15], 2), ("include", 0.004, [10, 15, 17], 1)):
        flow = flow_of(aggregate="sum", size=100, emit="event", timeSource="msg", timeProperty="ts")
        flow[1].update(late=late, lateness=lateness)
        async with FlowTester(flow, reg, virtual_time=True) as t:
            for ts, v in [(50, 10), (60, 5), (56, 2), (55, 9)]:  # 4 ms and 5 ms late
                t.inject("w", {"topic": "a", "payload": v, "ts": ts})
            await t.idle()
            assert t.payloads("out") == expected
            assert t.node("w").counters["late"] == dropped
            assert "1 keys, " in t.node("w").last_status["text"]


# ----- redeploys ------------------------------------------------------------------------------------------------
async def test_windows_and_timers_survive_a_redeploy_of_other_nodes(reg):
    base = flow_of(aggregate="avg", size=60, units="seconds", emit="close")
    base += [
        {"id": "near", "type": "junction", "z": "t1", "name": "v0", "x": 5, "y": 5, "wires": [[]]},
        {"id": "t2", "type": "tab", "label": "elsewhere"},
        {"id": "far", "type": "junction", "z": "t2", "name": "v0", "x": 5, "y": 5, "wires": [[]]},
    ]
    async with FlowTester(base, reg, virtual_time=True) as t:
        await t.advance(60 - (t.clock.now() % 60) + 1)  # just after a minute starts
        t.inject("w", {"topic": "dev1", "payload": 10})
        t.inject("w", {"topic": "dev1", "payload": 20})
        window = t.node("w")
        for mode, changed_id, name in (("nodes", "near", "v1"), ("flows", "far", "v2")):
            changed = copy.deepcopy(t.flows)
            next(n for n in changed if n["id"] == changed_id)["name"] = name
            result = await t.deploy(changed, mode)
            assert (result.stopped, result.started) == (1, 1)
        assert t.node("w") is window
        t.inject("w", {"topic": "dev1", "payload": 30})
        await t.advance(60)
        assert [(m["topic"], m["payload"], m["window"]["count"]) for m in t.outputs("w")[0]] == [
            ("dev1", 20, 3)
        ]
        assert t.errors() == []


async def test_a_full_redeploy_starts_afresh(reg):
    base = flow_of(aggregate="count", size=60, units="seconds", emit="close")
    async with FlowTester(base, reg, virtual_time=True) as t:
        await t.advance(60 - (t.clock.now() % 60) + 1)
        t.inject("w", {"topic": "dev1", "payload": 1})
        await t.deploy(copy.deepcopy(base), "full")
        t.inject("w", {"topic": "dev1", "payload": 1})
        await t.advance(60)
        assert [m["payload"] for m in t.outputs("w")[0]] == [1]


def test_the_editor_form_offers_choices_with_help_texts():
    schema = WindowNode.Config.model_json_schema()["properties"]
    assert schema["window"]["enum"] == ["tumbling", "sliding", "session"]
    assert schema["aggregate"]["enum"] == list(NAMES)
    assert schema["emit"]["enum"] == ["event", "close"] and schema["late"]["enum"] == ["drop", "include"]
    assert all(schema[name].get("description") for name in ("key", "size", "gap", "lateness", "maxKeys"))
    assert "Windows" in WindowNode.help and "Bounds" in WindowNode.help
