"""Where a node runs, for tenancy: its tab, the tab's owner and the tenant it acts for.

The deployer places every node once, when it builds it (before `setup()`), from the ownership service: a node
on a tab (or inside a subflow instance on that tab) has that tab; a config node or a node of no tab has none.
The tenant is the owner, except for administrators' and ownerless tabs, which act for the platform (None).
Nodes read the answer as `node.tab`, `node.owner` and `node.tenant`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sofiaflow.runtime.core.services import FLOW_OWNERS, PERMISSIONS, Services

if TYPE_CHECKING:
    from sofiaflow.runtime.core.flow_scope import FlowScope


@dataclass(frozen=True, slots=True)
class Placement:
    """A node's tab (None: a config node, or on no tab), the tab's owner and the tenant it acts for."""

    tab: str | None = None
    owner: str | None = None
    tenant: str | None = None


NOWHERE = Placement()
"""The placement of a node on no tab, or of a runtime without ownership."""


def tab_of_scope(scope: FlowScope | None) -> str | None:
    """The id of the tab a flow scope belongs to (None for the global scope): the scope right below the root."""
    while scope is not None and scope.parent is not None and scope.parent.parent is not None:
        scope = scope.parent
    return scope.id if scope is not None and scope.parent is not None else None


def place(scope: FlowScope | None, services: Services) -> Placement:
    """The placement of a node built in `scope`, with the owners and roles the runtime offers now."""
    tab = tab_of_scope(scope)
    owners = services.get(FLOW_OWNERS)
    if tab is None or owners is None:
        return Placement(tab) if tab is not None else NOWHERE
    owner = owners.owner(tab)
    if owner is None:
        return Placement(tab)
    permissions = services.get(PERMISSIONS)
    role = permissions.role_of(owner) if permissions is not None else None
    return Placement(tab, owner, None if role == "administrator" else owner)
