"""Deployed flow sets with their revision history, in the config DB."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, insert, select

from sofiaflow.runtime.data.config_db import flow_revisions
from sofiaflow.runtime.errors import StaleRevisionError
from sofiaflow.runtime.types import FlowJSON


def flows_text(flows: FlowJSON, allow_nan: bool = True) -> str:
    """The compact JSON of the flows that their rev hashes (and the config DB stores); with `allow_nan=False`
    a ValueError when a number in them is not finite."""
    return json.dumps(flows, separators=(",", ":"), ensure_ascii=False, allow_nan=allow_nan)


def revision_of(flows: FlowJSON, text: str | None = None) -> str:
    """Node-RED's rev: sha256 of the compact JSON of the flows (credentials already removed); `text`: that JSON
    when the caller has it (`flows_text(flows)`)."""
    if text is None:
        text = flows_text(flows)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: Node.js hashes them as U+FFFD
        data = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _storable(text: str, flows: FlowJSON) -> str:
    """`text` unless it holds lone surrogates (no UTF-8 for the DB): then the same JSON with escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(flows, separators=(",", ":"))
    return text


@dataclass(frozen=True)
class Revision:
    id: int
    rev: str
    deploy_type: str
    user: str | None
    created: datetime


@dataclass(frozen=True)
class Head:
    """The newest stored revision: its sequence number (monotonic: the row id), rev and deploy type."""

    seq: int
    rev: str
    deploy_type: str


class FlowStore:
    """Saves every deployed flow set; the newest is the current one.

    Each saved revision has a sequence number (`Head.seq`, increasing with every save), which is what workers of a
    cluster compare to know whether they run the newest flows. `expected_rev`, when set, makes `save` a
    compare-and-set: the newest row is locked (`SELECT ... FOR UPDATE` on PostgreSQL) and the save is refused
    with StaleRevisionError unless that row's rev is the expected one."""

    def __init__(self, engine: Engine, keep: int = 100) -> None:
        self._engine = engine
        self.keep = keep
        self.expected_rev: str | None = None

    def head(self) -> Head | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(flow_revisions.c.id, flow_revisions.c.rev, flow_revisions.c.deploy_type)
                .order_by(flow_revisions.c.id.desc())
                .limit(1)
            ).first()
        return Head(row[0], row[1], row[2]) if row else None

    def load_seq(self, seq: int) -> FlowJSON | None:
        """The flows saved as revision number `seq`, or None when it is not kept."""
        with self._engine.connect() as conn:
            row = conn.execute(select(flow_revisions.c.flows).where(flow_revisions.c.id == seq)).first()
        return json.loads(row[0]) if row else None

    def save(
        self, flows: FlowJSON, deploy_type: str, user: str | None = None, text: str | None = None
    ) -> str:
        """Store `flows` as the newest revision (`text`: their `flows_text`, when the caller has it); its rev."""
        if text is None:
            text = flows_text(flows)
        rev = revision_of(flows, text)
        with self._engine.begin() as conn:
            if self.expected_rev is not None:
                newest = conn.execute(
                    select(flow_revisions.c.rev)
                    .order_by(flow_revisions.c.id.desc())
                    .limit(1)
                    .with_for_update()
                ).first()
                current = newest[0] if newest else revision_of([])
                if current != self.expected_rev:
                    raise StaleRevisionError(self.expected_rev, current)
            conn.execute(
                insert(flow_revisions).values(
                    rev=rev,
                    flows=_storable(text, flows),
                    deploy_type=deploy_type,
                    user=user,
                    created=datetime.now(UTC),
                )
            )
            ids = [
                r[0] for r in conn.execute(select(flow_revisions.c.id).order_by(flow_revisions.c.id.desc()))
            ]
            if len(ids) > self.keep:
                conn.execute(delete(flow_revisions).where(flow_revisions.c.id < ids[self.keep - 1]))
        return rev

    def current(self) -> tuple[FlowJSON, str] | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(flow_revisions.c.flows, flow_revisions.c.rev)
                .order_by(flow_revisions.c.id.desc())
                .limit(1)
            ).first()
        return (json.loads(row[0]), row[1]) if row else None

    def history(self, limit: int = 20) -> list[Revision]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(
                    flow_revisions.c.id,
                    flow_revisions.c.rev,
                    flow_revisions.c.deploy_type,
                    flow_revisions.c.user,
                    flow_revisions.c.created,
                )
                .order_by(flow_revisions.c.id.desc())
                .limit(limit)
            ).all()
        return [Revision(*r) for r in rows]

    def load(self, rev: str) -> FlowJSON | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                select(flow_revisions.c.flows)
                .where(flow_revisions.c.rev == rev)
                .order_by(flow_revisions.c.id.desc())
            ).first()
        return json.loads(row[0]) if row else None
