"""Live counters of the engine: sampled handling times per node, queue depths, per-flow throughput.

The engine counts every message (`count_in`, `count_out`, `count_err` on each node) and times some:
every message of nodes with an async `on_input`; for inline handlers, when a dispatcher batch starts
with more than `BUSY_QUEUE` queued messages only its first message (the engine is busy: its hot loop
stays as it was, and the first of a batch is a fair draw from the queue's mix of nodes), otherwise
every message of a random `calm_share` of the batches (a batch is then one message and all it causes
downstream, so every node of its path gets timed). `EngineStats` keeps, per node, a `NodeStats`
with an all-time histogram of those samples and the most recent ones (for mean and p99). Nothing
else runs per message: `snapshot()` reads the engine when someone asks (the monitoring page,
`/metrics`). Counters restart when a node is redeployed (a new node object).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import time
from bisect import bisect_left
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.core.services import METRICS_HISTORY, MQTT_BROKER

if TYPE_CHECKING:
    from sofiaflow.runtime.core.engine import Engine
    from sofiaflow.runtime.core.flow_scope import FlowScope
    from sofiaflow.runtime.core.node import Node

BUSY_QUEUE = 32
"""A dispatcher batch that starts with more queued messages than this times only its first message."""
CALM_SHARE = 0.0625
"""The share of the other batches whose every message is timed (random, so periodic traffic cannot alias)."""
RECENT = 512
"""How many recent samples per node the mean and the quantiles are taken over."""
BUCKETS: tuple[float, ...] = tuple(float(f"{m}e{e}") for e in range(-6, 1) for m in (1, 2.5, 5)) + (10.0,)
"""Upper bounds (seconds) of the handling-time histogram: 1 µs .. 10 s, then +Inf."""
QUEUE_SCAN_LIMIT = 200_000
"""At most this many run-queue entries are read to attribute queued messages to nodes."""
HISTORY_SECONDS = 300
"""How long the per-flow throughput history reaches back."""
HISTORY_IDLE_STOP = 600.0
"""The history stops sampling when nobody has read it for this many seconds (a read starts it again)."""


class NodeStats:
    """Sampled handling times of one node: cumulative histogram counts plus the last `RECENT` samples."""

    __slots__ = ("bucket_counts", "sum", "recent")

    def __init__(self) -> None:
        self.bucket_counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.recent: deque[float] = deque(maxlen=RECENT)

    def record(self, seconds: float) -> None:
        """Add one timed message."""
        self.bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self.recent.append(seconds)

    @property
    def count(self) -> int:
        """How many messages were timed."""
        return sum(self.bucket_counts)

    def mean(self) -> float | None:
        """Mean of the recent samples (None before the first)."""
        return sum(self.recent) / len(self.recent) if self.recent else None

    def quantile(self, q: float) -> float | None:
        """The `q` quantile (0..1, nearest rank) of the recent samples (None before the first)."""
        if not self.recent:
            return None
        ordered = sorted(self.recent)
        rank = max(1, math.ceil(q * len(ordered)))
        return ordered[rank - 1]

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        """[(upper bound as text, samples <= bound)], ending with ("+Inf", count), Prometheus style."""
        out, total = [], 0
        for bound, n in zip((*BUCKETS, math.inf), self.bucket_counts, strict=True):
            total += n
            out.append(("+Inf" if bound == math.inf else repr(bound), total))
        return out


class EngineStats:
    """The `NodeStats` of every running node; the engine calls `record`, readers call `get`."""

    def __init__(self, calm_share: float = CALM_SHARE) -> None:
        self._by_node: dict[Node, NodeStats] = {}
        self.calm_share = calm_share
        """Share of calm batches timed in full (1.0: every message of a calm engine, as tests want)."""

    def record(self, node: Node, seconds: float) -> None:
        """Add one timed message of `node` (NodeStats.record, inlined: this runs per timed message)."""
        stats = self._by_node.get(node)
        if stats is None:
            stats = self._by_node[node] = NodeStats()
        stats.bucket_counts[bisect_left(BUCKETS, seconds)] += 1
        stats.sum += seconds
        stats.recent.append(seconds)

    def get(self, node: Node) -> NodeStats | None:
        return self._by_node.get(node)

    def forget(self, node: Node) -> None:
        """Drop a stopped node's samples."""
        self._by_node.pop(node, None)


