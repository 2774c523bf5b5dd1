"""The tenant of a running node: whose devices' data it may receive from the embedded MQTT broker.

A node's tenant is the owner of its tab (for a node inside a subflow instance: the tab holding the instance).
Administrators' tabs, tabs with no owner (deployed from the command line, the default flows) and runtimes
without ownership have no tenant: they see every device. The answer is kept for the node's life (a deploy
makes new nodes), so the per-message check costs one dictionary lookup.
"""

from __future__ import annotations

import weakref
from typing import Any

_tenants: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


def tab_of(node: Any) -> str | None:
    """The id of the tab a node runs on (None: not on a tab, e.g. a config node)."""
    scope = getattr(node, "flow_scope", None)
    while scope is not None and scope.parent is not None and scope.parent.parent is not None:
        scope = scope.parent  # up to the scope right below the global one: the tab's
    return scope.id if scope is not None and scope.parent is not None else None


def tenant_of(node: Any) -> str | None:
    """The user whose devices alone `node` may hear, None when it may hear all (see the module docstring)."""
    try:
        return _tenants[node]
    except (KeyError, TypeError):
        pass
    tenant = _lookup(node)
    try:
        _tenants[node] = tenant
    except TypeError:  # not weak-referenceable: not cached
        pass
    return tenant


def _lookup(node: Any) -> str | None:
    engine = getattr(node, "_engine", None)
    services = getattr(engine, "services", None) or {}
    owners, permissions = services.get("flow-owners"), services.get("permissions")
    tab = tab_of(node)
    if owners is None or tab is None:
        return None
    owner = owners.owner(tab)
    if owner is None:
        return None
    role_of = getattr(permissions, "role_of", None) or getattr(permissions, "_role_of", None)
    role = role_of(owner) if role_of is not None else None
    return None if role == "administrator" else owner
