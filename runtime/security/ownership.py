"""Who owns each flow (tab), subflow definition and config node, and who it is shared with; what a user
sees of the flow set, and how a user's deploy merges into it.

Owned objects ("units") are tabs, subflow definitions and global config nodes; a node on a tab or inside a
subflow belongs to that tab or subflow, a config node scoped to a tab belongs to the tab. Administrators see
and change everything. Developers and users see the units they own or that are shared with them. A
developer's deploy carries only what they see; the units they cannot see are kept as they are, and a
deploy that changes one (its id, or a node inside it) or *uses* one is refused, naming the node and the
object. Using means: any property of a node naming the id of a hidden config node, subflow or node (link
targets of `link out`/`link call`, wires, `g`), or a `subflow:<id>` type. A unit first deployed by someone
is theirs; the units already running when a deploy arrives are never claimed. Units with no owner (from
the command line, the default flows, or before owners existed: rows with owner NULL, or no row) are the
administrators'.

Sharing, one API for all three kinds: `GET /flow/{id}/sharing` and `PUT /flow/{id}/sharing` with `{"owner":
name, "shared": [names]}`, where `id` is a tab, a subflow definition or a config node; the answer is
`{"id", "kind": "tab"|"subflow"|"config", "owner", "shared"}` (and `"tab": id` for tabs, as before).
"""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import JSON, Column, Engine, String, Table, delete, insert, select, update

from sofiaflow.runtime.data.config_db import metadata
from sofiaflow.runtime.security.permissions import PermissionDenied
from sofiaflow.runtime.types import FlowJSON

CLI_USER = "cli"
"""Who deploys from the command line (`sofiaflow run --flows`, `sofiaflow flows import`): the platform itself,
not a user; what it deploys has no owner and so is the administrators'."""

flow_owners = Table(  # one row per unit (tab, subflow definition, config node); the column keeps its old name
    "flow_owners",
    metadata,
    Column("tab", String(200), primary_key=True),
    Column("owner", String(200)),
    Column("shared", JSON, nullable=False),
)

CONTAINERS = ("tab", "subflow")
_NOT_REFERENCES = frozenset({"id", "z", "type", "name", "label", "info", "x", "y", "w", "h", "_alias"})


def tab_ids(flows: FlowJSON) -> set[str]:
    return {
        n["id"]
        for n in flows
        if isinstance(n, dict) and n.get("type") == "tab" and isinstance(n.get("id"), str)
    }


def containers(flows: FlowJSON) -> dict[str, str]:
    """{id: "tab"|"subflow"} of the tabs and subflow definitions of `flows`."""
    return {
        n["id"]: n["type"]
        for n in flows
        if isinstance(n, dict) and n.get("type") in CONTAINERS and isinstance(n.get("id"), str)
    }


def unit_of(node: dict[str, Any], boxes: dict[str, str]) -> str | None:
    """The owned unit a flow item belongs to: its tab or subflow, or itself (tabs, subflows, global configs)."""
    if node.get("type") in CONTAINERS:
        return node.get("id")
    z = node.get("z")
    return z if z in boxes else node.get("id")


def units(flows: FlowJSON) -> dict[str, str]:
    """{unit id: kind} of `flows`: every tab, subflow definition and global config node."""
    boxes = containers(flows)
    out: dict[str, str] = dict(boxes)
    for node in flows:
        if (
            isinstance(node, dict)
            and node.get("type") not in CONTAINERS
            and node.get("z") not in boxes
            and isinstance(node.get("id"), str)
        ):
            out[node["id"]] = "config"
    return out


def references(node: dict[str, Any]) -> list[str]:
    """The ids a node may name: string properties, strings in (nested) lists such as `links` and `wires`,
    and the subflow of a `subflow:<id>` type."""
    found: list[str] = []

    def walk(value: Any, depth: int) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, list) and depth < 3:
            for item in value:
                walk(item, depth + 1)

    for key, value in node.items():
        if key not in _NOT_REFERENCES:
            walk(value, 0)
    kind = node.get("type")
    if isinstance(kind, str) and kind.startswith("subflow:"):
        found.append(kind[len("subflow:") :])
    return found


def _describe(node: dict[str, Any], boxes: dict[str, str]) -> str:
    kind = node.get("type")
    if kind == "tab":
        return f"flow {node.get('id')!r}"
    if kind == "subflow":
        return f"subflow {node.get('id')!r}"
    z = node.get("z")
    if z in boxes:
        return f"node {node.get('id')!r} ({kind}) of {boxes[z] if boxes[z] == 'subflow' else 'flow'} {z!r}"
    return f"config node {node.get('id')!r} ({kind})"


