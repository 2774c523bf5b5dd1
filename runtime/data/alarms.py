"""Alarms, kept in the config DB: raised, updated, acknowledged and cleared by type and originator.

ThingsBoard's model. An alarm has a type ("device silent"), an originator (the device or topic it is about), an
owner (the user owning the flow that raised it; None for the administrators' and ownerless flows), a severity
(`SEVERITIES`, most severe first) and a status made of two flags, active/cleared and unacknowledged/acknowledged:
ACTIVE_UNACK, ACTIVE_ACK, CLEARED_UNACK, CLEARED_ACK. Times are epoch milliseconds: `startTs` (raised), `endTs`
(last raised), `ackTs`, `clearTs`.

While an alarm is active, raising the same type for the same originator and owner updates it (count + 1, endTs,
details): one active alarm per (owner, type, originator). A new severity changes it; an escalation (a more
severe level) makes an acknowledged alarm unacknowledged again, since what was acknowledged is no longer what is
happening. Clearing keeps the row (CLEARED_*); raising again after that starts a new alarm with a new id.
Acknowledging and clearing twice changes nothing and tells nobody.

Every change calls the listeners (`on_change`) with an `AlarmEvent`: created, updated, severity changed,
acknowledged, cleared, deleted; `origin` is the id of the node whose message caused it, None when it came from a
person (admin API, editor page). Listeners run in the caller's thread, after the change is committed.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Engine,
    Integer,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from sofiaflow.runtime.data.config_db import metadata
from sofiaflow.runtime.errors import NotFound, SofiaflowError, ValidationError

SEVERITIES = ("critical", "major", "minor", "warning")
"""Most severe first."""
STATUSES = ("ACTIVE_UNACK", "ACTIVE_ACK", "CLEARED_UNACK", "CLEARED_ACK")
STATUS_GROUPS = {"ANY": STATUSES, "ACTIVE": STATUSES[:2], "CLEARED": STATUSES[2:], "ACK": STATUSES[1::2]}
STATUS_GROUPS["UNACK"] = STATUSES[0::2]
EVENTS = ("created", "updated", "severity changed", "acknowledged", "cleared", "deleted")
MAX_TEXT = 200
"""Characters of a type, an originator or an owner."""
MAX_DETAILS = 64 * 1024
"""Bytes of an alarm's details as JSON."""
MAX_PAGE = 1000
DEFAULT_PAGE = 100

alarms_table = Table(
    "alarms",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("type", String(MAX_TEXT), nullable=False),
    Column("originator", String(MAX_TEXT), nullable=False),
    Column("owner", String(MAX_TEXT)),
    Column("severity", String(16), nullable=False, index=True),
    Column("cleared", Boolean, nullable=False),
    Column("acknowledged", Boolean, nullable=False),
    Column("count", Integer, nullable=False),
    Column("start_ts", BigInteger, nullable=False),
    Column("end_ts", BigInteger, nullable=False, index=True),
    Column("ack_ts", BigInteger),
    Column("clear_ts", BigInteger),
    Column("ack_by", String(MAX_TEXT)),
    Column("cleared_by", String(MAX_TEXT)),
    Column("details", JSON),
    Column("node", String(200)),
    Column("active_key", String(64), unique=True),
)
"""One row per alarm; `node` is the id of the alarm node that created it (it tells its flow what people do).
`active_key` (a hash of owner, type and originator) is set while the alarm is active and unique, so two
processes on one database (cluster workers) cannot both create the active alarm of a key."""


class AlarmError(SofiaflowError):
    """Base of the alarm store's errors."""


