"""The runtime facade: one object that the admin API, the editor and the CLI talk to.

It owns the config DB, context stores, credentials, the engine and the deployer, and has one
async lifecycle: `start()` loads and starts the last deployed flows, `stop()` stops everything.
"""

from __future__ import annotations

import base64
import inspect
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, TypeVar

from sofiaflow.runtime.core.clock import Clock
from sofiaflow.runtime.core.context import ContextManager, ContextStore, MemoryStore
from sofiaflow.runtime.core.context_sql import SqlContextStore
from sofiaflow.runtime.core.engine import Engine
from sofiaflow.runtime.core.events import EventBus
from sofiaflow.runtime.core.metrics import ThroughputHistory
from sofiaflow.runtime.core.services import (
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
    ServiceKey,
)
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.flows.deploy import Deployer, DeployResult
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry
from sofiaflow.runtime.flows.store import FlowStore, revision_of
from sofiaflow.runtime.security.audit import AuditLog
from sofiaflow.runtime.security.credentials import CredentialStore
from sofiaflow.runtime.security.ownership import FlowOwnership
from sofiaflow.runtime.settings import Settings
from sofiaflow.runtime.types import FlowJSON

log = logging.getLogger("sofiaflow.runtime")
T = TypeVar("T")


class Runtime:
    """Everything that runs flows, behind one object."""

    def __init__(
        self,
        settings: Settings | None = None,
        registry: NodeRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or Settings()
        self.registry = registry or default_registry()
        self.events = EventBus()
        self._clock = clock
        self.db: Any = None
        self.engine: Engine | None = None
        self.deployer: Deployer | None = None
        self.flowstore: FlowStore | None = None
        self.contexts: ContextManager | None = None
        self.startup_problems: list[str] = []
        self.audit: AuditLog | None = None
        self.ownership: FlowOwnership | None = None
        self._history_store: Any = None
        self.redis: Any = None
        self.shared_state: dict[str, Any] = {}
        """Cluster mode: what this worker shares with the others (runtime/cluster/shared_state.py)."""
        """The cluster's Redis client (cluster mode), else None."""
        self.cluster: Any = None
        """This worker's part in the cluster (runtime/cluster/worker.py) in cluster mode, else None."""
        self._stack: AsyncExitStack | None = None

    # ----- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the config DB and the services, then start the last deployed flows (if they are still valid).

        Each step pushes what undoes it on a stack; `stop()` unwinds the stack, so it is the exact reverse of
        this. A step that fails unwinds the steps already taken before the error goes on."""
        if self._stack is not None:
            raise RuntimeError("the runtime is started already; stop it first")
        async with AsyncExitStack() as stack:
            for step in self._start_steps():
                await step(stack)
            self._stack = stack.pop_all()

    async def stop(self) -> None:
        """Undo every step of `start()`, last first: the flows, the services, context, the config DB."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    def _start_steps(self) -> list[Callable[[AsyncExitStack], Awaitable[None]]]:
        """The steps of `start()` in order: shared connections first, the flows (the sources) last."""
        return [
            self._open_config_db,
            self._open_redis,
            self._open_contexts,
            self._open_engine,
            self._open_sandbox,
            self._open_http_routes,
            self._open_data,
            self._open_history,
            self._open_broker,
            self._open_shared_state,
            self._open_cluster,
            self._open_flows,
            self._follow_deploys,
        ]

    def _started(self, stack: AsyncExitStack, name: str, close: Callable[[], Any] | None = None) -> None:
        """Announce step `name` as started, and push its undoing: `close()` (awaited when it returns an
        awaitable), then the announcement that it stopped."""

        async def undo() -> None:
            try:
                if close is not None:
                    result = close()
                    if inspect.isawaitable(result):
                        await result
            finally:
                log.debug("stopped %s", name)
                self.events.publish("runtime/step", {"step": name, "state": "stopped"})

        stack.push_async_callback(undo)
        log.debug("started %s", name)
        self.events.publish("runtime/step", {"step": name, "state": "started"})

    def _provide(
        self, stack: AsyncExitStack, key: ServiceKey[T], service: T, close: Callable[[], Any] | None = None
    ) -> T:
        """Register `service` for nodes under `key`; on unwinding it is unregistered, then closed."""
        services = self._engine().services
        services[key] = service
        name = str(key)

        def withdraw() -> Any:
            services.pop(key, None)
            return close() if close is not None else None

        self._started(stack, f"service {name}", withdraw)
        return service

    async def _open_config_db(self, stack: AsyncExitStack) -> None:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = connect(self.settings.database_url)
        self._started(stack, "config-db", self.db.dispose)
        self.registry.load_disabled(self.db)
        self.audit = AuditLog(self.db)
        self.ownership = FlowOwnership(self.db)

    async def _open_redis(self, stack: AsyncExitStack) -> None:
        """Cluster mode only (`redis_url` set): the worker's Redis client, checked once; provided as REDIS
        when the engine opens."""
        url = self.settings.redis_url
        if not url:
            return
        from sofiaflow.runtime.cluster.redis_link import check_redis, open_redis

        self.redis = open_redis(url)
        self._started(stack, "redis", self.redis.aclose)
        await check_redis(self.redis, url)

    async def _open_contexts(self, stack: AsyncExitStack) -> None:
        stores: dict[str, ContextStore] = {
            "memory": MemoryStore(),
            "persistent": SqlContextStore(self.db, "persistent", self.settings.context_flush_interval),
        }
        if self.settings.redis_url:  # cluster mode: context every worker shares (`#:(redis)::key`)
            from sofiaflow.runtime.core.context_redis import RedisContextStore

            stores["redis"] = RedisContextStore(self.settings.redis_url)
        self.contexts = ContextManager(
            stores, default=self.settings.context_default, prefixes=self.settings.context_prefixes
        )
        await self.contexts.open()
        self._started(stack, "contexts", self.contexts.close)

    async def _open_engine(self, stack: AsyncExitStack) -> None:
        self.engine = Engine(
            self.contexts,
            self.events,
            clock=self._clock,
            close_timeout=self.settings.node_close_timeout,
            node_settings=self.settings.node_settings(),
        )
        self._started(stack, "engine")
        self._provide(stack, AUDIT, self.audit)
        self._provide(stack, FLOW_OWNERS, self.ownership)
        if self.redis is not None:
            self._provide(stack, REDIS, self.redis)
        history = ThroughputHistory(self.engine)  # sampling starts when metrics are first read
        self._provide(stack, METRICS_HISTORY, history, history.stop)

    async def _open_sandbox(self, stack: AsyncExitStack) -> None:
        """Worker processes for code written by people (started on first use)."""
        from sofiaflow.runtime.sandbox import SandboxPool
        from sofiaflow.runtime.sandbox.limits import WorkerLimits

        # RLIMIT_DATA, not RLIMIT_AS: V8 (JavaScript functions) cannot start under any address-space limit,
        # and needs about 768 MB of data limit for its reservations
        limits = WorkerLimits.for_host(
            memory_mb=max(self.settings.sandbox_memory_mb, 1024), memory_kind="data"
        )
        pool = SandboxPool(limits)
        self._provide(stack, SANDBOX, pool, pool.close)

    async def _open_http_routes(self, stack: AsyncExitStack) -> None:
        """The flows' own HTTP endpoints (http in nodes); closing answers what is still waiting."""
        from sofiaflow.runtime.http.node_routes import NodeRoutes

        routes = NodeRoutes(self.settings.http_node_root, self.settings.http_response_timeout)
        self._provide(stack, HTTP_ROUTES, routes, routes.shutdown)

    async def _open_data(self, stack: AsyncExitStack) -> None:
        """Devices, the real-time DB, ontologies and the rights on them, ontology data and the API Manager."""
        from sofiaflow.runtime.api_manager import ApiManager
        from sofiaflow.runtime.data.events import OntologyEvents
        from sofiaflow.runtime.data.history import HistoryStore
        from sofiaflow.runtime.data.ontologies import OntologyRegistry
        from sofiaflow.runtime.data.ontology_data import OntologyData
        from sofiaflow.runtime.data.rtdb import open_store
        from sofiaflow.runtime.security.devices import DeviceRegistry
        from sofiaflow.runtime.security.permissions import Permissions

        self._provide(stack, DEVICES, DeviceRegistry(self.db))
        self._provide(stack, ALARMS, self._alarm_store())
        store = open_store(self.settings.realtime_database_url)
        self._provide(stack, RTDB, store, store.close)
        history = self._history_store = HistoryStore(self.settings.history_path)
        ontologies = OntologyRegistry(
            self.db,
            sample_existing=lambda name, limit: store.find(name, {}, limit=limit),
            count_existing=lambda name: store.count(name, {}) + len(history.ids(name)),
            purge_existing=lambda name: _purge(store, history, name),
        )
        ontologies.on_change(lambda name, ontology: _ensure_collection(store, name, ontology))
        self._provide(stack, ONTOLOGIES, ontologies)
        permissions = Permissions(self.db, self._role_of, lambda name: _owner_of(ontologies, name))
        ontologies.on_change(lambda _name, _ontology: permissions.forget())
        self._provide(stack, PERMISSIONS, permissions)
        events = self._provide(stack, ONTOLOGY_EVENTS, OntologyEvents())
        data = self._provide(stack, ONTOLOGY_DATA, OntologyData(ontologies, store, events))
        manager = ApiManager(
            self.db, permissions, data, self._role_of, self.audit, self.settings.http_response_timeout
        )
        self._provide(stack, API_MANAGER, manager, manager.close)
        for ontology in ontologies.list():
            try:
                _ensure_collection(store, ontology.name, ontology)
            except ValueError as exc:  # a bad index path must not keep the runtime from starting
                self.startup_problems.append(f"ontology {ontology.name}: {exc}")
                log.error("ontology %s: %s", ontology.name, exc)
        if self.settings.ontologies_dir is not None:
            report = ontologies.load_directory(self.settings.ontologies_dir)
            for error in report.errors:
                self.startup_problems.append(f"ontology {error['file']}: {error['message']}")
                log.error("ontology %s not loaded: %s", error["file"], error["message"])

    def _alarm_store(self) -> Any:
        """The alarms of the config DB; each change is also published on the event bus as `alarms` (in the
        event loop's thread, whichever thread made it)."""
        import asyncio

        from sofiaflow.runtime.data.alarms import AlarmStore

        store = AlarmStore(self.db)
        loop = asyncio.get_running_loop()

        def publish(event: Any) -> None:
            if not loop.is_closed():
                data = {"event": event.event, "alarm": event.alarm.as_dict()}
                loop.call_soon_threadsafe(self.events.publish, "alarms", data)

        store.on_change(publish)
        return store

    async def _open_shared_state(self, stack: AsyncExitStack) -> None:
        """Cluster mode only: API quotas, ontology events, device revocations, and debug and status for the
        editor, shared with the other workers (runtime/cluster/shared_state.py)."""
        if self.redis is None:
            return
        from sofiaflow.runtime.cluster.shared_state import share_state

        self.shared_state = await share_state(self, stack)
        self._started(stack, "shared-state")

    async def _open_history(self, stack: AsyncExitStack) -> None:
        """The mover of aged real-time data to the Parquet history, every `history_interval` seconds."""
        from sofiaflow.runtime.data.history import HistoryMover, HistoryService

        services = self._engine().services
        mover = HistoryMover(services[ONTOLOGIES], services[RTDB], self._history_store)
        history = HistoryService(mover, self.settings.history_interval)
        if self.redis is None:  # in a cluster the mover is a singleton: the leader starts it
            history.start()
        self._provide(stack, HISTORY, history, history.stop)

    async def _open_broker(self, stack: AsyncExitStack) -> None:
        """The embedded MQTT broker (when `mqtt_port` is set); device messages wait for the stored flows."""
        if self.settings.mqtt_url:  # the cluster's Mosquitto: devices are its dynamic-security clients
            from sofiaflow.runtime.cluster.dynsec import open_device_sync

            await open_device_sync(self, stack)
            return
        from sofiaflow.runtime.mqtt.broker import EmbeddedBroker

        if not self.settings.mqtt_port:
            return
        broker = EmbeddedBroker(
            self._engine().services[DEVICES],
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            max_packet_size=self.settings.mqtt_max_packet_size,
            connect_timeout=self.settings.mqtt_connect_timeout,
            audit=self.audit,
        )
        broker.flows_ready.clear()  # device messages wait until the stored flows have subscribed
        await broker.start()
        self._provide(stack, MQTT_BROKER, broker, broker.stop)

    async def _open_cluster(self, stack: AsyncExitStack) -> None:
        """Cluster mode only: join (heartbeat, leader lease) and offer FIRING_SLOTS before the flows start."""
        if self.redis is None:
            return
        from sofiaflow.runtime.cluster.worker import ClusterWorker

        self.flowstore = FlowStore(self.db)
        cluster = ClusterWorker(self, self.redis)
        await cluster.open()

        async def leave() -> None:
            await cluster.close()
            self.cluster = None

        self._started(stack, "cluster", leave)
        self.cluster = cluster
        self._provide(stack, FIRING_SLOTS, cluster.slots)
        from sofiaflow.runtime.cluster.partitions import Partitions

        self._provide(stack, PARTITIONS, Partitions(self.redis, cluster.id, cluster.settings.lease))
        from sofiaflow.runtime.cluster.mqtt_sessions import MqttSessions

        sessions = MqttSessions(self.redis, cluster.id, cluster.settings.lease)
        await sessions.start()
        self._provide(stack, MQTT_SESSIONS, sessions, sessions.stop)

    async def _follow_deploys(self, stack: AsyncExitStack) -> None:
        """Cluster mode only: apply the revisions other workers deploy (hint and periodic check)."""
        if self.cluster is not None:
            await self.cluster.sync_deploys()

    async def apply_revision(self, flows: FlowJSON, deploy_type: str) -> None:
        """Run a revision another worker deployed (already saved, with its credentials): the same deploy type,
        so the same nodes restart here as there."""
        deployer = self._deployer()
        ids = [n["id"] for n in flows if isinstance(n, dict) and isinstance(n.get("id"), str)]
        before = {node_id: deployer.credentials.get(node_id) for node_id in ids}
        deployer.credentials.load()  # what the deploying worker saved
        changed = {node_id for node_id in ids if deployer.credentials.get(node_id) != before[node_id]}
        try:
            await deployer.deploy(flows, deploy_type, save=False, restart=changed)
        except FlowValidationError as exc:
            log.error("cluster: the deployed revision cannot run on this worker:\n%s", exc)
            deployer.flows, deployer.rev = flows, revision_of(flows)
        if self.ownership is not None:
            self.ownership.deployed(deployer.flows)

    async def _open_flows(self, stack: AsyncExitStack) -> None:
        """Start the stored flows (or, on the first start, the default flow file); undone by stopping them."""
        credentials = CredentialStore(self.db, self.credential_key())
        credentials.load()
        self.flowstore = FlowStore(self.db)
        self.deployer = deployer = Deployer(self._engine(), self.registry, credentials, self.flowstore)
        self._started(stack, "flows", deployer.stop)
        deployer.state = "start"
        current = self.flowstore.current()
        if current is not None:
            flows, rev = current
            try:
                await deployer.deploy(flows, "full", save=False)
            except FlowValidationError as exc:
                self.startup_problems = [str(p) for p in exc.problems]
                log.error("the stored flows were not started:\n%s", exc)
                deployer.flows, deployer.rev = flows, rev
        elif self.settings.default_flows is not None:
            await self._deploy_default_flows(self.settings.default_flows)
        broker = self._engine().services.get(MQTT_BROKER)
        if broker is not None:
            broker.flows_ready.set()
        for problem in deployer.problems:
            log.warning("%s", problem)

    async def _deploy_default_flows(self, path: Path) -> None:
        """First start (no flows stored yet): deploy the default flow file, e.g. the IoT Broker flow."""
        import json

        try:
            flows = json.loads(path.read_text(encoding="utf-8"))
            await self._deployer().deploy(flows, "full")
        except (OSError, ValueError, FlowValidationError) as exc:
            self.startup_problems.append(f"default flows {path}: {exc}")
            log.error("the default flows %s were not deployed: %s", path, exc)
        else:
            log.info("first start: deployed the default flows %s", path)

    def _engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the runtime is not started")
        return self.engine

    def _role_of(self, username: str) -> str | None:
        from sofiaflow.runtime.errors import AuthError
        from sofiaflow.runtime.security.auth import AuthService

        try:
            return AuthService(self.db, self.settings).role_of(username)
        except AuthError:
            return None

    def credential_key(self) -> bytes:
        """The key that encrypts node credentials: from the setting, or generated once in the data dir."""
        if self.settings.credential_secret:
            import hashlib

            return base64.urlsafe_b64encode(hashlib.sha256(self.settings.credential_secret.encode()).digest())
        path: Path = self.settings.data_dir / ".credential-key"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(base64.urlsafe_b64encode(os.urandom(32)))  # a key as Fernet.generate_key() makes
        return path.read_bytes().strip()

    # ----- flows --------------------------------------------------------------------------------
    @property
    def flows(self) -> FlowJSON:
        return self._deployer().flows

    @property
    def rev(self) -> str:
        return self._deployer().rev

    @property
    def state(self) -> str:
        return self._deployer().state

    async def deploy(
        self,
        flows: Any,
        deploy_type: str = "full",
        rev: str | None = None,
        credentials: dict[str, dict] | None = None,
        user: str | None = None,
    ) -> DeployResult:
        """Deploy a whole flow set (see `Deployer.deploy`); recorded in the audit log."""
        self._deployer()  # raises when the runtime is not started
        if self.cluster is not None and self.cluster.sync is not None and deploy_type != "reload":
            # one deploy at a time in the cluster, against the config DB's current revision; the report
            # says which workers run the new revision
            result, report = await self.cluster.sync.deploy(
                lambda: self._deploy_here(flows, deploy_type, rev, credentials, user), rev
            )
            result.cluster = report
            return result
        return await self._deploy_here(flows, deploy_type, rev, credentials, user)

    async def _deploy_here(
        self,
        flows: Any,
        deploy_type: str,
        rev: str | None,
        credentials: dict[str, dict] | None,
        user: str | None,
    ) -> DeployResult:
        deployer = self._deployer()
        if isinstance(flows, list):  # new tabs are the deployer's while their nodes set up (ontology rights)
            self.ownership.claim_new(flows, user, running=deployer.flows)
        try:
            result = await deployer.deploy(flows, deploy_type, rev, credentials, user)
        except Exception as exc:
            self.ownership.deployed(deployer.flows)
            if self.audit is not None:
                self.audit.record(user, "deploy", deploy_type, "failed", {"error": str(exc)[:500]})
            raise
        self.ownership.deployed(deployer.flows)
        if self.audit is not None:
            self.audit.record(user, "deploy", deploy_type, "ok", {"rev": result.rev})
        return result

    async def set_state(self, state: str) -> str:
        """`start` or `stop` the flows without changing them (in a cluster: on every worker)."""
        if state not in ("start", "stop"):
            raise ValueError(f"unknown state {state!r}; use 'start' or 'stop'")
        if self.cluster is not None and self.cluster.sync is not None:
            await self.cluster.sync.set_state(state)
            return self.state
        return await self.set_state_here(state)

    async def set_state_here(self, state: str) -> str:
        """`start` or `stop` this worker's flows."""
        if state == "start":
            await self._deployer().start()
        elif state == "stop":
            await self._deployer().stop()
        else:
            raise ValueError(f"unknown state {state!r}; use 'start' or 'stop'")
        return self.state

    def _deployer(self) -> Deployer:
        if self.deployer is None:
            raise RuntimeError("the runtime is not started")
        return self.deployer


def _ensure_collection(store: Any, name: str, ontology: Any) -> None:
    """Keep the real-time DB's collection (indexes, unique fields) in step with the ontology."""
    if ontology is not None:
        indexes = list(ontology.indexes)
        if ontology.realtime_window_days and "contextData.timestampMillis" not in indexes:
            indexes.append("contextData.timestampMillis")  # what expiry and the move to history read by
        store.ensure_collection(name, indexes, list(ontology.unique))


def _owner_of(ontologies: Any, name: str) -> str | None:
    try:
        return ontologies.get(name).owner
    except Exception:  # noqa: BLE001 - an unknown ontology has no owner
        return None


def _purge(store: Any, history: Any, name: str) -> int:
    """Delete an ontology's instances, real-time and historical; how many there were."""
    count = store.count(name, {}) + len(history.ids(name))
    store.drop(name)
    history.drop(name)
    return count