def _shared_needs(current: FlowJSON, kept: FlowJSON, present: set[Any]) -> FlowJSON:
    """The config nodes and subflows (with their nodes) that the kept tabs use and the deploy left out: a
    developer cannot take them away from flows they cannot see."""
    by_id = {n.get("id"): n for n in current if isinstance(n, dict)}
    members: dict[str, list[dict]] = {}
    for node in current:
        if isinstance(node, dict) and by_id.get(node.get("z"), {}).get("type") == "subflow":
            members.setdefault(node["z"], []).append(node)
    needed: list[dict] = []
    seen: set[Any] = set(present) | {n.get("id") for n in kept}
    queue = list(kept)
    while queue:
        node = queue.pop()
        refs = [v for k, v in node.items() if k not in ("id", "z", "wires") and isinstance(v, str)]
        if str(node.get("type", "")).startswith("subflow:"):
            refs.append(node["type"][len("subflow:") :])
        for ref in refs:
            target = by_id.get(ref)
            if (
                target is None
                or ref in seen
                or target.get("type") == "tab"
                or target.get("z") in by_id
                and by_id[target["z"]].get("type") == "tab"
            ):
                continue
            seen.add(ref)
            group = [target, *members.get(ref, [])] if target.get("type") == "subflow" else [target]
            needed.extend(group)
            queue.extend(group)
    return needed