# ----- snapshots ---------------------------------------------------------------------------------


@dataclass
class NodeRow:
    """One node's numbers at one moment."""

    id: str
    type: str
    name: str
    flow: str
    messages_in: int
    messages_out: int
    errors: int
    queue: int
    mean_s: float | None
    p99_s: float | None
    samples: int
    sample_sum_s: float
    buckets: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class BrokerRow:
    """An MQTT connection or listener: the embedded broker, or an mqtt-broker config node."""

    kind: str  # "embedded" (clients connected to this process) or "mqtt-broker" (a flow's connection)
    id: str
    name: str
    target: str
    connected: bool
    clients: int


@dataclass
class Snapshot:
    """Everything the monitoring page and /metrics show, read at `time`."""

    time: float
    nodes: list[NodeRow]
    flows: dict[str, str]  # tab id -> label
    pending: int
    run_queue: int
    messages_total: int
    errors_total: int
    brokers: list[BrokerRow]

    def flow_messages(self) -> dict[str, int]:
        """Messages handled so far per tab, summed over its nodes (subflow contents included)."""
        out = dict.fromkeys(self.flows, 0)
        for row in self.nodes:
            out[row.flow] = out.get(row.flow, 0) + row.messages_in
        return out


def top_flow(scope: FlowScope | None) -> FlowScope | None:
    """The tab a scope belongs to (a subflow instance's scope climbs to the tab of the instance)."""
    while scope is not None and scope.instance is not None and scope.parent is not None:
        scope = scope.parent
    return scope


def queued_per_node(engine: Engine) -> Counter:
    """Messages waiting per node: its own inbox (async nodes) or its entries in the run queue."""
    waiting: Counter = Counter(id(node) for node, _msg in itertools.islice(engine._queue, QUEUE_SCAN_LIMIT))
    for node in engine.nodes.values():
        if node._inbox:
            waiting[id(node)] += len(node._inbox)
    return waiting


def snapshot(engine: Engine) -> Snapshot:
    """Read the engine's counters now (call on the engine's event loop thread)."""
    waiting = queued_per_node(engine)
    rows: list[NodeRow] = []
    flows: dict[str, str] = {}
    for node in list(engine.nodes.values()):
        if node.is_config_node:
            continue
        scope = top_flow(node.flow_scope)
        flow_id = scope.id if scope is not None else (node.z or "")
        if scope is not None:
            flows.setdefault(flow_id, scope.label or flow_id)
        stats = engine.stats.get(node)
        rows.append(
            NodeRow(
                id=node.id,
                type=node.type,
                name=node.name,
                flow=flow_id,
                messages_in=node.count_in,
                messages_out=node.count_out,
                errors=node.count_err,
                queue=waiting.get(id(node), 0),
                mean_s=stats.mean() if stats else None,
                p99_s=stats.quantile(0.99) if stats else None,
                samples=stats.count if stats else 0,
                sample_sum_s=stats.sum if stats else 0.0,
                buckets=stats.cumulative_buckets() if stats else [],
            )
        )
    return Snapshot(
        time=time.time(),
        nodes=rows,
        flows=flows,
        pending=engine.pending,
        run_queue=len(engine._queue),
        messages_total=engine.messages_total,
        errors_total=engine.errors_total,
        brokers=brokers(engine),
    )


def tenant_view(snap: Snapshot, runtime: Any, user: str | None, role: str | None) -> Snapshot:
    """What `user` may see of `snap`: administrators (and `user` None: the runtime, a public scrape) all of
    it; others the nodes of the tabs they may see and their mqtt-broker connections. The engine totals and
    the embedded broker's client count stay (numbers, no names)."""
    if role == "administrator" or user is None:
        return snap
    from sofiaflow.runtime.security.ownership import unit_of_running

    ownership = runtime.ownership

    def sees_flow(flow_id: str) -> bool:
        return ownership.may_see(user, role, flow_id)

    def sees_node(node_id: str) -> bool:
        return ownership.may_see(user, role, unit_of_running(runtime, node_id))

    return dataclasses.replace(
        snap,
        nodes=[r for r in snap.nodes if sees_flow(r.flow)],
        flows={k: v for k, v in snap.flows.items() if sees_flow(k)},
        brokers=[b for b in snap.brokers if b.kind == "embedded" or sees_node(b.id)],
    )


