"""`GET /metrics`: the engine's live counters in Prometheus text format.

A custom collector reads the running engine on each scrape (see `sofiaflow.runtime.core.metrics.snapshot`); nothing
is counted per message for it. Access needs the admin bearer token (any scope), unless the setting
`SOFIAFLOW_METRICS_PUBLIC=1` opens it to unauthenticated scrapers (who then get everything: the
setting is the administrator's choice). With a token, administrators get every series; developers and
users only the series of the tabs (and mqtt-broker config nodes) they may see, plus the engine totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from sofiaflow.runtime.core.metrics import Snapshot, history_for, snapshot, tenant_view
from sofiaflow.runtime.http.deps import bearer, require_user

if TYPE_CHECKING:
    from prometheus_client.core import Metric

# prometheus_client (with its metric classes) is loaded at the first scrape: a server nobody scrapes does without
CONTENT_TYPE_LATEST = "text/plain; version=1.0.0; charset=utf-8"
"""prometheus_client.CONTENT_TYPE_LATEST (tests/test_late_imports.py checks they agree)."""

router = APIRouter(tags=["metrics"])

NODE_LABELS = ["flow", "node", "type", "name"]


class EngineCollector:
    """Prometheus collector over `engine()` (None while the runtime is not started: no engine metrics)."""

    def __init__(
        self, engine: Callable[[], Any], view: Callable[[Snapshot], Snapshot] = lambda snap: snap
    ) -> None:
        self._engine = engine
        self._view = view

    def collect(self) -> Iterator[Metric]:
        engine = self._engine()
        if engine is None:
            return
        yield from families(self._view(snapshot(engine)), history_for(engine).latest())

    def describe(self) -> list[Metric]:
        return []  # produced live: nothing to check at registration


def families(snap: Snapshot, rates: dict[str, float]) -> list[Metric]:
    """The metric families of one snapshot; `rates` is the latest msgs/s per tab."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

    m_in = CounterMetricFamily("sofiaflow_node_messages_in", "Messages a node received.", labels=NODE_LABELS)
    m_out = CounterMetricFamily("sofiaflow_node_messages_out", "Messages a node sent.", labels=NODE_LABELS)
    m_err = CounterMetricFamily("sofiaflow_node_errors", "Errors a node raised.", labels=NODE_LABELS)
    m_queue = GaugeMetricFamily(
        "sofiaflow_node_queue_depth", "Messages waiting for a node.", labels=NODE_LABELS
    )
    m_hist = HistogramMetricFamily(
        "sofiaflow_node_handling_seconds",
        "Handling time of the timed sample of a node's messages.",
        labels=NODE_LABELS,
    )
    m_mean = GaugeMetricFamily(
        "sofiaflow_node_handling_mean_seconds",
        "Mean handling time over a node's recent timed messages.",
        labels=NODE_LABELS,
    )
    m_p99 = GaugeMetricFamily(
        "sofiaflow_node_handling_p99_seconds",
        "99th percentile handling time over a node's recent timed messages.",
        labels=NODE_LABELS,
    )
    for row in snap.nodes:
        labels = [row.flow, row.id, row.type, row.name]
        m_in.add_metric(labels, row.messages_in)
        m_out.add_metric(labels, row.messages_out)
        m_err.add_metric(labels, row.errors)
        m_queue.add_metric(labels, row.queue)
        if row.samples:
            m_hist.add_metric(labels, row.buckets, row.sample_sum_s)
            m_mean.add_metric(labels, row.mean_s)
            m_p99.add_metric(labels, row.p99_s)
    flow_total = CounterMetricFamily(
        "sofiaflow_flow_messages", "Messages handled by a tab's nodes.", labels=["flow", "label"]
    )
    flow_rate = GaugeMetricFamily(
        "sofiaflow_flow_messages_per_second",
        "Messages handled per second by a tab's nodes (last interval).",
        labels=["flow", "label"],
    )
    for flow_id, count in snap.flow_messages().items():
        label = snap.flows.get(flow_id, flow_id)
        flow_total.add_metric([flow_id, label], count)
        flow_rate.add_metric([flow_id, label], rates.get(flow_id, 0.0))
    engine_families = [
        CounterMetricFamily(
            "sofiaflow_engine_messages", "Messages handled by all nodes.", value=snap.messages_total
        ),
        CounterMetricFamily(
            "sofiaflow_engine_errors", "Errors raised by all nodes.", value=snap.errors_total
        ),
        GaugeMetricFamily(
            "sofiaflow_engine_pending", "Messages queued anywhere in the engine.", value=snap.pending
        ),
        GaugeMetricFamily(
            "sofiaflow_engine_run_queue", "Messages in the engine's run queue.", value=snap.run_queue
        ),
    ]
    clients = GaugeMetricFamily(
        "sofiaflow_mqtt_clients_connected",
        "MQTT clients connected to the embedded broker.",
        labels=["broker"],
    )
    links = GaugeMetricFamily(
        "sofiaflow_mqtt_broker_connected",
        "1 when an mqtt-broker config node is connected.",
        labels=["node", "name", "target"],
    )
    for broker in snap.brokers:
        if broker.kind == "embedded":
            clients.add_metric([broker.target], broker.clients)
        else:
            links.add_metric([broker.id, broker.name, broker.target], 1 if broker.connected else 0)
    return [
        m_in,
        m_out,
        m_err,
        m_queue,
        m_hist,
        m_mean,
        m_p99,
        flow_total,
        flow_rate,
        *engine_families,
        clients,
        links,
    ]


def metrics_text(
    engine: Callable[[], Any], view: Callable[[Snapshot], Snapshot] = lambda snap: snap
) -> bytes:
    """The exposition text: engine metrics (as `view` lets the caller see them) plus the process's CPU,
    memory and file descriptors."""
    from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine, view))
    ProcessCollector(registry=registry)
    return generate_latest(registry)


def metrics_access(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str | None:
    """Open when the runtime's settings say `metrics_public`; otherwise a valid bearer token is needed."""
    runtime = request.app.state.runtime
    if getattr(runtime.settings, "metrics_public", False):
        return None
    return require_user(request, creds)


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(metrics_access)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the engine's counters (async: read on the engine's loop)."""
    runtime = request.app.state.runtime
    user, role = getattr(request.state, "user", None), getattr(request.state, "role", None)
    text = metrics_text(lambda: runtime.engine, lambda snap: tenant_view(snap, runtime, user, role))
    if runtime.redis is not None:  # cluster mode: the partition nodes' dead letters
        from sofiaflow.runtime.cluster.dead_letters import dead_letters_metric

        text += await dead_letters_metric(runtime.redis)
    return Response(text, media_type=CONTENT_TYPE_LATEST)