class FlowOwnership:
    """Owners and shares of tabs, subflow definitions and config nodes, in the config DB (cached in memory)."""

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

    def owner(self, unit: str) -> str | None:
        """The owner of a tab, subflow or config node (None: the administrators')."""
        return self._all().get(unit, (None, []))[0]

    def sharing(self, unit: str, kind: str = "tab") -> dict[str, Any]:
        owner, shared = self._all().get(unit, (None, []))
        out: dict[str, Any] = {"tab": unit} if kind == "tab" else {}
        return {**out, "id": unit, "kind": kind, "owner": owner, "shared": shared}

    def may_see(self, user: str | None, role: str | None, unit: str | None) -> bool:
        """Administrators (and the runtime itself, user None) see everything; others their own and shared
        units. Ownerless units are the administrators'."""
        if role == "administrator" or user is None:
            return True
        owner, shared = self._all().get(unit, (None, [])) if unit is not None else (None, [])
        return owner == user or user in shared

    def may_change(self, user: str | None, role: str | None, unit: str, exists: bool = True) -> bool:
        """Administrators change anything; developers the units they own or that are shared with them, and new
        ones; users nothing."""
        if role == "administrator" or user is None:
            return True
        if role != "developer":
            return False
        return not exists or self.may_see(user, role, unit)

    # ----- views and merges -----------------------------------------------------------------------
    def view(self, flows: FlowJSON, user: str | None, role: str | None) -> FlowJSON:
        """What `user` sees of `flows`."""
        if role == "administrator" or user is None:
            return flows
        boxes = containers(flows)
        return [n for n in flows if isinstance(n, dict) and self.may_see(user, role, unit_of(n, boxes))]

    def hidden(self, flows: FlowJSON, user: str | None, role: str | None) -> FlowJSON:
        """The items of `flows` that `user` cannot see."""
        if role == "administrator" or user is None:
            return []
        boxes = containers(flows)
        return [n for n in flows if isinstance(n, dict) and not self.may_see(user, role, unit_of(n, boxes))]

    def own_part(self, current: FlowJSON, flows: FlowJSON, user: str | None, role: str | None) -> FlowJSON:
        """`flows` (a whole set computed from `current`) without the hidden items it kept unchanged: what to
        hand to `merge` as the user's deploy."""
        unchanged = [n for n in self.hidden(current, user, role) if n in flows]
        return [n for n in flows if n not in unchanged]

    def merge(self, current: FlowJSON, incoming: FlowJSON, user: str | None, role: str | None) -> FlowJSON:
        """The whole flow set after `user` deploys `incoming` (what they see, changed): the units they cannot
        see are kept from `current`. PermissionDenied when `incoming` changes or uses one of them."""
        if role == "administrator" or user is None:
            return incoming
        kept = self.hidden(current, user, role)
        self.check_uses(current, kept, incoming, user)
        present = {n.get("id") for n in incoming if isinstance(n, dict)}
        return kept + _shared_needs(current, kept, present) + list(incoming)

    def check_uses(self, current: FlowJSON, kept: FlowJSON, incoming: FlowJSON, user: str | None) -> None:
        """PermissionDenied unless every node of `incoming` stays out of the `kept` (hidden) items: it may not
        be one, sit in one, or name one."""
        boxes = containers(current)
        hidden_by_id = {n.get("id"): n for n in kept}
        hidden_units = {unit_of(n, boxes) for n in kept}
        for node in incoming:
            if not isinstance(node, dict):
                continue
            node_id = node.get("id")
            z = node.get("z")
            if node_id in hidden_by_id or (z in hidden_units and z in boxes):
                target = hidden_by_id.get(node_id) or hidden_by_id.get(z) or {"id": z, "type": boxes.get(z)}
                raise PermissionDenied(
                    f"node {node_id!r} may not change {_describe(target, boxes)}: it is not "
                    f"{user}'s and not shared with them"
                )
            for ref in references(node):
                target = hidden_by_id.get(ref)
                if target is not None:
                    raise PermissionDenied(
                        f"node {node_id!r} may not use {_describe(target, boxes)}: it is not "
                        f"{user}'s and not shared with them"
                    )

    # ----- changes --------------------------------------------------------------------------------
    def claim_new(self, flows: FlowJSON, user: str | None, running: FlowJSON | None = None) -> None:
        """Before a deploy: the units of `flows` seen for the first time become `user`'s. Units in `running`
        (the flows deployed now) are never claimed: one without an owner stays the administrators'. What the
        command line deploys (`CLI_USER`) is the platform's: it gets no owner."""
        new = set(units(flows)) - set(self._all()) - set(units(running or []))
        owner = None if user == CLI_USER else user
        if new:
            with self._db.begin() as conn:
                for unit in sorted(new):
                    conn.execute(insert(flow_owners).values(tab=unit, owner=owner, shared=[]))
            self._forget()

    def deployed(self, flows: FlowJSON) -> None:
        """After a deploy (or a refused one): forget the units that `flows`, the running set, does not hold."""
        gone = set(self._all()) - set(units(flows))
        if gone:
            with self._db.begin() as conn:
                conn.execute(delete(flow_owners).where(flow_owners.c.tab.in_(gone)))
            self._forget()

    def share(
        self, unit: str, owner: str | None = None, shared: list[str] | None = None, kind: str = "tab"
    ) -> dict[str, Any]:
        """Change a unit's owner and/or the users it is shared with."""
        current_owner, current_shared = self._all().get(unit, (None, []))
        values = {
            "owner": current_owner if owner is None else owner,
            "shared": current_shared if shared is None else sorted(set(shared)),
        }
        with self._db.begin() as conn:
            if unit in self._all():
                conn.execute(update(flow_owners).where(flow_owners.c.tab == unit).values(**values))
            else:
                conn.execute(insert(flow_owners).values(tab=unit, **values))
        self._forget()
        return self.sharing(unit, kind)

    def release_user(self, user: str) -> list[str]:
        """A user is being deleted: the units they own pass to the administrators (no owner) and none stays
        shared with them. The units that changed."""
        changed = []
        with self._db.begin() as conn:
            for unit, (owner, shared) in self._all().items():
                if owner == user or user in shared:
                    conn.execute(
                        update(flow_owners)
                        .where(flow_owners.c.tab == unit)
                        .values(
                            owner=None if owner == user else owner, shared=[u for u in shared if u != user]
                        )
                    )
                    changed.append(unit)
        self._forget()
        return changed

    def _forget(self) -> None:
        with self._lock:
            self._cache = None


def unit_of_running(runtime: Any, node_id: str) -> str | None:
    """The unit (tab, subflow definition or config node) a node of the running flows belongs to, by id: a
    node inside a subflow instance belongs to the tab of the instance. None when no such node is deployed."""
    deployer = runtime.deployer
    node = deployer.running.get(node_id) if deployer is not None else None
    if node is not None:
        scope = getattr(node, "flow_scope", None)
        while scope is not None and scope.instance is not None and scope.parent is not None:
            scope = scope.parent
        if scope is not None and scope.parent is not None:
            return scope.id
        return node_id if getattr(node, "z", None) is None else node.z
    flows = runtime.flows if deployer is not None else []
    raw = next((n for n in flows if isinstance(n, dict) and n.get("id") == node_id), None)
    return unit_of(raw, containers(flows)) if raw is not None else None
