"""`/alarms`: the alarms raised by the flows' alarm nodes, filtered by status and severity, acknowledged and
cleared here (the flow that raised one hears it, as from the admin API), refreshed live when alarms change.

Administrators see every alarm; developers and users their own (the alarms of the flows they own); users only
read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from nicegui import ui

from sofiaflow.editor.context import get_context
from sofiaflow.editor.layout import page_header
from sofiaflow.editor.pages._access import audit, may_write
from sofiaflow.editor.pages._format import NONE
from sofiaflow.editor.session import current_role, current_user, editor_page
from sofiaflow.runtime.core.services import ALARMS
from sofiaflow.runtime.data.alarms import AlarmNotFound, AlarmQuery, AlarmStore

REFRESH_SECONDS = 1.0
"""How often the page looks whether alarms changed (a counter; the table is read again only then)."""
SHOWN = 500
"""At most this many alarms (the latest) in the table; the rest are counted."""
SEVERITY_COLORS = {"critical": "red-9", "major": "orange-9", "minor": "amber-8", "warning": "blue-7"}
STATUS_CHOICES = {
    "ACTIVE": "Active",
    "ACTIVE_UNACK": "Active, unacknowledged",
    "ACTIVE_ACK": "Active, acknowledged",
    "CLEARED": "Cleared",
    "CLEARED_UNACK": "Cleared, unacknowledged",
    "CLEARED_ACK": "Cleared, acknowledged",
    "ANY": "Any status",
}
COLUMNS = [
    {"name": "severity", "label": "Severity", "field": "severity", "align": "left", "sortable": True},
    {"name": "type", "label": "Type", "field": "type", "align": "left", "sortable": True},
    {"name": "originator", "label": "Originator", "field": "originator", "align": "left", "sortable": True},
    {"name": "status", "label": "Status", "field": "status", "align": "left", "sortable": True},
    {"name": "count", "label": "Count", "field": "count", "sortable": True},
    {"name": "first", "label": "First (UTC)", "field": "first", "align": "left", "sortable": True},
    {"name": "last", "label": "Last (UTC)", "field": "last", "align": "left", "sortable": True},
    {"name": "ackBy", "label": "Acknowledged by", "field": "ackBy", "align": "left"},
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
_COLOR_OF = ", ".join(f"{k}: '{v}'" for k, v in SEVERITY_COLORS.items())
_SEVERITY_CELL = (
    '<q-td :props="props"><q-chip dense square text-color="white" :label="props.value" '
    f':color="({{{_COLOR_OF}}})[props.value]" /></q-td>'
)
_ACTIONS_CELL = """
<q-td :props="props">
  <q-btn v-if="props.row.canAck" flat dense no-caps label="Acknowledge"
    :aria-label="'Acknowledge ' + props.row.type + ' of ' + props.row.originator"
    @click="$parent.$emit('ack', props.row.id)" />
  <q-btn v-if="props.row.canClear" flat dense no-caps color="red-9" label="Clear"
    :aria-label="'Clear ' + props.row.type + ' of ' + props.row.originator"
    @click="$parent.$emit('clear', props.row.id)" />
</q-td>"""


def when(ms: int | None) -> str:
    """Epoch milliseconds as `2026-12-06 16:20:05` (UTC)."""
    if ms is None:
        return NONE
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def alarm_rows(alarms: list[Any], writable: bool) -> list[dict[str, Any]]:
    return [
        {
            "id": a.id,
            "severity": a.severity,
            "type": a.type,
            "originator": a.originator,
            "status": a.status,
            "count": a.count,
            "first": when(a.start_ts),
            "last": when(a.end_ts),
            "ackBy": a.ack_by or NONE,
            "canAck": writable and not a.acknowledged,
            "canClear": writable and not a.cleared,
        }
        for a in alarms
    ]


def store() -> AlarmStore:
    engine = get_context().runtime.engine
    alarms = engine.services.get(ALARMS) if engine is not None else None
    if alarms is None:
        raise RuntimeError("the alarm store is not running")
    return alarms


class AlarmsView:
    """Filters, the alarm table and its actions inside `container`; re-read when the store's version moves."""

    def __init__(self, container: ui.element, user: str | None, role: str) -> None:
        self.user, self.role = user, role
        self.writable = may_write()
        self.seen = -1
        with container:
            with ui.row().classes("w-full items-center gap-3"):
                ui.label("Alarms").classes("text-lg font-semibold")
                self.status = ui.select(
                    STATUS_CHOICES, value="ACTIVE", label="Status", on_change=self.refresh
                ).classes("w-64")
                self.severity = (
                    ui.select(
                        {s: s.capitalize() for s in SEVERITY_COLORS},
                        value=[],
                        multiple=True,
                        label="Severity",
                        on_change=self.refresh,
                    )
                    .classes("w-72")
                    .props("use-chips clearable")
                )
                ui.space()
                self.summary = ui.label("").classes("text-gray-600").props("data-testid=alarm-summary")
            self.problem = ui.label("").classes("text-red-600").props("data-testid=alarm-error")
            self.table = (
                ui.table(columns=COLUMNS, rows=[], row_key="id", pagination=25)
                .classes("w-full")
                .props("dense flat bordered data-testid=alarm-table")
            )
            self.table.props["no-data-label"] = "No alarm"
            self.table.add_slot("body-cell-severity", _SEVERITY_CELL)
            self.table.add_slot("body-cell-actions", _ACTIONS_CELL)
            self.table.on("ack", lambda e: self.act("ack", e.args))
            self.table.on("clear", lambda e: self.act("clear", e.args))
        self.refresh()
        ui.timer(REFRESH_SECONDS, self.poll)

    def owners(self) -> tuple[str | None, ...] | None:
        return None if self.role == "administrator" else (self.user,)

    def poll(self) -> None:
        if store().version != self.seen:
            self.refresh()

    def refresh(self) -> None:
        alarms = store()
        self.seen = alarms.version
        query = AlarmQuery.parse(
            status=self.status.value or "ANY",
            severity=",".join(self.severity.value or []) or None,
            limit=SHOWN,
            owners=self.owners(),
        )
        page = alarms.list(query)
        self.table.rows = alarm_rows(page.alarms, self.writable)
        self.table.update()
        shown = f" (the latest {len(page.alarms)} shown)" if page.total > len(page.alarms) else ""
        self.summary.set_text(f"{page.total} alarm{'s' if page.total != 1 else ''}{shown}")

    def act(self, action: str, alarm_id: Any) -> None:
        what = f"alarm.{action}"
        if not self.writable:
            audit(what, str(alarm_id), "denied", {"message": "role only reads"})
            self.problem.set_text("Your role only reads: alarms cannot be acknowledged or cleared.")
            return
        alarms = store()
        now = int(datetime.now(UTC).timestamp() * 1000)
        try:
            alarms.get(str(alarm_id), self.owners())
            if action == "ack":
                alarms.acknowledge(str(alarm_id), now, by=self.user)
            else:
                alarms.clear(str(alarm_id), now, by=self.user)
        except AlarmNotFound as exc:
            self.problem.set_text(str(exc))
            return
        audit(what, str(alarm_id))
        self.problem.set_text("")
        self.refresh()


@editor_page("/alarms", title="sofiaflow: alarms")
def alarms_page() -> None:
    page_header("Alarms")
    with ui.column().classes("w-full p-4 gap-3") as body:
        user = current_user()
        AlarmsView(body, user, current_role() if user else "user")
