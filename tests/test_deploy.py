"""Deploy: revisions, stale deploys, refused flow sets, and what each deploy type restarts."""

from __future__ import annotations

import copy

import pytest

from sofiaflow.runtime.errors import FlowValidationError, StaleRevisionError
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.settings import Settings
from sofiaflow.runtime.testing import FlowTester

TAB1 = {"id": "t1", "type": "tab", "label": "one"}
TAB2 = {"id": "t2", "type": "tab", "label": "two"}


def n(id_, type_, wires=(), z="t1", **props):
    return {"id": id_, "type": type_, "z": z, "x": 10, "y": 10, "wires": [list(w) for w in wires], **props}


def base_flows():
    return [
        TAB1,
        TAB2,
        n("c1", "test counter", [["o1"]]),
        n("o1", "junction", [[]]),
        n("c2", "test counter", [["o2"]], z="t2"),
        n("o2", "junction", [[]], z="t2"),
    ]


async def _feed(t, node_id, count=1):
    for _ in range(count):
        t.inject(node_id, {"payload": 0})
    await t.idle()


async def test_nodes_mode_restarts_only_changed_nodes(registry):
    flows = base_flows()
    async with FlowTester(flows, registry) as t:
        await _feed(t, "c1", 2)
        await _feed(t, "c2", 3)
        c1_before, c2_before = t.node("c1"), t.node("c2")
        changed = copy.deepcopy(flows)
        changed[4]["name"] = "renamed"  # c2 changes
        changed[2]["x"] = 500  # c1 only moves
        result = await t.deploy(changed, "nodes")
        assert result.stopped == 1 and result.started == 1
        assert t.node("c1") is c1_before and t.node("c1").seen == 2
        assert t.node("c2") is not c2_before and t.node("c2").seen == 0
        # context survives the restart of a changed node
        await _feed(t, "c2")
        assert t.payloads("o2")[-1] == {"seen": 1, "total": 4}


async def test_flows_mode_restarts_the_touched_tab_only(registry):
    flows = base_flows()
    async with FlowTester(flows, registry) as t:
        c1, c2 = t.node("c1"), t.node("c2")
        changed = copy.deepcopy(flows)
        changed[4]["name"] = "renamed"
        changed.append(n("extra", "junction", [[]], z="t2"))
        await t.deploy(changed, "flows")
        assert t.node("c1") is c1
        assert t.node("c2") is not c2
        assert t.node("o2") is not None


async def test_full_mode_restarts_everything(registry):
    flows = base_flows()
    async with FlowTester(flows, registry) as t:
        c1 = t.node("c1")
        await t.deploy(copy.deepcopy(flows), "full")
        assert t.node("c1") is not c1


async def test_rewired_node_keeps_running_with_new_wires(registry):
    flows = base_flows() + [n("o3", "junction", [[]])]
    async with FlowTester(flows, registry) as t:
        c1 = t.node("c1")
        changed = copy.deepcopy(flows)
        changed[2]["wires"] = [["o3"]]
        await t.deploy(changed, "nodes")
        assert t.node("c1") is c1
        await _feed(t, "c1")
        assert t.payloads("o3") == [{"seen": 1, "total": 1}]


async def test_removed_node_is_closed_and_its_context_deleted(registry):
    flows = base_flows()
    async with FlowTester(flows, registry) as t:
        await _feed(t, "c1")
        changed = [f for f in copy.deepcopy(flows) if f["id"] != "c1"]
        await t.deploy(changed, "nodes")
        assert "c1" not in t.engine.nodes
        assert t.contexts.stores["memory"].get_scope("node:t1:c1") is None


async def test_invalid_flow_set_is_refused_whole_and_old_flows_keep_running(registry):
    flows = base_flows()
    async with FlowTester(flows, registry) as t:
        rev = t.deployer.rev
        bad = copy.deepcopy(flows) + [n("x", "junction", [["nope"]]), n("x", "junction", [[]])]
        with pytest.raises(FlowValidationError) as info:
            await t.deploy(bad, "full")
        assert len(info.value.problems) == 2
        assert t.deployer.rev == rev
        await _feed(t, "c1")
        assert t.payloads("o1") == [{"seen": 1, "total": 1}]


async def test_setup_failure_refuses_the_deploy(registry):
    flows = base_flows()
    async with FlowTester(flows, registry) as t:
        bad = copy.deepcopy(flows) + [n("lc", "link call", [[]], linkType="static", links=[], timeout="5")]
        # a link call with no target is fine at setup; use a config error instead
        bad[-1]["timeout"] = {"not": "a number"}
        with pytest.raises(FlowValidationError):
            await t.deploy(bad, "full")
        assert "lc" not in t.engine.nodes


