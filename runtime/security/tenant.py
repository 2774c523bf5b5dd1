"""The tenant of a running node: what it may hear from and publish to the embedded MQTT broker.

A node's tenant is the owner of its tab (for a node inside a subflow instance: the tab holding the instance).
Administrators' tabs, tabs with no owner (deployed from the command line, the default flows) and runtimes
without ownership have no tenant (None). The deployer places each node once (`node.tenant`,
runtime/core/placement.py), so the per-message check reads one attribute.

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
from typing import Any, TypeVar

from sofiaflow.runtime.core.services import AUDIT, DEVICES, ServiceKey
from sofiaflow.runtime.errors import NodeError
from sofiaflow.runtime.mqtt.origin import ANONYMOUS, Origin, hears
from sofiaflow.runtime.security.device_topics import index_of

__all__ = ["ANONYMOUS", "MAX_AUDITED", "Origin", "hears", "publish_refusal"]

log = logging.getLogger("sofiaflow.tenancy")
MAX_AUDITED = 10_000  # (node, topic) refusals remembered as audited before the memory starts over
_audited: dict[tuple[str, str, int | None], None] = {}
T = TypeVar("T")


def publish_refusal(node: Any, topic: str) -> str | None:
    """Why `node` may not publish topic name `topic` on the embedded broker, None when it may (see the module
    docstring). Administrators' and ownerless tabs publish anywhere."""
    tenant = node.tenant
    if tenant is None:
        return None
    registry = _optional(node, DEVICES)
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
            _optional(node, AUDIT),
            tenant,
            topic,
            {"node": key[0], "tab": node.tab, "device": device, "filter": filt, "owner": owner},
        )
    return (
        "it is a topic of a device of another owner, and a developer's flow publishes only outside other "
        "owners' device topics"
    )


def _optional(node: Any, key: ServiceKey[T]) -> T | None:
    try:
        return node.service(key)
    except NodeError:
        return None


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
