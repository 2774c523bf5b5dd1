"""Where a node runs: `node.tab`, `node.owner` and `node.tenant`, placed once by the deployer."""

from __future__ import annotations

from sofiaflow.runtime.core.services import FLOW_OWNERS, PERMISSIONS
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.security.ownership import FlowOwnership
from sofiaflow.runtime.security.permissions import Permissions
from sofiaflow.runtime.testing import FlowTester

ROLES = {"ada": "administrator", "dev1": "developer"}


def _flows() -> list[dict]:
    tabs = [{"id": tab, "type": "tab", "label": tab} for tab in ("t-ada", "t-dev1", "t-none")]
    nodes = [{"id": f"n-{tab['id']}", "type": "junction", "z": tab["id"], "wires": [[]]} for tab in tabs]
    subflow = [
        {"id": "sf", "type": "subflow", "name": "sf", "in": [{"wires": [{"id": "sf-j"}]}], "out": []},
        {"id": "sf-j", "type": "junction", "z": "sf", "wires": [[]]},
        {"id": "inst", "type": "subflow:sf", "z": "t-dev1", "wires": []},
    ]
    config = [{"id": "cfg", "type": "mqtt-broker", "broker": "localhost", "port": "1883"}]
    return tabs + nodes + subflow + config


def _owned_tester() -> FlowTester:
    db = connect("sqlite://")
    owners = FlowOwnership(db)
    owners.share("t-ada", owner="ada")
    owners.share("t-dev1", owner="dev1")
    t = FlowTester(_flows())
    t.engine.services[FLOW_OWNERS] = owners
    t.engine.services[PERMISSIONS] = Permissions(db, ROLES.get, lambda _name: None)
    return t


def _where(t: FlowTester, node_id: str) -> tuple[str | None, str | None, str | None]:
    node = t.node(node_id)
    return node.tab, node.owner, node.tenant


async def test_a_developers_node_acts_for_its_owner():
    async with _owned_tester() as t:
        assert _where(t, "n-t-dev1") == ("t-dev1", "dev1", "dev1")


async def test_an_administrators_node_has_an_owner_and_no_tenant():
    async with _owned_tester() as t:
        assert _where(t, "n-t-ada") == ("t-ada", "ada", None)


async def test_an_ownerless_tab_has_neither_owner_nor_tenant():
    async with _owned_tester() as t:
        assert _where(t, "n-t-none") == ("t-none", None, None)


async def test_a_node_inside_a_subflow_instance_is_on_the_instances_tab():
    async with _owned_tester() as t:
        inner = next(n for n in t.deployer.running.values() if n.alias == "sf-j")
        assert (inner.tab, inner.owner, inner.tenant) == ("t-dev1", "dev1", "dev1")


async def test_a_config_node_is_on_no_tab():
    async with _owned_tester() as t:
        assert _where(t, "cfg") == (None, None, None)


async def test_without_ownership_nodes_have_a_tab_and_no_owner():
    async with FlowTester(_flows()) as t:
        assert _where(t, "n-t-dev1") == ("t-dev1", None, None)


async def test_a_developers_global_context_is_their_own():
    async with _owned_tester() as t:
        t.node("n-t-dev1").global_.set("k", 1)
        assert t.node("n-t-ada").global_.get("k") is None
        assert t.engine.global_for("dev1").get("k") == 1


async def test_a_bare_engine_builds_the_ontology_services_from_the_ones_it_has():
    from sofiaflow.runtime.core.services import ONTOLOGY_DATA, ONTOLOGY_EVENTS

    async with FlowTester([]) as t:
        assert t.engine.services.get(ONTOLOGY_DATA) is None  # no registry nor store: nothing to build it from
        hub = t.engine.services.require(ONTOLOGY_EVENTS)
        assert t.engine.services.require(ONTOLOGY_EVENTS) is hub