async def test_tab_with_a_node_that_cannot_run_is_not_started(registry):
    flows = base_flows() + [n("ui", "ui_button", [[]], z="t2")]  # a contrib node type not installed here
    async with FlowTester(flows, registry) as t:
        assert "c1" in t.engine.nodes
        assert "c2" not in t.engine.nodes
        assert any(
            p.node_id == "ui" and "'ui_button' is not installed" in p.message for p in t.deployer.problems
        )


async def test_disabled_nodes_and_tabs_do_not_run(registry):
    flows = base_flows()
    flows[1] = {**TAB2, "disabled": True}
    flows[2]["d"] = True
    async with FlowTester(flows, registry) as t:
        assert set(t.engine.nodes) == {"o1"}


async def test_stale_revision_is_refused(tmp_path, registry):
    rt = Runtime(Settings(data_dir=tmp_path), registry=registry)
    await rt.start()
    try:
        first = await rt.deploy(base_flows(), "full")
        await rt.deploy(base_flows() + [n("o9", "junction", [[]])], "full", rev=first.rev)
        with pytest.raises(StaleRevisionError):
            await rt.deploy(base_flows(), "full", rev=first.rev)
        assert "o9" in rt.engine.nodes
        assert len(rt.flowstore.history()) == 2
    finally:
        await rt.stop()


async def test_flows_credentials_and_persistent_context_survive_restart(tmp_path, registry):
    settings = Settings(data_dir=tmp_path, context_default="persistent")
    flows = base_flows()
    flows[2] = {**flows[2], "credentials": {"password": "s3cret"}}
    rt = Runtime(settings, registry=registry)
    await rt.start()
    await rt.deploy(flows, "full")
    node = rt.engine.nodes["c1"]
    assert node.credentials == {"password": "s3cret"}
    assert "credentials" not in rt.flows[2]
    node.context.set("total", 41)
    await rt.stop()
    assert b"s3cret" not in (tmp_path / "sofiaflow.db").read_bytes()

    rt2 = Runtime(settings, registry=registry)
    await rt2.start()
    try:
        assert rt2.flows == [
            f if f.get("id") != "c1" else {k: v for k, v in f.items() if k != "credentials"} for f in flows
        ]
        again = rt2.engine.nodes["c1"]
        assert again.credentials == {"password": "s3cret"}
        assert again.context.get("total") == 41
    finally:
        await rt2.stop()


async def test_persistent_store_selected_by_key_prefix(tmp_path, registry):
    settings = Settings(data_dir=tmp_path, context_prefixes={"keep.": "persistent"})
    rt = Runtime(settings, registry=registry)
    await rt.start()
    await rt.deploy(base_flows(), "full")
    g = rt.engine.global_context
    g.set("keep.count", 3)
    g.set("scratch", 1)
    g.set("#:(persistent)::explicit", "yes")
    await rt.stop()
    rt2 = Runtime(settings, registry=registry)
    await rt2.start()
    try:
        g2 = rt2.engine.global_context
        assert g2.get("keep.count") == 3
        assert g2.get("scratch") is None
        assert g2.get("#:(persistent)::explicit") == "yes"
    finally:
        await rt2.stop()


async def test_a_credentials_change_restarts_the_node_and_the_users_of_a_config_node(registry):
    broker = {"id": "b1", "type": "mqtt-broker", "broker": "127.0.0.1", "port": "1", "autoConnect": False}
    flows = base_flows() + [broker, n("in1", "mqtt in", [["o1"]], topic="a/b", broker="b1", qos="0")]
    async with FlowTester(flows, registry) as t:
        c1, b1, in1 = t.node("c1"), t.node("b1"), t.node("in1")
        same = copy.deepcopy(flows)
        same[-2]["credentials"] = {"user": "__PWRD__", "password": "__PWRD__"}  # unchanged markers
        await t.deploy(same, "nodes")
        assert t.node("b1") is b1 and t.node("in1") is in1
        changed = copy.deepcopy(flows)
        changed[-2]["credentials"] = {"user": "device-1", "password": "s3cret"}  # nothing else changes
        await t.deploy(changed, "nodes")
        assert t.node("b1") is not b1 and t.node("b1").credentials == {
            "user": "device-1",
            "password": "s3cret",
        }
        assert t.node("in1") is not in1  # it uses the broker
        assert t.node("c1") is c1


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("${WHERE}", "lab/1"), ("$(WHERE)", "lab/1"), ("${MISSING}", "${MISSING}"), ("plain", "plain")],
)
async def test_a_property_naming_an_env_variable_is_built_with_its_value(registry, topic, expected):
    tab = {**TAB1, "env": [{"name": "WHERE", "value": "lab/1", "type": "str"}]}
    flows = [tab, {"id": "i", "type": "inject", "z": "t1", "topic": topic, "props": [], "wires": [[]]}]
    async with FlowTester(flows, registry) as t:
        assert t.engine.nodes["i"].config.topic == expected
        assert t.deployer.flows[1]["topic"] == topic  # the flows keep what was written
