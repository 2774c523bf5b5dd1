"""The tenant of a running node: what it may hear from and publish to the embedded MQTT broker.

A node's tenant is the owner of its tab (for a node inside a subflow instance: the tab holding the instance).
Administrators' tabs, tabs with no owner (deployed from the command line, the default flows) and runtimes
without ownership have no tenant (None). The answer is kept for the node's life (a deploy makes new nodes), so
the per-message check costs one dictionary lookup.

What a flow hears. Every message the embedded broker hands to an in-process subscriber carries its origin
tenant (runtime/mqtt/origin.py):
- a registered device's message (and its will): the device's owner (None for the administrators' devices);
- an anonymous client's (SSAP over MQTT, JOIN tokens included): ANONYMOUS, a tenant no user has;
- a flow's in-process publish: the publishing node's tenant, so None for administrators' and ownerless tabs and
  for the platform itself (the SSAP gateway's answers, birth and close messages of a config node on no tab).
A node with a tenant receives a message only when the message's origin is that tenant (`hears`): a developer's
`mqtt in '#'` hears their own devices and their own flows, nothing of anonymous clients, of the platform, of
administrators' flows or of other developers. A node without a tenant receives everything. Retained messages
keep their origin and are replayed on subscribe under the same rule.

What a flow publishes. `publish_refusal(node, topic)` says why a developer's node may not publish to a topic a
device of another owner holds (one of its filters matches it; runtime/security/device_topics.py), None when it may.
Refusals are audited (`mqtt.publish`, denied) once per node and topic while the devices stay unchanged; the
reason names no device of the other owner.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from sofiaflow.runtime.mqtt.origin import ANONYMOUS, Origin, hears
from sofiaflow.runtime.security.device_topics import index_of

__all__ = ["ANONYMOUS", "MAX_AUDITED", "Origin", "hears", "publish_refusal", "tab_of", "tenant_of"]

log = logging.getLogger("sofiaflow.tenancy")
MAX_AUDITED = 10_000  # (node, topic) refusals remembered as audited before the memory starts over
_tenants: weakref.WeakKeyDictionary[Any, str | None] = weakref.WeakKeyDictionary()


def tab_of(node: Any) -> str | None:
    """The id of the tab a node runs on (None: not on a tab, e.g. a config node)."""
    scope = getattr(node, "flow_scope", None)
    while scope is not None and scope.parent is not None and scope.parent.parent is not None:
        scope = scope.parent  # up to the scope right below the global one: the tab's
    return scope.id if scope is not None and scope.parent is not None else None


def tenant_of(node: Any) -> str | None:
    """The user whose messages alone `node` may hear (and the origin of what it publishes), None when it may
    hear all (see the module docstring)."""
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


_audited: dict[tuple[str, str, int | None], None] = {}


def publish_refusal(node: Any, topic: str) -> str | None:
    """Why `node` may not publish topic name `topic` on the embedded broker, None when it may (see the module
    docstring). Administrators' and ownerless tabs publish anywhere."""
    tenant = tenant_of(node)
    if tenant is None:
        return None
    services = getattr(getattr(node, "_engine", None), "services", None) or {}
    registry = services.get("devices")
    if registry is None:
        return None
    holder = index_of(registry).foreign_holder(topic, tenant)
    if holder is None:
        return None
    device, filt, owner = holder
    key = (str(getattr(node, "id", "")), topic, getattr(registry, "generation", None))
    if key not in _audited:
        if len(_audited) >= MAX_AUDITED:
            _audited.clear()
        _audited[key] = None
        _audit(
            services.get("audit"),
            tenant,
            topic,
            {"node": key[0], "tab": tab_of(node), "device": device, "filter": filt, "owner": owner},
        )
    return (
        "it is a topic of a device of another owner, and a developer's flow publishes only outside other "
        "owners' device topics"
    )


def _audit(audit: Any, user: str, topic: str, detail: dict[str, Any]) -> None:
    if audit is None:
        log.warning(
            "publish of %s's flow to %r refused: device %r of another owner holds it",
            user,
            topic,
            detail["device"],
        )
        return
    try:
        audit.record(user, "mqtt.publish", topic, "denied", detail)
    except Exception:
        log.exception("auditing a refused MQTT publish failed")
