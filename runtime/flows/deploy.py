"""Deploys: validate a whole flow set, then stop and start only what the deploy type says.

Types as Node-RED's: `full` restarts everything; `flows` restarts the tabs that hold an added,
changed, removed or rewired node; `nodes` restarts only changed and removed nodes, and rewires the
rest in place, so unchanged nodes keep their queues, timers and context. Every new node is built
and set up before anything stops: a flow set that fails anywhere is refused whole and what ran
before keeps running. Deploys are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import ValidationError

from sofiaflow.runtime.core.engine import Engine
from sofiaflow.runtime.core.env import evaluate_env
from sofiaflow.runtime.core.flow_scope import FlowScope
from sofiaflow.runtime.core.message import clone_value
from sofiaflow.runtime.core.node import Node
from sofiaflow.runtime.core.placement import Placement, place
from sofiaflow.runtime.core.subflow_node import SubflowInstanceNode
from sofiaflow.runtime.errors import FlowValidationError, Problem, SofiaflowError, StaleRevisionError
from sofiaflow.runtime.flows.env_props import EnvRef, PropertyEnv, credential_env_names, scope_lookup
from sofiaflow.runtime.flows.model import WARNING, as_flow_list, errors_only, load, validate
from sofiaflow.runtime.flows.plan import NodeSpec, Plan, ScopeSpec, make_plan
from sofiaflow.runtime.flows.registry import NodeRegistry
from sofiaflow.runtime.flows.service_defaults import provide_defaults
from sofiaflow.runtime.flows.store import FlowStore, flows_text, revision_of
from sofiaflow.runtime.security.credentials import UNCHANGED, CredentialStore
from sofiaflow.runtime.types import FlowJSON

log = logging.getLogger("sofiaflow.deploy")

DEPLOY_TYPES = ("full", "flows", "nodes", "reload")


@dataclass
class DeployResult:
    rev: str
    deploy_type: str
    started: int = 0
    stopped: int = 0
    problems: list[Problem] = field(default_factory=list)  # not-runnable nodes and warnings
    cluster: dict[str, Any] | None = None
    """In a cluster: {revision, rev, applied, pending}, the workers that run the new revision and those that did
    not report it within the deploy timeout."""
    start_failures: list[Problem] = field(
        default_factory=list
    )  # nodes whose start() raised (they stay stopped)


class Deployer:
    """Owns what runs: the current flows, their revision, scopes and node instances."""

    def __init__(
        self,
        engine: Engine,
        registry: NodeRegistry,
        credentials: CredentialStore,
        store: FlowStore | None = None,
    ) -> None:
        self.engine = engine
        self.registry = registry
        self.credentials = credentials
        self.store = store
        if "subflow" not in registry:
            registry.register(SubflowInstanceNode, "sofiaflow")
        provide_defaults(engine.services)
        self.flows: FlowJSON = []
        self.rev: str = revision_of([])
        self.plan = Plan()
        self.problems: list[Problem] = []
        self.scopes: dict[str, FlowScope] = {}
        self.running: dict[str, Node] = {}
        self.state = "stop"
        self._lock = asyncio.Lock()
        self.root = FlowScope("global", engine.global_context, [], label="global")
        self._no_env_refs = False  # during a deploy whose flows name no ${VAR}: nodes are built as written
        self._deploying: FlowJSON | None = None  # the flows of the deploy under way (whose env names to hide)
        self.offline = False
        """Checking flows for another process (`flows validate`, `flows import`): a `${VAR}` property whose
        variable is not set here is a warning ("set at deploy"), not an error."""

    # ----- public ------------------------------------------------------------------------------
    async def deploy(
        self,
        flows: Any,
        deploy_type: str = "full",
        rev: str | None = None,
        credentials: dict[str, dict] | None = None,
        user: str | None = None,
        save: bool = True,
        restart: set[str] | frozenset[str] = frozenset(),
    ) -> DeployResult:
        """Deploy `flows`; raises StaleRevisionError or FlowValidationError and then changes nothing.

        `restart`: ids of nodes that restart whatever the deploy type (their credentials changed elsewhere)."""
        if deploy_type not in DEPLOY_TYPES:
            raise FlowValidationError(
                [Problem(f"unknown deployment type {deploy_type!r}; use one of {DEPLOY_TYPES}")]
            )
        async with self._lock, _gc_paused():
            if rev is not None and rev != self.rev:
                raise StaleRevisionError(rev, self.rev)
            if deploy_type == "reload":
                current = self.store.current() if self.store else None
                flows = current[0] if current else self.flows
                deploy_type, save = "full", False
            flows = clone_value(as_flow_list(flows))
            clean, cred_updates = self.credentials.extract(flows, credentials)
            text = _finite_text(clean)  # the rev's text; None when a number is not finite (named below)
            fs = load(clean, self.registry)
            self._no_env_refs = text is not None and "${" not in text and "$(" not in text
            problems = validate(fs, self.registry, finite=text is not None, env_refs=not self._no_env_refs)
            errors = errors_only(problems)
            if errors:
                raise FlowValidationError(errors)
            plan = make_plan(fs, self.registry)
            notes = [p for p in problems if p.severity != "error"]
            if save:
                # credentials first, so new nodes see them when built
                self.credentials.apply(cred_updates, set(fs.by_id) | {n for n in plan.nodes})
            # a node whose credentials change restarts, as Node-RED does, whatever the deploy type
            new_credentials = {
                nid
                for nid, creds in cred_updates.items()
                if any(value != UNCHANGED for value in creds.values())
            } | set(restart)
            self._deploying = clean
            try:
                result = await self._switch(
                    plan,
                    deploy_type if self.state == "start" else "full",
                    notes,
                    credentials_changed=new_credentials,
                )
            finally:
                self._no_env_refs, self._deploying = False, None
            text = text if text is not None else flows_text(clean)  # one encoding: rev and stored revision
            new_rev = revision_of(clean, text)
            if save:
                if self.store is not None:
                    self.store.save(clean, deploy_type, user, text=text)
                self.credentials.save()
            self.flows, self.rev, self.problems = clean, new_rev, notes
            result.rev = new_rev
            self.engine.events.publish("notification/runtime-deploy", {"revision": new_rev})
            if plan.stopped_tabs:
                self.engine.events.publish(
                    "notification/runtime-state",
                    {
                        "state": "start",
                        "error": "missing-types",
                        "types": sorted(
                            {p.node_type for p in notes if p.severity == "not-runnable" and p.node_type}
                        ),
                    },
                )
            return result

    async def start(self) -> None:
        """Start the current flows (after a stop, or at boot)."""
        async with self._lock:
            if self.state == "start":
                return
            self.state = "start"
            await self._switch(self.plan, "full", self.problems, force_all=True)
            self.engine.events.publish("notification/runtime-state", {"state": "start"})

    async def stop(self) -> None:
        """Stop every node; the flows stay deployed."""
        async with self._lock:
            await self._stop_nodes(list(self.running.values()), removed=False)
            self.running.clear()
            self.scopes.clear()
            self.state = "stop"
            self.engine.events.publish("notification/runtime-state", {"state": "stop"})

    # ----- the switch-over -----------------------------------------------------------------------
    async def _switch(
        self,
        plan: Plan,
        deploy_type: str,
        notes: list[Problem],
        force_all: bool = False,
        credentials_changed: set[str] = frozenset(),
    ) -> DeployResult:
        result = DeployResult(rev="", deploy_type=deploy_type, problems=list(notes))
        if self.state != "start" and not force_all:
            # not running: still build and set up every node, so a deploy (or an import) that
            # would fail at start is refused now; the built nodes are discarded unstarted
            scopes, _ = self._build_scopes(plan, set(plan.nodes))
            self._build_nodes(list(plan.nodes.values()), scopes, result.problems)
            self.plan = plan
            return result
        old = self.plan
        restart = (
            self._restart_set(old, plan, deploy_type, credentials_changed)
            if not force_all
            else set(plan.nodes) | set(old.nodes)
        )
        new_scopes, reused = self._build_scopes(plan, restart)
        # nodes of rebuilt scopes must restart too
        restart |= {
            nid for nid, spec in plan.nodes.items() if spec.scope in new_scopes and spec.scope not in reused
        }
        restart |= {
            nid
            for nid, spec in plan.nodes.items()
            if spec.scope is not None and spec.scope not in self.scopes
        }
        to_start = [spec for nid, spec in plan.nodes.items() if nid in restart or nid not in self.running]
        built = self._build_nodes(to_start, new_scopes, result.problems)
        to_stop = [n for nid, n in self.running.items() if nid in restart or nid not in plan.nodes]
        await self._stop_nodes(to_stop, removed_ids=set(old.nodes) - set(plan.nodes))
        for node in to_stop:
            self.running.pop(node.id, None)
        for scope_id in list(self.scopes):
            if scope_id not in new_scopes:
                if scope_id not in plan.scopes:
                    self.engine.contexts.delete_scope(f"flow:{scope_id}")
                del self.scopes[scope_id]
        self.scopes.update(new_scopes)
        for node in built:
            self.engine.add(node)
            self.running[node.id] = node
        for scope in self.scopes.values():
            spec = plan.scopes[scope.id]
            if spec.instance:
                scope.instance = self.running.get(spec.instance)
        for node_id, node in self.running.items():
            spec = plan.nodes.get(node_id)
            self.engine.wire(node, spec.wires if spec else [])
        self._index_listeners()
        self.plan = plan
        result.start_failures = await self._start_nodes(built)
        result.started, result.stopped = len(built), len(to_stop)
        return result

    def _restart_set(
        self, old: Plan, new: Plan, deploy_type: str, credentials_changed: set[str] = frozenset()
    ) -> set[str]:
        if deploy_type == "full" or old.global_env != new.global_env:
            return set(old.nodes) | set(new.nodes)
        changed = {
            nid
            for nid, spec in new.nodes.items()
            if nid not in old.nodes
            or old.nodes[nid].fingerprint() != spec.fingerprint()
            or old.nodes[nid].type != spec.type
        }
        changed |= {
            nid
            for nid, spec in new.nodes.items()
            if nid in credentials_changed or spec.raw.get("_alias") in credentials_changed
        }
        changed |= {
            nid
            for nid, spec in new.nodes.items()
            if spec.scope in new.scopes
            and (
                spec.scope not in old.scopes
                or old.scopes[spec.scope].fingerprint() != new.scopes[spec.scope].fingerprint()
            )
        }
        changed_configs = {nid for nid in changed if new.nodes[nid].is_config}
        changed_configs |= {nid for nid, spec in old.nodes.items() if spec.is_config and nid not in new.nodes}
        while changed_configs:  # users of changed config nodes restart too, transitively
            users = {
                nid
                for nid, spec in new.nodes.items()
                if nid not in changed and _references(spec.raw, changed_configs)
            }
            changed |= users
            changed_configs = {nid for nid in users if new.nodes[nid].is_config}
        removed = set(old.nodes) - set(new.nodes)
        if deploy_type == "nodes":
            return changed | removed
        rewired = {
            nid for nid, spec in new.nodes.items() if nid in old.nodes and old.nodes[nid].wires != spec.wires
        }
        touched_tabs = {new.nodes[n].tab for n in changed | rewired} | {old.nodes[n].tab for n in removed}
        return {
            nid for nid, spec in new.nodes.items() if spec.tab in touched_tabs or nid in changed
        } | removed

    def _build_scopes(self, plan: Plan, restart: set[str]) -> tuple[dict[str, FlowScope], set[str]]:
        """FlowScopes for the new plan: reused when unchanged, rebuilt otherwise."""
        self.root.env = [evaluate_env(plan.global_env, lambda n: None)]
        scopes: dict[str, FlowScope] = {}
        reused: set[str] = set()
        for scope_id, spec in plan.scopes.items():
            existing = self.scopes.get(scope_id)
            old_spec = self.plan.scopes.get(scope_id)
            if existing is not None and old_spec is not None and old_spec.fingerprint() == spec.fingerprint():
                scopes[scope_id] = existing
                reused.add(scope_id)
                continue
            parent = scopes.get(spec.parent) if spec.parent else self.root
            scopes[scope_id] = self._make_scope(spec, parent or self.root)
        return scopes, reused

    def _make_scope(self, spec: ScopeSpec, parent: FlowScope) -> FlowScope:
        creds = self.credentials.get(spec.instance or spec.id)
        layers: list[dict] = []
        lookup_parent = parent.env_get
        for entries in reversed(spec.env):  # outermost (definition) first, so the instance overrides it
            values = evaluate_env(entries, lookup_parent, creds)
            layers.insert(0, values)
            lookup_parent = _chain(values, lookup_parent)
        context = self.engine.contexts.scope(f"flow:{spec.id}", parent.context if spec.instance else None)
        scope = FlowScope(spec.id, context, layers, parent=parent, label=spec.label)
        for group_id, group in spec.groups.items():
            scope.groups[group_id] = {
                "env": evaluate_env(group.get("env") or [], lambda n: None, self.credentials.get(group_id)),
                "g": group.get("g"),
                "name": group.get("name"),
            }
        return scope

    def _build_nodes(
        self, specs: list[NodeSpec], scopes: dict[str, FlowScope], notes: list[Problem] | None = None
    ) -> list[Node]:
        """Construct and set up every node to start; any failure refuses the whole deploy.

        A node's `${VAR}` properties are filled from its scope first, then its config is checked, as Node-RED
        does; a problem on such a property names the variable and its value (or that it is not set). Offline,
        a node whose only problems are variables not set here is left out, with a warning in `notes`."""
        problems: list[Problem] = []
        hidden = credential_env_names(() if self._no_env_refs else self._deploying or self.flows)
        built: list[Node] = []
        placements: dict[int, Placement] = {}  # by scope: one owner and role look-up per tab and deploy
        for spec in specs:
            cls = self.registry.get(spec.type)
            scope = scopes.get(spec.scope) if spec.scope else self.root
            if scope is None:
                scope = self.root
            env = (
                None if self._no_env_refs else PropertyEnv.of(spec.raw, partial(scope_lookup, scope), hidden)
            )
            # each problem of this node, with the variables not set behind it
            node_problems: list[tuple[Problem, list[EnvRef]]] = []
            try:
                config = cls.Config.model_validate(env.substituted() if env is not None else spec.raw)
                node = cls(
                    config,
                    scope,
                    self.engine,
                    self.credentials.get(spec.raw.get("_alias", spec.id)) or self.credentials.get(spec.id),
                )
                placement = placements.get(id(scope))
                if placement is None:
                    placement = placements[id(scope)] = place(scope, self.engine.services)
                node._placement = placement
                node.setup()
            except ValidationError as exc:
                for err in exc.errors():
                    field_ = ".".join(str(p) for p in err["loc"])
                    named = env.invalid(err["loc"], err["msg"]) if env is not None else None
                    if env is not None and named is not None:
                        message, ref = named
                        unset = [ref] if env.is_unset(ref) else []
                        node_problems.append((Problem(message, spec.id, spec.type, field_), unset))
                    else:
                        message = f"invalid value {err.get('input')!r}: {err['msg']}"
                        node_problems.append((Problem(message, spec.id, spec.type, field_), []))
            except Exception as exc:  # noqa: BLE001 - a node's setup bug is that node's problem
                text = str(exc) if isinstance(exc, SofiaflowError) else f"{type(exc).__name__}: {exc}"
                refs: list[EnvRef] = []
                if env is not None:
                    text, refs = env.annotate(text)
                unset = refs if env is not None and all(env.is_unset(ref) for ref in refs) else []
                node_problems.append((Problem(text, spec.id, spec.type), unset))
            if not node_problems:
                built.append(node)
            elif self.offline and notes is not None and all(unset for _, unset in node_problems):
                missing = {ref.path: ref for _, unset in node_problems for ref in unset}
                notes.extend(
                    Problem(
                        f"{ref.written}: env variable {ref.name} is not set here; the deploy fills the property "
                        "and checks it (set at deploy)",
                        spec.id,
                        spec.type,
                        ref.prop,
                        severity=WARNING,
                    )
                    for ref in missing.values()
                )
            else:
                problems.extend(problem for problem, _ in node_problems)
        if problems:
            raise FlowValidationError(problems)
        return built

    def _index_listeners(self) -> None:
        for scope in self.scopes.values():
            scope.listeners = {"error": [], "status": [], "complete": []}
        self.root.listeners = {"error": [], "status": [], "complete": []}
        for node in self.running.values():
            if node.listens_to:
                node.flow_scope.listeners.setdefault(node.listens_to, []).append(node)
        for node in self.running.values():
            node._watched = any(c.accepts(node) for c in node.flow_scope.listeners["complete"])

    async def _start_nodes(self, nodes: list[Node]) -> list[Problem]:
        """Start `nodes` (config nodes first, sources last); the ones that failed, with their error."""
        failures = []
        for node in sorted(nodes, key=_start_rank):
            try:
                await node.start()
            except Exception as exc:  # noqa: BLE001 - Node-RED keeps the others running
                self.engine.handle_error(node, exc, None)
                node.status("red", "ring", f"start failed: {exc}")
                failures.append(Problem(f"start failed: {exc}", node.id, node.type))
        return failures

    async def _stop_nodes(
        self, nodes: list[Node], removed: bool = True, removed_ids: set[str] | None = None
    ) -> None:
        for node in sorted(nodes, key=_start_rank, reverse=True):
            gone = removed if removed_ids is None else node.id in removed_ids
            await self.engine.remove(node, gone)
            if gone:
                self.engine.contexts.delete_scope(f"node:{node.z}:{node.alias}")


@contextlib.asynccontextmanager
async def _gc_paused() -> Any:
    """A deploy allocates many small objects at once: collect once at the end, not during it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _finite_text(flows: FlowJSON) -> str | None:
    """`flows_text(flows)` when every number in them is finite, else None (one pass in C)."""
    try:
        return flows_text(flows, allow_nan=False)
    except (ValueError, TypeError):  # NaN or Infinity, a cycle, or something JSON has not
        return None


def _start_rank(node: Node) -> int:
    return 0 if node.is_config_node else (2 if node.is_source or not node.inputs else 1)


def _chain(values: dict[str, Any], parent: Any) -> Any:
    return lambda name: values[name] if name in values else parent(name)


def _references(raw: dict, ids: set[str]) -> bool:
    for key, value in raw.items():
        if key in ("id", "z", "wires", "type", "g"):
            continue
        if isinstance(value, str) and value in ids:
            return True
        if isinstance(value, list) and any(isinstance(v, str) and v in ids for v in value):
            return True
    return False