class AlarmValidationError(AlarmError, ValidationError):
    """A bad alarm property or query parameter; `field` names it."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


class AlarmNotFound(AlarmError, NotFound):
    """No alarm with that id (or none the caller may see)."""


@dataclass(frozen=True)
class Alarm:
    id: str
    type: str
    originator: str
    owner: str | None
    severity: str
    cleared: bool
    acknowledged: bool
    count: int
    start_ts: int
    end_ts: int
    ack_ts: int | None = None
    clear_ts: int | None = None
    ack_by: str | None = None
    cleared_by: str | None = None
    details: Any = None
    node: str | None = None

    @property
    def status(self) -> str:
        return f"{'CLEARED' if self.cleared else 'ACTIVE'}_{'ACK' if self.acknowledged else 'UNACK'}"

    def as_dict(self) -> dict[str, Any]:
        """The alarm as the API, the page and the flows see it (ThingsBoard's names)."""
        return {
            "id": self.id,
            "type": self.type,
            "originator": self.originator,
            "owner": self.owner,
            "severity": self.severity,
            "status": self.status,
            "count": self.count,
            "startTs": self.start_ts,
            "endTs": self.end_ts,
            "ackTs": self.ack_ts,
            "clearTs": self.clear_ts,
            "ackBy": self.ack_by,
            "clearedBy": self.cleared_by,
            "details": self.details,
        }


@dataclass(frozen=True)
class AlarmEvent:
    event: str
    alarm: Alarm
    origin: str | None = None
    previous_severity: str | None = None


@dataclass
class AlarmPage:
    alarms: list[Alarm]
    total: int
    offset: int
    limit: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "alarms": [a.as_dict() for a in self.alarms],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class AlarmQuery:
    """What `AlarmStore.list` selects; build it with `AlarmQuery.parse` from text (API query parameters)."""

    statuses: tuple[str, ...] = STATUSES
    severities: tuple[str, ...] = SEVERITIES
    originator: str | None = None
    type: str | None = None
    offset: int = 0
    limit: int = DEFAULT_PAGE
    owners: tuple[str | None, ...] | None = field(default=None)
    """None: every owner (administrators); else only these."""

    @classmethod
    def parse(
        cls,
        status: str | None = None,
        severity: str | None = None,
        originator: str | None = None,
        type: str | None = None,  # noqa: A002 - the alarm property's name
        offset: Any = 0,
        limit: Any = DEFAULT_PAGE,
        owners: tuple[str | None, ...] | None = None,
    ) -> AlarmQuery:
        """AlarmValidationError naming the field for a bad value. `status` and `severity` take comma-separated
        lists; a status is one of STATUSES or a group (ANY, ACTIVE, CLEARED, ACK, UNACK)."""
        statuses: list[str] = []
        for item in _items(status, "status"):
            group = STATUS_GROUPS.get(item.upper(), (item.upper(),) if item.upper() in STATUSES else None)
            if group is None:
                choices = ", ".join((*STATUSES, *STATUS_GROUPS))
                raise AlarmValidationError("status", f"expected one of {choices}, got {item!r}")
            statuses += [s for s in group if s not in statuses]
        severities = [check_severity(item, "severity") for item in _items(severity, "severity")]
        return cls(
            statuses=tuple(statuses) or STATUSES,
            severities=tuple(dict.fromkeys(severities)) or SEVERITIES,
            originator=_optional_text(originator, "originator"),
            type=_optional_text(type, "type"),
            offset=_whole(offset, "offset", 0, None),
            limit=_whole(limit, "limit", 1, MAX_PAGE),
            owners=owners,
        )


def _items(text: str | None, name: str) -> list[str]:
    if text is None:
        return []
    if not isinstance(text, str):
        raise AlarmValidationError(name, f"expected text, got {type(text).__name__}")
    return [item.strip() for item in text.split(",") if item.strip()]


def _optional_text(value: Any, name: str) -> str | None:
    return None if value is None or value == "" else check_text(value, name)


def _whole(value: Any, name: str, low: int, high: int | None) -> int:
    try:
        number = (
            int(value) if not isinstance(value, bool) and str(value).strip().lstrip("-").isdigit() else None
        )
    except (TypeError, ValueError):
        number = None
    if number is None or number < low or (high is not None and number > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise AlarmValidationError(name, f"expected a whole number {bound}, got {value!r}")
    return number


def check_text(value: Any, name: str) -> str:
    """`value` as an alarm's type, originator or owner: text of 1 to MAX_TEXT characters."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise AlarmValidationError(name, f"expected a non-empty text, got {value!r}")
    if len(value) > MAX_TEXT:
        raise AlarmValidationError(name, f"at most {MAX_TEXT} characters, got {len(value)}")
    return value


def check_details(value: Any) -> Any:
    """`value` as an alarm's details: JSON (objects, lists, text, numbers, booleans, null) of at most MAX_DETAILS
    bytes."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AlarmValidationError("details", f"must be JSON data: {exc}") from None
    if len(text.encode()) > MAX_DETAILS:
        raise AlarmValidationError(
            "details", f"at most {MAX_DETAILS} bytes as JSON, got {len(text.encode())}"
        )
    return value


def check_severity(value: Any, name: str = "severity") -> str:
    if not isinstance(value, str) or value.strip().lower() not in SEVERITIES:
        raise AlarmValidationError(name, f"expected one of {', '.join(SEVERITIES)}, got {value!r}")
    return value.strip().lower()


def _alarm(row: Any) -> Alarm:
    return Alarm(**{name: getattr(row, name) for name in Alarm.__dataclass_fields__})


Listener = Callable[[AlarmEvent], None]


class AlarmStore:
    """Alarms in the config DB (see the module docstring). Thread-safe (one change at a time per store); the
    one-active-alarm rule also holds between processes on one database (the unique `active_key`), and counts
    are added in the database."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        metadata.create_all(db, tables=[alarms_table])
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self.version = 0
        """Grows with every change (pages poll it to know when to refresh)."""

    # ----- listeners ---------------------------------------------------------------------------
    def on_change(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` after every change; returns a function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _tell(self, events: Iterable[AlarmEvent]) -> None:
        for event in events:
            for listener in list(self._listeners):
                listener(event)

    def changed_elsewhere(self) -> None:
        """Another process changed the alarms (a cluster worker, runtime/cluster/shared_alarms.py): move `version`
        so pages read again; the listeners are not called (they hear the changes of this process only)."""
        with self._lock:
            self.version += 1

    # ----- changes --------------------------------------------------------------------------
    def raise_alarm(
        self,
        type: str,  # noqa: A002 - the alarm property's name
        originator: str,
        severity: str,
        now_ms: int,
        owner: str | None = None,
        details: Any = None,
        origin: str | None = None,
    ) -> AlarmEvent:
        """Create the alarm, or update the active one of that owner, type and originator."""
        type, originator = check_text(type, "type"), check_text(originator, "originator")
        severity, details = check_severity(severity), check_details(details)
        key = _active_key(owner, type, originator)
        for attempt in (1, 2):  # a second time when another process created the alarm meanwhile
            try:
                with self._lock, self.db.begin() as conn:
                    event = self._raise(conn, key, type, originator, severity, now_ms, owner, details, origin)
                    self.version += 1
                break
            except IntegrityError:
                if attempt == 2:
                    raise
        self._tell([event])
        return event

    @staticmethod
    def _raise(
        conn: Any,
        key: str,
        type: str,  # noqa: A002
        originator: str,
        severity: str,
        now_ms: int,
        owner: str | None,
        details: Any,
        origin: str | None,
    ) -> AlarmEvent:
        c = alarms_table.c
        row = conn.execute(select(alarms_table).where(c.active_key == key)).first()
        if row is None:
            alarm = Alarm(
                id=uuid.uuid4().hex,
                type=type,
                originator=originator,
                owner=owner,
                severity=severity,
                cleared=False,
                acknowledged=False,
                count=1,
                start_ts=now_ms,
                end_ts=now_ms,
                details=details,
                node=origin,
            )
            conn.execute(insert(alarms_table).values(**alarm.__dict__, active_key=key))
            return AlarmEvent("created", alarm, origin)
        old = _alarm(row)
        changes: dict[str, Any] = {"count": c.count + 1, "end_ts": max(now_ms, old.end_ts)}
        if details is not None:
            changes["details"] = details
        if severity != old.severity:
            changes["severity"] = severity
            if SEVERITIES.index(severity) < SEVERITIES.index(old.severity):
                changes.update(acknowledged=False, ack_ts=None, ack_by=None)
        conn.execute(update(alarms_table).where(c.id == old.id).values(**changes))
        alarm = AlarmStore._row(conn, old.id)
        if severity != old.severity:
            return AlarmEvent("severity changed", alarm, origin, previous_severity=old.severity)
        return AlarmEvent("updated", alarm, origin)

    def clear_active(
        self,
        type: str,  # noqa: A002
        originator: str,
        now_ms: int,
        owner: str | None = None,
        details: Any = None,
        origin: str | None = None,
        by: str | None = None,
    ) -> AlarmEvent | None:
        """Clear the active alarm of that owner, type and originator; None when there is none."""
        type, originator = check_text(type, "type"), check_text(originator, "originator")
        with self._lock:
            with self.db.connect() as conn:
                key = _active_key(owner, type, originator)
                found = conn.execute(
                    select(alarms_table.c.id).where(alarms_table.c.active_key == key)
                ).scalar()
            if found is None:
                return None
            return self.clear(found, now_ms, by=by, origin=origin, details=details)

    def acknowledge(
        self, alarm_id: str, now_ms: int, by: str | None = None, origin: str | None = None
    ) -> tuple[Alarm, AlarmEvent | None]:
        """Acknowledge; the event is None when it was acknowledged already."""
        return self._set(alarm_id, "acknowledged", {"ack_ts": now_ms, "ack_by": by}, origin)

    def clear(
        self,
        alarm_id: str,
        now_ms: int,
        by: str | None = None,
        origin: str | None = None,
        details: Any = None,
    ) -> AlarmEvent | None:
        """Clear; None when it was cleared already."""
        changes: dict[str, Any] = {"clear_ts": now_ms, "cleared_by": by, "active_key": None}
        if details is not None:
            changes["details"] = check_details(details)
        return self._set(alarm_id, "cleared", changes, origin)[1]

    def _set(
        self, alarm_id: str, flag: str, changes: dict[str, Any], origin: str | None
    ) -> tuple[Alarm, AlarmEvent | None]:
        with self._lock, self.db.begin() as conn:
            old = self._row(conn, alarm_id)
            if getattr(old, flag):
                return old, None
            changes = {flag: True, **changes}
            conn.execute(update(alarms_table).where(alarms_table.c.id == alarm_id).values(**changes))
            alarm = self._row(conn, alarm_id)
            self.version += 1
        event = AlarmEvent(flag, alarm, origin)
        self._tell([event])
        return alarm, event

    def delete(self, alarm_id: str) -> Alarm:
        with self._lock, self.db.begin() as conn:
            old = self._row(conn, alarm_id)
            conn.execute(delete(alarms_table).where(alarms_table.c.id == alarm_id))
            self.version += 1
        self._tell([AlarmEvent("deleted", old)])
        return old

    # ----- reads --------------------------------------------------------------------------------
    @staticmethod
    def _row(conn: Any, alarm_id: str) -> Alarm:
        row = conn.execute(select(alarms_table).where(alarms_table.c.id == alarm_id)).first()
        if row is None:
            raise AlarmNotFound(f"no alarm with id {alarm_id!r}")
        return _alarm(row)

    def get(self, alarm_id: str, owners: tuple[str | None, ...] | None = None) -> Alarm:
        """The alarm; AlarmNotFound when there is none, or its owner is not among `owners` (when given)."""
        with self.db.connect() as conn:
            alarm = self._row(conn, alarm_id)
        if owners is not None and alarm.owner not in owners:
            raise AlarmNotFound(f"no alarm with id {alarm_id!r}")
        return alarm

    def active(self, type: str, originator: str, owner: str | None = None) -> Alarm | None:  # noqa: A002
        key = _active_key(owner, check_text(type, "type"), check_text(originator, "originator"))
        with self.db.connect() as conn:
            row = conn.execute(select(alarms_table).where(alarms_table.c.active_key == key)).first()
        return None if row is None else _alarm(row)

    def list(self, query: AlarmQuery | None = None) -> AlarmPage:
        """A page of the alarms `query` selects, the latest (endTs) first, and how many it selects in all."""
        query = query or AlarmQuery()
        c = alarms_table.c
        status = or_(
            *(
                and_(c.cleared.is_(s.startswith("CLEARED")), c.acknowledged.is_(s.endswith("_ACK")))
                for s in query.statuses
            )
        )
        where = [status, c.severity.in_(query.severities)]
        if query.originator is not None:
            where.append(c.originator == query.originator)
        if query.type is not None:
            where.append(c.type == query.type)
        if query.owners is not None:
            named = [o for o in query.owners if o is not None]
            where.append(or_(c.owner.in_(named), *([c.owner.is_(None)] if None in query.owners else [])))
        with self.db.connect() as conn:
            total = conn.execute(select(func.count()).select_from(alarms_table).where(*where)).scalar_one()
            rows = conn.execute(
                select(alarms_table)
                .where(*where)
                .order_by(c.end_ts.desc(), c.id)
                .offset(query.offset)
                .limit(query.limit)
            ).all()
        return AlarmPage([_alarm(r) for r in rows], total, query.offset, query.limit)


def _active_key(owner: str | None, type: str, originator: str) -> str:  # noqa: A002
    return hashlib.sha256(json.dumps([owner, type, originator]).encode()).hexdigest()


def memory_store() -> AlarmStore:
    """A store in a private in-memory SQLite database (a bare engine's, e.g. `FlowTester`'s)."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import StaticPool

    return AlarmStore(
        create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    )
