"""alarm: raise, update and clear alarms by type and originator (the runtime's ALARMS service), and tell the flow.

Each message raises or clears one alarm. Its type and severity are fixed or read from the message (TypedInputs);
its originator is a message property (by default `msg.device`, else `msg.topic`); `details` (a message
property, optional) is stored with it; the action is fixed (`raise`, `clear`) or `msg` (`msg.alarm` is
"raise" or "clear"). Raising an alarm that is active updates it (count, last time, details; a new severity
escalates or de-escalates it); clearing one that is not active does nothing. The alarm belongs to the node's
flow owner.

Out goes one message per event: the incoming message with `payload` = the alarm (ThingsBoard's fields: id,
type, originator, severity, status, count, startTs, endTs, ackTs, clearTs, ackBy, clearedBy, details) and
`event` = created, updated, severity changed or cleared (`previousSeverity` with a change). When a person
acknowledges or clears an alarm (alarms page, admin API), the node that created it sends a new message with
the same fields and `topic` = the originator: acknowledged or cleared. In a cluster every worker runs this node,
and the worker where the person acted tells its flow, so the message comes out once in the cluster (the other
workers only hear of the change for their pages: runtime/cluster/shared_alarms.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from sofiaflow.runtime.api import (
    ALARMS,
    UNDEFINED,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    SofiaflowError,
    new_message,
    typed_getter,
)

SEVERITIES = ("critical", "major", "minor", "warning")
_SENT_BY_PEOPLE = ("acknowledged", "cleared")


class AlarmConfig(NodeConfig):
    alarmType: str = Field(
        "device silent",
        title="Alarm type",
        description="What the alarm is about: a fixed text, or a msg property holding it",
        json_schema_extra={"x-types": ["str", "msg"]},
    )
    alarmTypeType: str = "str"
    originator: str = Field(
        "",
        title="Originator",
        description="The msg property naming the device or source the alarm is about; empty: msg.device, "
        "else msg.topic",
        json_schema_extra={"x-types": ["msg"]},
    )
    originatorType: str = "msg"
    severity: str = Field(
        "major",
        title="Severity",
        description="critical, major, minor or warning; or a msg property holding one",
        json_schema_extra={"x-types": ["str", "msg"]},
    )
    severityType: str = "str"
    action: Literal["raise", "clear", "msg"] = Field(
        "raise",
        title="Action",
        description="raise (create or update the alarm), clear (end it), or msg: msg.alarm says 'raise' or 'clear'",
        json_schema_extra={"x-choices": {"raise": "raise", "clear": "clear", "msg": "from msg.alarm"}},
    )
    details: str = Field(
        "",
        title="Details",
        description="The msg property stored with the alarm as its details (e.g. payload); empty: none",
        json_schema_extra={"x-types": ["msg"]},
    )
    detailsType: str = "msg"


def _missing(value: Any) -> bool:
    return value is None or value is UNDEFINED or value == ""


class AlarmNode(Node[AlarmConfig]):
    type = "alarm"
    category = "cep"
    color = "#f4a582"
    outputs = 1
    Config = AlarmConfig
    help = (
        "Raises, updates and clears alarms by type and originator, kept by the runtime (the Alarms page, "
        "`/alarms` in the admin API) and owned by this flow's owner.\n\n"
        "**Inputs**: a message per alarm. `alarmType` and `severity` (critical, major, minor, warning) are "
        "fixed or read from the message; the originator is a msg property (empty: `msg.device`, else "
        "`msg.topic`); `details` (a msg property, e.g. `payload`) is stored with the alarm. `action`: raise, "
        "clear, or msg (`msg.alarm` is 'raise' or 'clear').\n\n"
        "**Details**: while an alarm of the same type and originator is active, raising it again updates it "
        "(count, last time `endTs`, details); a new severity escalates or de-escalates it, and an escalation "
        "makes an acknowledged alarm unacknowledged. Clearing ends it (status CLEARED_UNACK or CLEARED_ACK); "
        "raising it after that creates a new alarm. Clearing an alarm that is not active does nothing.\n\n"
        "**Outputs**: one message per event: the input message with `msg.event` (created, updated, severity "
        "changed, cleared; `msg.previousSeverity` with a change) and `msg.payload` = the alarm {id, type, "
        "originator, severity, status, count, startTs, endTs, ackTs, clearTs, ackBy, clearedBy, details}. "
        "When someone acknowledges or clears the alarm on the Alarms page or through the admin API, the node "
        "that created it sends `msg.event` acknowledged or cleared with the alarm, `msg.topic` = originator.\n\n"
        "**Example**: absence (silent) -> alarm (raise); absence (recovered) -> alarm (clear) -> a notification."
    )

    def setup(self) -> None:
        cfg = self.config
        if cfg.originatorType != "msg":
            raise NodeError(f"originatorType: expected 'msg', got {cfg.originatorType!r}")
        if cfg.detailsType != "msg":
            raise NodeError(f"detailsType: expected 'msg', got {cfg.detailsType!r}")
        if cfg.alarmTypeType == "str" and not cfg.alarmType.strip():
            raise NodeError("alarmType: give the alarm's type, or read it from the message")
        if cfg.severityType == "str" and cfg.severity not in SEVERITIES:
            raise NodeError(f"severity: expected one of {', '.join(SEVERITIES)}, got {cfg.severity!r}")
        try:
            self._type = typed_getter(self, cfg.alarmType, cfg.alarmTypeType)
            self._severity = typed_getter(self, cfg.severity, cfg.severityType)
            self._originator = typed_getter(self, cfg.originator, "msg") if cfg.originator else None
            self._details = typed_getter(self, cfg.details, "msg") if cfg.details else None
        except (SofiaflowError, ValueError) as exc:
            raise NodeError(f"alarm: {exc}") from None
        self._unlisten: Any = None

    async def start(self) -> None:
        store = self.service(ALARMS)
        loop = asyncio.get_running_loop()

        def heard(event: Any) -> None:
            if event.origin is None and event.alarm.node == self.id and event.event in _SENT_BY_PEOPLE:
                loop.call_soon_threadsafe(self._tell_flow, event)

        self._unlisten = store.on_change(heard)

    async def close(self, removed: bool) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def _tell_flow(self, event: Any) -> None:
        if self._closed:
            return
        self.send(_with_event(new_message(topic=event.alarm.originator), event))

    # ----- messages ------------------------------------------------------------------------------
    def _read(self, msg: Msg) -> tuple[str, str, str, Any]:
        """(action, type, originator, details) of `msg`; NodeError naming what is missing or wrong."""
        action = self.config.action
        if action == "msg":
            action = msg.get("alarm")
            if action not in ("raise", "clear"):
                raise NodeError(f"msg.alarm: expected 'raise' or 'clear', got {action!r}")
        kind = self._type(msg)
        if _missing(kind):
            raise NodeError(
                f"alarm type: {self._where(self.config.alarmType, self.config.alarmTypeType)} is empty"
            )
        if self._originator is not None:
            originator, where = self._originator(msg), f"msg.{self.config.originator}"
        else:
            originator, where = msg.get("device"), "msg.device"
            if _missing(originator):
                originator, where = msg.get("topic"), "msg.device and msg.topic"
        if _missing(originator):
            raise NodeError(f"originator: {where} is empty")
        details = self._details(msg) if self._details is not None else None
        return action, str(kind), str(originator), None if details is UNDEFINED else details

    @staticmethod
    def _where(value: str, vtype: str) -> str:
        return f"msg.{value}" if vtype == "msg" else f"{vtype} {value!r}"

    async def on_input(self, msg: Msg) -> None:
        store = self.service(ALARMS)
        action, kind, originator, details = self._read(msg)
        now_ms = int(round(self.now() * 1000))
        try:
            if action == "raise":
                severity = self._severity(msg)
                if not isinstance(severity, str) or severity.strip().lower() not in SEVERITIES:
                    where = self._where(self.config.severity, self.config.severityType)
                    raise NodeError(
                        f"severity: {where} is {severity!r}; expected one of {', '.join(SEVERITIES)}"
                    )
                event = await asyncio.to_thread(
                    store.raise_alarm, kind, originator, severity, now_ms, self.owner, details, self.id
                )
            else:
                event = await asyncio.to_thread(
                    store.clear_active, kind, originator, now_ms, self.owner, details, self.id
                )
        except NodeError:
            raise
        except SofiaflowError as exc:
            raise NodeError(f"alarm: {exc}") from None
        self._show(store, event)
        if event is not None:
            self.send(_with_event(msg, event))

    def _show(self, store: Any, event: Any) -> None:
        if event is None:
            self.status("grey", "ring", "no active alarm to clear")
            return
        alarm = event.alarm
        fill = "grey" if alarm.cleared else ("red" if alarm.severity in ("critical", "major") else "yellow")
        self.status(fill, "ring" if alarm.cleared else "dot", f"{alarm.originator}: {event.event}")


def _with_event(msg: Msg, event: Any) -> Msg:
    msg["payload"] = event.alarm.as_dict()
    msg["event"] = event.event
    if event.previous_severity is not None:
        msg["previousSeverity"] = event.previous_severity
    else:
        msg.pop("previousSeverity", None)
    return msg
