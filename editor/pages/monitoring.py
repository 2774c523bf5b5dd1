"""`/monitoring`: live per-node counters and handling times, per-flow throughput, MQTT clients, process load.

Administrators see every tab; developers and users the tabs they own or that are shared with them
(`sofiaflow.runtime.core.metrics.tenant_view`), the engine totals and the process load.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._format import NONE, duration, rate, size
from sofiaflow.editor.session import current_role, current_user, editor_page
from sofiaflow.runtime.core.metrics import Snapshot, history_for, process_usage, snapshot, tenant_view

REFRESH_SECONDS = 1.0

NODE_COLUMNS = [
    {"name": "flow", "label": "Flow", "field": "flow", "align": "left", "sortable": True},
    {"name": "node", "label": "Node", "field": "node", "align": "left", "sortable": True},
    {"name": "type", "label": "Type", "field": "type", "align": "left", "sortable": True},
    {"name": "in", "label": "In", "field": "in", "sortable": True},
    {"name": "out", "label": "Out", "field": "out", "sortable": True},
    {"name": "errors", "label": "Errors", "field": "errors", "sortable": True},
    {"name": "mean", "label": "Mean time", "field": "mean"},
    {"name": "p99", "label": "p99 time", "field": "p99"},
    {"name": "queue", "label": "Queued", "field": "queue", "sortable": True},
]
BROKER_COLUMNS = [
    {"name": "kind", "label": "Kind", "field": "kind", "align": "left"},
    {"name": "name", "label": "Name", "field": "name", "align": "left"},
    {"name": "target", "label": "Address", "field": "target", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {"name": "clients", "label": "Clients / users", "field": "clients"},
]
WORKER_COLUMNS = [
    {"name": "id", "label": "Worker", "field": "id", "align": "left", "sortable": True},
    {"name": "address", "label": "Address", "field": "address", "align": "left"},
    {"name": "revision", "label": "Flow revision", "field": "revision", "align": "left"},
    {"name": "uptime", "label": "Up", "field": "uptime"},
    {"name": "rate", "label": "Messages/s", "field": "rate"},
    {"name": "cpu", "label": "CPU", "field": "cpu"},
    {"name": "memory", "label": "Memory", "field": "memory"},
    {"name": "heartbeat", "label": "Last heartbeat", "field": "heartbeat"},
    {"name": "leads", "label": "Leads", "field": "leads", "align": "left"},
]


def worker_rows(workers: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
    """The cluster's workers table: one row per live worker (their heartbeats, as GET /cluster lists them)."""
    rows = []
    for beat in workers:
        rev = str(beat.get("rev") or "")
        rows.append(
            {
                "id": str(beat.get("id")),
                "address": beat.get("address") or NONE,
                "revision": f"{beat.get('revision', NONE)} ({rev[:8]})" if rev else NONE,
                "uptime": _uptime(float(beat.get("uptime") or 0)),
                "rate": rate(float(beat.get("msgs_per_s") or 0)),
                "cpu": f"{float(beat.get('cpu') or 0):.0f} %",
                "memory": size(int(beat.get("memory") or 0)),
                "heartbeat": f"{max(0.0, now - float(beat.get('heartbeat') or now)):.1f} s ago",
                "leads": ", ".join(beat.get("leads") or []) or NONE,
            }
        )
    return rows


def _uptime(seconds: float) -> str:
    """`42 s`, `12 min`, `3 h 05 min`, `2 d 4 h`."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


NOT_RUNNING = frozenset({"comment", "tab", "group", "subflow"})
"""Types that never handle a message: not listed (config nodes are not in the snapshot at all)."""


def node_label(name: str | None, node_type: str, node_id: str) -> str:
    """A node as the table names it: its name, else its type and short id (`change 3fa2c1`)."""
    return (name or "").strip() or f"{node_type} {node_id[:6]}"


def node_rows(snap: Snapshot) -> list[dict[str, Any]]:
    """The node table's rows: one per node that handles messages, busiest first."""
    rows = []
    running = (r for r in snap.nodes if r.type not in NOT_RUNNING)
    for row in sorted(running, key=lambda r: (-r.messages_in, r.flow, r.id)):
        rows.append(
            {
                "id": row.id,
                "flow": snap.flows.get(row.flow, row.flow),
                "node": node_label(row.name, row.type, row.id),
                "type": row.type,
                "in": row.messages_in,
                "out": row.messages_out,
                "errors": row.errors,
                "mean": duration(row.mean_s),
                "p99": duration(row.p99_s),
                "queue": row.queue,
            }
        )
    return rows


def broker_rows(snap: Snapshot) -> list[dict[str, Any]]:
    return [
        {
            "id": b.id,
            "kind": b.kind,
            "name": b.name or b.id,
            "target": b.target,
            "state": "listening"
            if b.kind == "embedded"
            else ("connected" if b.connected else "disconnected"),
            "clients": b.clients,
        }
        for b in snap.brokers
    ]


