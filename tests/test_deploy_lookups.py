"""A deploy looks up each tab's owner and role once, not once per node, and still places every node."""

from __future__ import annotations

from collections import Counter

from sofiaflow.runtime.core.services import FLOW_OWNERS, PERMISSIONS
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.security.ownership import FlowOwnership
from sofiaflow.runtime.security.permissions import Permissions
from sofiaflow.runtime.testing import FlowTester

ROLES = {"ada": "administrator", "dev1": "developer"}
PER_TAB = 150


def _flows() -> list[dict]:
    tabs = [{"id": tab, "type": "tab", "label": tab} for tab in ("t-ada", "t-dev1", "t-none")]
    nodes = [
        {"id": f"n-{tab['id']}-{i}", "type": "junction", "z": tab["id"], "wires": [[]]}
        for tab in tabs
        for i in range(PER_TAB)
    ]
    return tabs + nodes


async def test_roles_are_looked_up_once_per_tab_and_every_node_is_placed():
    asked: Counter[str] = Counter()

    def role_of(user: str) -> str | None:
        asked[user] += 1
        return ROLES.get(user)

    db = connect("sqlite://")
    owners = FlowOwnership(db)
    owners.share("t-ada", owner="ada")
    owners.share("t-dev1", owner="dev1")
    t = FlowTester(_flows())
    t.engine.services[FLOW_OWNERS] = owners
    t.engine.services[PERMISSIONS] = Permissions(db, role_of, lambda _name: None)
    async with t:
        for i in range(PER_TAB):
            assert (t.node(f"n-t-ada-{i}").tenant, t.node(f"n-t-ada-{i}").owner) == (None, "ada")
            assert (t.node(f"n-t-dev1-{i}").tenant, t.node(f"n-t-dev1-{i}").owner) == ("dev1", "dev1")
            assert (t.node(f"n-t-none-{i}").tab, t.node(f"n-t-none-{i}").owner) == ("t-none", None)
    assert asked == Counter({"ada": 1, "dev1": 1})
