"""The SSAP gateway nodes serve every device of the platform: only flows without a tenant (administrators'
and ownerless ones) may hold them; a developer's flow with one is refused at deploy, naming the node."""

from __future__ import annotations

import pytest

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.http.node_routes import NodeRoutes
from sofiaflow.runtime.security.ownership import FlowOwnership
from sofiaflow.runtime.security.permissions import Permissions
from sofiaflow.runtime.testing import FlowTester

ROLES = {"ada": "administrator", "dev1": "developer"}
GATEWAYS = {
    "ssap-mqtt in": {"broker": "b", "topic": "/queue/message"},
    "ssap-rest in": {"url": "/iot-broker/rest"},
    "ssap process": {"broker": "b"},
}


def _owned_tester(registry, owner: str, type_: str) -> FlowTester:
    db = connect("sqlite://")
    owners = FlowOwnership(db)
    owners.share("t", owner=owner)
    flow = [
        {"id": "t", "type": "tab"},
        {"id": "g", "type": type_, "z": "t", "wires": [[]], **GATEWAYS[type_]},
    ]
    tester = FlowTester(flow, registry)
    tester.engine.services["flow-owners"] = owners
    tester.engine.services["permissions"] = Permissions(db, ROLES.get, lambda _name: None)
    tester.engine.services["http"] = NodeRoutes()
    return tester


@pytest.mark.parametrize("type_", sorted(GATEWAYS))
async def test_a_developers_flow_may_not_hold_an_ssap_gateway(registry, type_):
    with pytest.raises(FlowValidationError) as exc:
        async with _owned_tester(registry, "dev1", type_):
            pass
    text = str(exc.value)
    assert type_ in text and "every device of the platform" in text and "'dev1'" in text


@pytest.mark.parametrize("type_", sorted(GATEWAYS))
async def test_an_administrators_flow_may_hold_an_ssap_gateway(registry, type_):
    async with _owned_tester(registry, "ada", type_) as t:
        assert type(t.engine.nodes["g"]).type == type_
