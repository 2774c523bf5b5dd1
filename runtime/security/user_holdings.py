"""What a deleted user owned and held, released so that a new user of the same name starts with nothing.

Chosen rules: what the user *owned* passes to the administrators (an owner of None means "the administrators'"
for ontologies, devices and flow units), so data, devices and flows keep working; what the user *held* as a
person goes: ontology grants to them, shares of flow units with them, and their API keys (revoked, then
removed; the audit log keeps their ids). Their tokens are deleted by `AuthService.delete_user` itself.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete

from sofiaflow.runtime.api_manager.keys import api_keys

log = logging.getLogger("sofiaflow.users")


def release_user(runtime: Any, username: str) -> dict[str, list[str] | int]:
    """Release everything `username` owns or holds in `runtime` (see the module docstring); what changed, by
    kind: ontologies, devices and flow units (tabs, subflows, config nodes) handed to the administrators,
    grants dropped, API keys revoked."""
    services = runtime.engine.services if runtime.engine is not None else {}
    released: dict[str, list[str] | int] = {
        "ontologies": [],
        "devices": [],
        "flows": [],
        "grants": 0,
        "api_keys": [],
    }
    ontologies = services.get("ontologies")
    if ontologies is not None:
        for ontology in ontologies.list():
            if ontology.owner == username:
                ontologies.update(ontology.name, owner=None)
                released["ontologies"].append(ontology.name)
    devices = services.get("devices")
    if devices is not None:
        for device in devices.list():
            if device.owner == username:
                devices.update(device.name, owner=None)
                released["devices"].append(device.name)
    ownership = getattr(runtime, "ownership", None)
    if ownership is not None:
        released["flows"] = ownership.release_user(username)
    permissions = services.get("permissions")
    if permissions is not None:
        released["grants"] = permissions.revoke_all(username)
    manager = services.get("api-manager")
    if manager is not None:
        for key in manager.keys.list(username):
            if key["revoked"] is None:
                manager.keys.revoke(key["id"])  # also drops the keys' in-memory cache
            released["api_keys"].append(key["id"])
        with runtime.db.begin() as conn:
            conn.execute(delete(api_keys).where(api_keys.c.username == username))
    audit = getattr(runtime, "audit", None)
    if audit is not None:
        audit.record(None, "holdings.release", username, detail=released)
    log.info("released what %r owned and held: %s", username, released)
    return released


def attach(auth: Any, runtime: Any) -> None:
    """Have `auth.delete_user` release the deleted user's holdings in `runtime` first (once per pair)."""
    attached = auth.__dict__.setdefault("_released_in", [])
    if any(r is runtime for r in attached):
        return
    attached.append(runtime)
    auth.on_user_deleted(lambda username: release_user(runtime, username))
