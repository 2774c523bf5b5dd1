"""Who owns each flow (tab) and who it is shared with; what a user sees of the flow set, and how a
user's deploy merges into it.

Administrators see and change everything. Developers and users see the tabs they own or that are
shared with them, plus what belongs to no tab (config nodes, subflow definitions). A developer's
deploy carries only what they see; the tabs they cannot see are kept as they are, and touching one
(its id in the deploy) is refused. A tab first deployed by someone is theirs. Tabs with no owner
(deployed from the command line or before owners existed) are the administrators'.
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import JSON, Column, Engine, String, Table, delete, insert, select, update

from .db import metadata
from .permissions import PermissionDenied
from .types import FlowJSON

flow_owners = Table(
    "flow_owners",
    metadata,
    Column("tab", String(200), primary_key=True),
    Column("owner", String(200)),
    Column("shared", JSON, nullable=False),
)


def tab_ids(flows: FlowJSON) -> set[str]:
    return {n["id"] for n in flows if isinstance(n, dict) and n.get("type") == "tab" and isinstance(n.get("id"), str)}


def _tab_of(node: dict[str, Any], tabs: set[str]) -> str | None:
    """The tab a flow item belongs to (the tab itself, or its nodes' `z`); None for config nodes and subflows."""
    if node.get("type") == "tab":
        return node.get("id")
    z = node.get("z")
    return z if z in tabs else None


def _shared_needs(current: FlowJSON, kept: FlowJSON, present: set[Any]) -> FlowJSON:
    """The config nodes and subflows (with their nodes) that the kept tabs use and the deploy left out: a
    developer cannot take them away from flows they cannot see."""
    by_id = {n.get("id"): n for n in current if isinstance(n, dict)}
    members: dict[str, list[dict]] = {}
    for node in current:
        if isinstance(node, dict) and by_id.get(node.get("z"), {}).get("type") == "subflow":
            members.setdefault(node["z"], []).append(node)
    needed: list[dict] = []
    seen: set[Any] = set(present)
    queue = list(kept)
    while queue:
        node = queue.pop()
        refs = [v for k, v in node.items() if k not in ("id", "z", "wires") and isinstance(v, str)]
        if str(node.get("type", "")).startswith("subflow:"):
            refs.append(node["type"][len("subflow:"):])
        for ref in refs:
            target = by_id.get(ref)
            if target is None or ref in seen or target.get("type") == "tab" or target.get("z") in by_id \
                    and by_id[target["z"]].get("type") == "tab":
                continue
            seen.add(ref)
            group = [target, *members.get(ref, [])] if target.get("type") == "subflow" else [target]
            needed.extend(group)
            queue.extend(group)
    return needed


class FlowOwnership:
    """Tab owners and shares, in the config DB (cached in memory)."""

    def __init__(self, db: Engine) -> None:
        metadata.create_all(db, tables=[flow_owners])
        self._db = db
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str | None, list[str]]] | None = None

    def _all(self) -> dict[str, tuple[str | None, list[str]]]:
        with self._lock:
            if self._cache is None:
                with self._db.connect() as conn:
                    rows = conn.execute(select(flow_owners)).all()
                self._cache = {r.tab: (r.owner, list(r.shared or [])) for r in rows}
            return self._cache

    def owner(self, tab: str) -> str | None:
        return self._all().get(tab, (None, []))[0]

    def sharing(self, tab: str) -> dict[str, Any]:
        owner, shared = self._all().get(tab, (None, []))
        return {"tab": tab, "owner": owner, "shared": shared}

    def may_see(self, user: str | None, role: str | None, tab: str) -> bool:
        if role == "administrator" or user is None:
            return True
        owner, shared = self._all().get(tab, (None, []))
        return owner == user or user in shared

    def may_change(self, user: str | None, role: str | None, tab: str, exists: bool = True) -> bool:
        """Administrators change anything; developers the tabs they own or that are shared with them, and new
        tabs; users nothing."""
        if role == "administrator" or user is None:
            return True
        if role != "developer":
            return False
        return not exists or self.may_see(user, role, tab)

    # ----- views and merges -----------------------------------------------------------------------
    def view(self, flows: FlowJSON, user: str | None, role: str | None) -> FlowJSON:
        """What `user` sees of `flows`."""
        if role == "administrator" or user is None:
            return flows
        tabs = tab_ids(flows)
        return [n for n in flows if (tab := _tab_of(n, tabs)) is None or self.may_see(user, role, tab)]

    def merge(self, current: FlowJSON, incoming: FlowJSON, user: str | None, role: str | None) -> FlowJSON:
        """The whole flow set after `user` deploys `incoming` (what they see, changed): the tabs they cannot
        see are kept from `current`. PermissionDenied when `incoming` touches one of those tabs."""
        if role == "administrator" or user is None:
            return incoming
        tabs = tab_ids(current)
        hidden = {t for t in tabs if not self.may_see(user, role, t)}
        for node in incoming:
            if not isinstance(node, dict):
                continue
            tab = node.get("id") if node.get("type") == "tab" else node.get("z")
            if tab in hidden:
                raise PermissionDenied(f"flow {tab!r} is not {user}'s and not shared with them; "
                                       f"node {node.get('id')!r} may not change it")
        kept = [n for n in current if _tab_of(n, tabs) in hidden]
        present = {n.get("id") for n in incoming if isinstance(n, dict)}
        return kept + _shared_needs(current, kept, present) + list(incoming)

    # ----- changes --------------------------------------------------------------------------------
    def claim_new(self, flows: FlowJSON, user: str | None) -> None:
        """Before a deploy: the tabs of `flows` seen for the first time become `user`'s."""
        new = tab_ids(flows) - set(self._all())
        if new:
            with self._db.begin() as conn:
                for tab in sorted(new):
                    conn.execute(insert(flow_owners).values(tab=tab, owner=user, shared=[]))
            self._forget()

    def deployed(self, flows: FlowJSON) -> None:
        """After a deploy (or a refused one): forget the tabs that `flows`, the running set, does not hold."""
        gone = set(self._all()) - tab_ids(flows)
        if gone:
            with self._db.begin() as conn:
                conn.execute(delete(flow_owners).where(flow_owners.c.tab.in_(gone)))
            self._forget()

    def share(self, tab: str, owner: str | None = None, shared: list[str] | None = None) -> dict[str, Any]:
        """Change a tab's owner and/or the users it is shared with."""
        current_owner, current_shared = self._all().get(tab, (None, []))
        values = {"owner": current_owner if owner is None else owner,
                  "shared": current_shared if shared is None else sorted(set(shared))}
        with self._db.begin() as conn:
            if tab in self._all():
                conn.execute(update(flow_owners).where(flow_owners.c.tab == tab).values(**values))
            else:
                conn.execute(insert(flow_owners).values(tab=tab, **values))
        self._forget()
        return self.sharing(tab)

    def release_user(self, user: str) -> list[str]:
        """A user is being deleted: the units they own pass to the administrators (no owner) and none stays
        shared with them. The units that changed."""
        changed = []
        with self._db.begin() as conn:
            for unit, (owner, shared) in self._all().items():
                if owner == user or user in shared:
                    conn.execute(update(flow_owners).where(flow_owners.c.tab == unit).values(
                        owner=None if owner == user else owner, shared=[u for u in shared if u != user]))
                    changed.append(unit)
        self._forget()
        return changed

    def _forget(self) -> None:
        with self._lock:
            self._cache = None