def chart_options(series: dict[str, list[tuple[float, float]]], labels: dict[str, str]) -> dict[str, Any]:
    """ECharts options: one line per tab, msgs/s over time."""
    return {
        "animation": False,
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0},
        "grid": {"left": 60, "right": 20, "top": 40, "bottom": 30},
        "xAxis": {"type": "time"},
        "yAxis": {"type": "value", "name": "msgs/s", "minInterval": 1},
        "series": [
            {
                "type": "line",
                "name": labels.get(flow, flow),
                "showSymbol": False,
                "data": [[round(when * 1000), round(value, 2)] for when, value in points],
            }
            for flow, points in sorted(series.items(), key=lambda item: labels.get(item[0], item[0]))
        ],
    }


class MonitoringView:
    """The page's content inside `container`, refreshed every `REFRESH_SECONDS` by a ui.timer."""

    def __init__(
        self, container: ui.element, runtime: Any, user: str | None = None, role: str | None = None
    ) -> None:
        self.runtime = runtime
        self.user, self.role = user, role
        with container:
            with ui.row().classes("w-full gap-3"):
                self.cards = {
                    key: self._card(key, label)
                    for key, label in (
                        ("rate", "Messages/s"),
                        ("handled", "Handled"),
                        ("errors", "Errors"),
                        ("pending", "Queued"),
                        ("cpu", "CPU"),
                        ("memory", "Memory"),
                        ("clients", "MQTT clients"),
                    )
                }
            ui.label("Throughput per flow").classes("text-lg font-semibold")
            self.chart = (
                ui.echart(chart_options({}, {})).classes("w-full h-64").props("data-testid=flow-chart")
            )
            ui.label("Nodes").classes("text-lg font-semibold")
            self.nodes = (
                ui.table(columns=NODE_COLUMNS, rows=[], row_key="id", pagination=50)
                .classes("w-full")
                .props("dense flat bordered data-testid=node-table")
            )
            ui.label("MQTT").classes("text-lg font-semibold")
            self.brokers = (
                ui.table(columns=BROKER_COLUMNS, rows=[], row_key="id")
                .classes("w-full")
                .props("dense flat bordered data-testid=broker-table")
            )
            self.brokers.props["no-data-label"] = "No embedded broker and no mqtt-broker connection"
            self.workers: Any = None
            if getattr(runtime, "cluster", None) is not None:  # cluster mode: every live worker
                ui.label("Workers").classes("text-lg font-semibold")
                self.workers = (
                    ui.table(columns=WORKER_COLUMNS, rows=[], row_key="id")
                    .classes("w-full")
                    .props("dense flat bordered data-testid=worker-table")
                )
            self.notice = ui.label("").classes("text-gray-500")
        self.refresh()
        ui.timer(REFRESH_SECONDS, self.refresh)
        if self.workers is not None:
            ui.timer(REFRESH_SECONDS, self.refresh_workers)

    async def refresh_workers(self) -> None:
        import time

        cluster = getattr(self.runtime, "cluster", None)
        if cluster is None or self.workers is None:
            return
        view = await cluster.describe()
        self.workers.rows = worker_rows(view["workers"], time.time())
        self.workers.update()

    def _sees(self, flow_id: str) -> bool:
        ownership = getattr(self.runtime, "ownership", None)
        return (
            self.role == "administrator"
            or ownership is None
            or ownership.may_see(self.user, self.role, flow_id)
        )

    @staticmethod
    def _card(key: str, label: str) -> ui.label:
        with ui.card().classes("px-4 py-2 min-w-32").props(f"flat bordered data-testid=card-{key}"):
            ui.label(label).classes("text-xs text-gray-500 uppercase")
            return ui.label(NONE).classes("text-2xl font-semibold").props(f"data-testid=value-{key}")

    def refresh(self) -> None:
        engine = self.runtime.engine
        usage = process_usage()
        self.cards["cpu"].set_text(f"{usage.cpu_percent:.0f} %")
        self.cards["memory"].set_text(size(usage.rss_bytes))
        if engine is None:
            self.notice.set_text("The runtime is not started.")
            return
        history = history_for(engine)
        snap = tenant_view(snapshot(engine), self.runtime, self.user, self.role)
        series = {flow: points for flow, points in history.series().items() if self._sees(flow)}
        self.cards["rate"].set_text(rate(sum(v for flow, v in history.latest().items() if self._sees(flow))))
        self.cards["handled"].set_text(f"{snap.messages_total:,}")
        rows = node_rows(snap)
        self.cards["errors"].set_text(f"{sum(r['errors'] for r in rows):,}")  # the rows' errors, as listed
        self.cards["pending"].set_text(f"{snap.pending:,}")
        self.cards["clients"].set_text(str(sum(b.clients for b in snap.brokers if b.kind == "embedded")))
        self.nodes.rows = rows
        self.nodes.update()
        self.brokers.rows = broker_rows(snap)
        self.brokers.update()
        self.chart.options.update(chart_options(series, {**history.labels, **snap.flows}))
        self.chart.update()
        self.notice.set_text("" if snap.nodes else "No flow is running.")


@editor_page("/monitoring", title="sofiaflow: monitoring")
def monitoring_page() -> None:
    page_header("Monitoring")
    with ui.column().classes("w-full p-4 gap-3") as body:
        user = current_user()
        MonitoringView(
            body, get_context().runtime, user or "", current_role() if user else "user"
        )  # "": nobody
