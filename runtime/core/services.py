"""Typed service keys: what the runtime offers nodes, each under one `ServiceKey[T]`.

The runtime builds and registers every service (`Runtime._start_services`, and `Deployer` for the ones a bare
engine can build itself); nodes only look them up, with `Node.service(KEY)`, typed by the key:

    routes = self.service(HTTP_ROUTES)  # a NodeRoutes

A key is a `str` (its name, e.g. "http"), as Home Assistant's `HassKey` is, so the admin API, the editor and
tests that index `engine.services` by name keep working; code in this repository uses the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sofiaflow.runtime.api_manager import ApiManager
    from sofiaflow.runtime.cluster.mqtt_sessions import MqttSessions
    from sofiaflow.runtime.cluster.partitions import Partitions
    from sofiaflow.runtime.cluster.slots import FiringSlots
    from sofiaflow.runtime.core.metrics import ThroughputHistory
    from sofiaflow.runtime.data.alarms import AlarmStore
    from sofiaflow.runtime.data.events import OntologyEvents
    from sofiaflow.runtime.data.history import HistoryService
    from sofiaflow.runtime.data.ontologies import OntologyRegistry
    from sofiaflow.runtime.data.ontology_data import OntologyData
    from sofiaflow.runtime.data.rtdb import RealtimeStore
    from sofiaflow.runtime.http.node_routes import NodeRoutes
    from sofiaflow.runtime.mqtt.broker import EmbeddedBroker
    from sofiaflow.runtime.sandbox import SandboxPool
    from sofiaflow.runtime.security.audit import AuditLog
    from sofiaflow.runtime.security.devices import DeviceRegistry
    from sofiaflow.runtime.security.ownership import FlowOwnership
    from sofiaflow.runtime.security.permissions import Permissions

T = TypeVar("T")


class ServiceKey(str, Generic[T]):
    """The name of a service, typed by what it holds (`ServiceKey[NodeRoutes]("http")`)."""

    __slots__ = ()


API_MANAGER: ServiceKey[ApiManager] = ServiceKey("api-manager")
"""Published APIs: their definitions, keys and calls (runtime/api_manager)."""
ALARMS: ServiceKey[AlarmStore] = ServiceKey("alarms")
"""Alarms by type and originator, with severity and status, kept in the config DB (runtime/data/alarms.py)."""
AUDIT: ServiceKey[AuditLog] = ServiceKey("audit")
"""The audit log of security-relevant actions."""
DEVICES: ServiceKey[DeviceRegistry] = ServiceKey("devices")
"""Device identities and their tokens, topics and owners."""
FIRING_SLOTS: ServiceKey[FiringSlots] = ServiceKey("firing-slots")
"""Run-once firings of scheduled sources in a cluster (runtime/cluster/slots.py); absent in single-process mode."""
FLOW_OWNERS: ServiceKey[FlowOwnership] = ServiceKey("flow-owners")
"""Who owns each tab, subflow and config node (the runtime's use; nodes read `node.owner`)."""
HISTORY: ServiceKey[HistoryService] = ServiceKey("history")
"""The historical (Parquet) store of ontology instances and the mover that fills it."""
HTTP_ROUTES: ServiceKey[NodeRoutes] = ServiceKey("http")
"""The routes `http in`, websocket and SSAP REST nodes serve under the node HTTP root."""
METRICS_HISTORY: ServiceKey[ThroughputHistory] = ServiceKey("metrics-history")
"""The engine's sampled throughput (runtime/core/metrics.py)."""
MQTT_BROKER: ServiceKey[EmbeddedBroker] = ServiceKey("mqtt-embedded")
"""The embedded MQTT broker (absent when the runtime runs none)."""
MQTT_SESSIONS: ServiceKey[MqttSessions] = ServiceKey("mqtt-sessions")
"""Cluster mode: each worker's own MQTT session on the cluster's broker and their takeover when a worker dies
(runtime/cluster/mqtt_sessions.py); absent in single-process mode."""
ONTOLOGIES: ServiceKey[OntologyRegistry] = ServiceKey("ontologies")
"""Ontologies (data models) and their schemas."""
ONTOLOGY_DATA: ServiceKey[OntologyData] = ServiceKey("ontology-data")
"""Validated reads and writes of ontology instances in the real-time database."""
ONTOLOGY_EVENTS: ServiceKey[OntologyEvents] = ServiceKey("ontology-events")
"""The hub that tells subscribers of an ontology about its inserts, updates and deletes."""
PARTITIONS: ServiceKey[Partitions] = ServiceKey("partitions")
"""Keyed partitions across workers (runtime/cluster/partitions.py); absent in single-process mode."""
PERMISSIONS: ServiceKey[Permissions] = ServiceKey("permissions")
"""Users' roles and their rights on ontologies."""
REDIS: ServiceKey[Redis] = ServiceKey("redis")
"""The cluster's Redis connection (runtime/cluster/redis_link.py); absent in single-process mode."""
RTDB: ServiceKey[RealtimeStore] = ServiceKey("rtdb")
"""The real-time database of ontology instances."""
SANDBOX: ServiceKey[SandboxPool] = ServiceKey("sandbox")
"""Worker processes that run code written by people (function nodes)."""

ALL_KEYS: tuple[ServiceKey[Any], ...] = (
    ALARMS,
    API_MANAGER,
    AUDIT,
    DEVICES,
    FIRING_SLOTS,
    FLOW_OWNERS,
    HISTORY,
    HTTP_ROUTES,
    METRICS_HISTORY,
    MQTT_BROKER,
    MQTT_SESSIONS,
    ONTOLOGIES,
    ONTOLOGY_DATA,
    ONTOLOGY_EVENTS,
    PARTITIONS,
    PERMISSIONS,
    REDIS,
    RTDB,
    SANDBOX,
)

Factory = Callable[["Services"], Any]


class Services(dict[str, Any]):
    """The engine's services by key; a service may be provided as a factory, built on first lookup."""

    def __init__(self) -> None:
        super().__init__()
        self._factories: dict[str, Factory] = {}

    def provide(self, key: ServiceKey[T], factory: Callable[[Services], T]) -> None:
        """Build the service under `key` with `factory(services)` when it is first looked up and not set."""
        self._factories[key] = factory

    def __missing__(self, key: str) -> Any:
        factory = self._factories.get(key)
        if factory is None:
            raise KeyError(key)
        value = self[key] = factory(self)
        return value

    # typed for service keys, plain for other names: narrower than dict.get on purpose
    @overload  # type: ignore[override]
    def get(self, key: ServiceKey[T], default: None = None) -> T | None: ...
    @overload
    def get(self, key: str, default: Any = None) -> Any: ...
    def get(self, key: str, default: Any = None) -> Any:
        """The service under `key` (built now if it is provided and not yet built), else `default`."""
        try:
            return self[key]
        except KeyError:
            return default

    def require(self, key: ServiceKey[T]) -> T:
        """The service under `key`; LookupError naming it when the runtime offers none."""
        try:
            return cast(T, self[key])
        except KeyError as exc:
            missing = exc.args[0] if exc.args else key
            detail = "" if missing == key else f" (it needs the {missing!r} service, which is absent)"
            raise LookupError(f"this runtime has no {str(key)!r} service{detail}") from None