def brokers(engine: Engine) -> list[BrokerRow]:
    """The embedded broker (clients connected to it) and each mqtt-broker config node (connected or not)."""
    out: list[BrokerRow] = []
    embedded = engine.services.get(MQTT_BROKER)
    if embedded is not None and getattr(embedded, "started", False):
        out.append(
            BrokerRow(
                "embedded",
                "mqtt-embedded",
                "embedded broker",
                f"{embedded.host}:{embedded.port}",
                True,
                embedded.clients_connected(),
            )
        )
    for node in list(engine.nodes.values()):
        if node.type != "mqtt-broker":
            continue
        target = str(getattr(node, "target", "") or "")  # the mqtt-broker node's public description
        out.append(
            BrokerRow(
                "mqtt-broker",
                node.id,
                node.name,
                target,
                bool(getattr(node, "connected", False)),
                len(getattr(node, "users", {}) or {}),
            )
        )
    return out


# ----- the process ---------------------------------------------------------------------------------


@dataclass
class ProcessUsage:
    cpu_percent: float  # of one core, since the previous call (0.0 on the first)
    rss_bytes: int
    threads: int


_process: Any = None


def process_usage() -> ProcessUsage:
    """This process's CPU share since the last call, resident memory and thread count (psutil)."""
    global _process
    import psutil

    if _process is None:
        _process = psutil.Process()
    with _process.oneshot():
        return ProcessUsage(_process.cpu_percent(None), _process.memory_info().rss, _process.num_threads())


# ----- throughput history ------------------------------------------------------------------------


class ThroughputHistory:
    """Messages per second per tab, one point per `interval` over the last `HISTORY_SECONDS`.

    Counters restart when a node is redeployed; a node whose object changed counts from zero, so a
    redeploy never shows as negative throughput.
    """

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self.engine = engine
        self.interval = interval
        self.points: deque[tuple[float, dict[str, float]]] = deque(maxlen=int(HISTORY_SECONDS / interval) + 1)
        self.labels: dict[str, str] = {}
        self._last: dict[str, tuple[int, int]] = {}  # node id -> (id(node object), count_in)
        self._last_time: float | None = None
        self._task: asyncio.Task | None = None
        self._read_at = time.monotonic()

    def sample(self, now: float | None = None) -> dict[str, float] | None:
        """Take one point now; returns the rates, or None on the first call (no interval yet)."""
        now = time.monotonic() if now is None else now
        handled: dict[str, int] = {}
        seen: dict[str, tuple[int, int]] = {}
        for node in list(self.engine.nodes.values()):
            if node.is_config_node:
                continue
            scope = top_flow(node.flow_scope)
            flow_id = scope.id if scope is not None else (node.z or "")
            if scope is not None:
                self.labels[flow_id] = scope.label or flow_id
            before = self._last.get(node.id)
            start = before[1] if before is not None and before[0] == id(node) else 0
            handled[flow_id] = handled.get(flow_id, 0) + max(node.count_in - start, 0)
            seen[node.id] = (id(node), node.count_in)
        self._last = seen
        previous, self._last_time = self._last_time, now
        if previous is None or now <= previous:
            return None
        rates = {flow: n / (now - previous) for flow, n in handled.items()}
        self.points.append((time.time(), rates))
        return rates

    def start(self) -> None:
        """Sample every `interval` seconds on the running loop (idempotent); counts as a read."""
        self._read_at = time.monotonic()
        if self._task is None or self._task.done():
            self._last_time = None  # a gap since the last run is not one interval
            self.sample()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while time.monotonic() - self._read_at < HISTORY_IDLE_STOP:
            await asyncio.sleep(self.interval)
            self.sample()

    def series(self) -> dict[str, list[tuple[float, float]]]:
        """Per tab: [(unix time, msgs/s)] oldest first; tabs with no point yet are absent."""
        out: dict[str, list[tuple[float, float]]] = {}
        for when, rates in self.points:
            for flow, rate in rates.items():
                out.setdefault(flow, []).append((when, rate))
        return out

    def latest(self) -> dict[str, float]:
        return dict(self.points[-1][1]) if self.points else {}


def history_for(engine: Engine) -> ThroughputHistory:
    """The engine's throughput history, created and started on first use (on the engine's loop)."""
    history = engine.services.get(METRICS_HISTORY)
    if history is None:
        history = engine.services[METRICS_HISTORY] = ThroughputHistory(engine)
    history.start()
    return history
