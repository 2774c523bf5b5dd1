"""What the workers of a cluster share, set up on a worker whose runtime has the REDIS service.

- context: the `redis` context store (runtime/core/context_redis.py, opened with the other stores);
- API Manager quotas: counted in Redis (shared_quota.py);
- ontology change events: a Redis stream (shared_ontology_events.py);
- device revocations: the config DB, plus a relay to each worker's listeners (shared_devices.py);
- debug output and node status for the editor: a Redis pub/sub relay (shared_editor_events.py);
- alarm changes, for the other workers' Alarms page and `/comms` (the alarms are in the config DB):
  a Redis pub/sub relay (shared_alarms.py);
- login tokens and users: already in the config DB every worker shares, read on every request.
- SSAP sessions: in Redis, chosen by the ssap-broker node when the REDIS service exists (shared_sessions.py).

Single-process mode never imports this module.
"""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.cluster.shared_alarms import AlarmRelay
from sofiaflow.runtime.cluster.shared_devices import DeviceRevocations
from sofiaflow.runtime.cluster.shared_editor_events import EditorEventRelay
from sofiaflow.runtime.cluster.shared_ontology_events import OntologyEventStream
from sofiaflow.runtime.cluster.shared_quota import RedisQuota
from sofiaflow.runtime.core.services import ALARMS, API_MANAGER, DEVICES, ONTOLOGY_EVENTS

if TYPE_CHECKING:
    from sofiaflow.runtime.runtime import Runtime


async def share_state(runtime: Runtime, stack: AsyncExitStack) -> dict[str, Any]:
    """Switch `runtime`'s services to their shared forms; each is undone by `stack` (last first)."""
    redis = runtime.redis
    engine = runtime.engine
    assert engine is not None, "the engine opens before the shared state"
    services = engine.services
    worker = uuid.uuid4().hex
    shared: dict[str, Any] = {"worker": worker}
    manager = services.get(API_MANAGER)
    if manager is not None:
        manager.quota = shared["quota"] = RedisQuota(redis)
    parts: list[Any] = []
    events = services.get(ONTOLOGY_EVENTS)
    if events is not None:
        parts.append(OntologyEventStream(redis, events, worker))
    devices = services.get(DEVICES)
    if devices is not None:
        parts.append(DeviceRevocations(redis, devices, worker))
    parts.append(EditorEventRelay(redis, runtime.events, worker))
    alarms = services.get(ALARMS)
    if alarms is not None:
        parts.append(AlarmRelay(redis, alarms, runtime.events, worker))
    for part in parts:
        await part.start()
        stack.push_async_callback(part.stop)
        shared[type(part).__name__] = part
    return shared
