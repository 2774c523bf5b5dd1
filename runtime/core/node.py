"""The node contract. Every node type is a subclass of `Node`; the runtime does the rest.

A node type declares, as class attributes:

- `type`: the name stored in flow JSON (`"change"`, `"python function"`).
- `category`, `label`, `help`: where and how the palette shows it.
- `inputs` (0 or 1) and `outputs` (a number; override `output_count(config)` when it depends on
  the configuration, as switch does).
- `Config`: a pydantic model of its stored properties (subclass `NodeConfig`). Import validates
  against it and the editor builds the property form from its JSON schema.
- `credentials`: secret fields, `{"password": "password", "user": "text"}`; they are stored apart
  from the flow JSON and reach the node as `self.credentials`.

and implements any of:

- `setup()` (sync): prepare from `self.config`; raise `NodeError` to refuse the deploy with a
  message (compile errors, bad expressions). Runs before anything starts.
- `async start()`: open connections, arm timers. Config nodes start first, sources last.
- `on_input(msg)`: handle one message. A plain `def` runs inline on the dispatcher (fast path,
  must not block); an `async def` runs in the node's own ordered worker, so a slow node does not
  stall unrelated branches. Raising fails the message: it goes to the flow's `catch` nodes with
  `msg.error` naming this node.
- `async on_batch(msgs) -> list[BaseException | None]`, for nodes whose `max_batch` (class attribute, or
  set by `setup`) is above 0: the node's ordered worker hands it everything waiting in its inbox, up to
  `max_batch` messages, in one call, in arrival order, and `on_input` is not called. It answers one entry
  per message, in order: None when the message was handled (counted, completion follows) or the exception
  that failed it (it goes to catch nodes with that message). Raising fails every message of the batch.
  A message whose source waits for the flows to finish it (`mqtt in` at QoS 1/2) comes alone, so what the
  batch sends is surely its own; a node that sends each message's results inside `with
  self.sending_for(msg):` sets `batch_causes = True` and gets such messages in batches too.
- `async close(removed)`: release everything; `removed` is True when the node is gone from the
  new flows (False when it is restarted). Raced against a deadline.

Inside, a node uses `send(msg)` (or a list per output, or a list of lists), `done(msg)` for nodes
that finish messages later (`auto_done = False`), `error(err, msg)`, `warn`, `log`, `status`,
the context scopes `context`, `flow`, `global_`, `env(name)`, `evaluate(value, type, msg)` for
Node-RED TypedInputs, `call_later(seconds, fn)` / `now()` for time (virtual in tests), `service(KEY)` for
runtime services (typed keys from `sofiaflow.runtime.api`), and `tab`, `owner`, `tenant` for where it runs.

A node type generic over its config declares it once: `class ChangeNode(Node[ChangeConfig])` makes
`self.config` a `ChangeConfig`.
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Generic

from typing_extensions import TypeVar

from sofiaflow.runtime.core.completion import CAUSE
from sofiaflow.runtime.core.config import NodeConfig
from sofiaflow.runtime.core.placement import NOWHERE, Placement
from sofiaflow.runtime.core.services import ServiceKey
from sofiaflow.runtime.errors import NodeError
from sofiaflow.runtime.types import Msg

if TYPE_CHECKING:
    from sofiaflow.runtime.core.clock import TimerHandle
    from sofiaflow.runtime.core.completion import CompletionTracker
    from sofiaflow.runtime.core.context import ContextScope
    from sofiaflow.runtime.core.engine import Engine
    from sofiaflow.runtime.core.flow_scope import FlowScope

log = logging.getLogger("sofiaflow.node")
S = TypeVar("S")
C = TypeVar("C", bound=NodeConfig, default=NodeConfig, covariant=True)


class Node(Generic[C]):
    """Base class of node types, generic over their config model; see the module docstring for the contract."""

    type: ClassVar[str] = ""
    category: ClassVar[str] = "common"
    label: ClassVar[str | None] = None
    help: ClassVar[str] = ""
    color: ClassVar[str] = "#a6bbcf"
    inputs: ClassVar[int] = 1
    outputs: ClassVar[int] = 1
    Config: ClassVar[builtins.type[NodeConfig]] = NodeConfig
    credentials_spec: ClassVar[dict[str, str]] = {}
    is_config_node: ClassVar[bool] = False
    auto_done: ClassVar[bool] = True
    batch_causes: bool = False
    """True for `on_batch` nodes that send each message's results inside `sending_for(msg)`."""
    listens_to: ClassVar[str | None] = None
    """"error", "status" or "complete" for catch/status/complete-like nodes (see `accepts`)."""

    uncaught: bool = False
    """For catch/complete nodes: only take events no other listener took."""

    is_source: ClassVar[bool] = False
    """True for nodes that bring messages in from outside (started last, stopped first)."""

    _placement: Placement = NOWHERE  # set by the deployer before `setup()`

    def __init__(
        self, config: C, flow: FlowScope, engine: Engine, credentials: dict[str, Any] | None = None
    ) -> None:
        self.config: C = config
        self.id: str = config.id
        self.name: str = config.name or ""
        self.z: str | None = config.z
        self.alias: str = (config.model_extra or {}).get("_alias") or config.id
        self.flow_scope = flow
        self.credentials: dict[str, Any] = credentials or {}
        self._engine = engine
        self._wires: tuple[tuple[Node, ...], ...] = ()
        self._handler: Callable[[Msg], Any] | None = None
        self._closed = False
        self._inbox: Any = None
        self._worker: Any = None
        self._watched = False
        self.count_in = 0
        self.count_out = 0
        self.count_err = 0
        self._context: ContextScope | None = None
        self._global: ContextScope | None = None
        self.last_status: dict[str, Any] = {}

    # ----- declared shape -------------------------------------------------------------
    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        """How many output ports a node with this config has."""
        return cls.outputs

    @classmethod
    def palette_label(cls) -> str:
        return cls.label or cls.type

    # ----- where it runs (tenancy) ------------------------------------------------------------
    @property
    def tab(self) -> str | None:
        """The id of the tab this node runs on (for a node in a subflow instance: the instance's tab); None
        for config nodes and nodes on no tab."""
        return self._placement.tab

    @property
    def owner(self) -> str | None:
        """The user owning this node's tab; None when it has no owner (or the runtime keeps no owners)."""
        return self._placement.owner

    @property
    def tenant(self) -> str | None:
        """The user this node acts for: its tab's owner, or None for administrators' and ownerless tabs (the
        platform's)."""
        return self._placement.tenant

    # ----- lifecycle hooks (override) ---------------------------------------------------
    def setup(self) -> None:
        """Prepare from config; raise NodeError to refuse the deploy."""

    async def start(self) -> None:
        """Open connections and arm timers."""

    async def close(self, removed: bool) -> None:
        """Release resources; `removed` is True when the node left the flows."""

    def on_input(self, msg: Msg) -> Any:
        """Handle one message (override; `def` or `async def`)."""

    def on_event(self, msg: Msg) -> None:
        """For `listens_to` nodes: an error/status/complete event in scope arrived as `msg`."""
        self.send(msg)

    def accepts(self, source: Node) -> bool:
        """For `listens_to` nodes: whether an event from `source` is in this node's scope."""
        return True

    # ----- messaging ----------------------------------------------------------------------
    def send(self, out: Msg | list[Any] | None) -> None:
        """Send a msg on output 0, or a list with one entry (msg, list of msgs, None) per output."""
        if out is not None:
            self._engine.route(self, out)

    def done(self, msg: Msg, error: BaseException | str | None = None) -> None:
        """Mark `msg` finished by this node (for nodes with `auto_done = False`)."""
        if error is not None:
            self.error(error, msg)
        elif self._watched:
            self._engine.completed(self, msg)
        if self._engine.completion.tickets:
            self._engine.completion.release(msg)

    def error(self, err: BaseException | str, msg: Msg | None = None) -> None:
        """Report an error; with a msg it goes to catch nodes, without one it is only logged."""
        self._engine.handle_error(self, err if isinstance(err, BaseException) else NodeError(str(err)), msg)

    def warn(self, text: Any) -> None:
        self._engine.log_event(self, "warn", text)

    def log(self, text: Any) -> None:
        self._engine.log_event(self, "info", text)

    def status(
        self, fill: str | dict[str, Any] | None = None, shape: str | None = None, text: Any = None
    ) -> None:
        """Set the status badge: status("green", "dot", "ok"), status({"fill":...}), or status() to clear."""
        if isinstance(fill, dict):
            st = dict(fill)
        elif fill is not None and shape is None and text is None and fill not in _FILLS:
            st = {"text": str(fill)}
        else:
            st = {k: v for k, v in (("fill", fill), ("shape", shape), ("text", text)) if v is not None}
        if "text" in st and not isinstance(st["text"], str):
            st["text"] = str(st["text"])
        self.last_status = st
        self._engine.status_changed(self, st)

    # ----- context and env -------------------------------------------------------------------
    @property
    def context(self) -> ContextScope:
        if self._context is None:
            self._context = self._engine.contexts.scope(f"node:{self.z}:{self.alias}")
        return self._context

    @property
    def flow(self) -> ContextScope:
        return self.flow_scope.context

    @property
    def global_(self) -> ContextScope:
        """The global context of this node's tenant (see `Engine.global_for`)."""
        scope = self._global
        if scope is None:
            scope = self._global = self._engine.global_for(self.tenant)
        return scope

    def env(self, name: str) -> Any:
        """An environment variable as Node-RED resolves it (group, subflow, tab, global, process)."""
        return self.flow_scope.env_get(name, self)

    def evaluate(self, value: Any, vtype: str | None, msg: Msg | None = None) -> Any:
        """The value of a Node-RED TypedInput (`msg`, `flow`, `str`, `num`, `json`, `jsonata`, ...)."""
        from sofiaflow.runtime.core.typedinput import evaluate

        return evaluate(self, value, vtype, msg)

    def service(self, key: ServiceKey[S]) -> S:
        """The runtime service under `key` (`self.service(HTTP_ROUTES)`, keys in `sofiaflow.runtime.api`).

        Raises NodeError naming the service when this runtime does not offer it. A plain name (`"http"`) is
        still accepted for node packages written before the keys existed; nodes of this repository use keys.
        """
        try:
            return self._engine.services.require(key)
        except LookupError as exc:
            raise NodeError(f"{self.type}: {exc}") from None

    @classmethod
    def claims(cls, config: NodeConfig) -> list[str]:
        """Resources only one node may hold (e.g. `"http:get:/hello"`); duplicates refuse the deploy."""
        return []

    def setting(self, name: str, default: Any = None) -> Any:
        """A runtime setting meant for nodes (e.g. `functionTimeLimit`, `debugMaxLength`)."""
        return self._engine.node_settings.get(name, default)

    async def send_wait(self, msg: Msg) -> None:
        """For sources: wait while the runtime is over its queue limit, then send (backpressure)."""
        await self._engine.wait_capacity()
        self.send(msg)

    def config_node(self, node_id: str | None) -> Node | None:
        """The running config node with that id, or None."""
        return self._engine.nodes.get(node_id) if node_id else None

    # ----- other nodes, events, completion ------------------------------------------------
    def may_reach(self, other: Node) -> bool:
        """Whether this node may hand messages to `other`: same tenant, or this node's flow is an
        administrator's (or ownerless). A developer's flow never reaches into another tenant's."""
        return self.tenant is None or other.tenant == self.tenant

    def peer(self, node_id: Any) -> Node | None:
        """The running node with that id that this node may reach (see `may_reach`), or None."""
        other = self._engine.nodes.get(node_id) if isinstance(node_id, str) else None
        return other if other is not None and self.may_reach(other) else None

    def peers(self, node_type: str | None = None) -> list[Node]:
        """The running nodes (of `node_type`, when given) that this node may reach."""
        return [
            n
            for n in self._engine.nodes.values()
            if (node_type is None or n.type == node_type) and self.may_reach(n)
        ]

    def deliver(self, node_id: str, msg: Msg) -> bool:
        """Hand `msg` to the input of a node this node may reach (as if wired); False when none runs."""
        target = self.peer(node_id)
        return target is not None and self._engine.deliver(target.id, msg)

    def publish_event(self, topic: str, event: Any) -> None:
        """An event on the runtime's event bus (e.g. "debug" for the debug sidebar and /comms)."""
        self._engine.events.publish(topic, event)

    @contextmanager
    def sending_for(self, msg: Msg) -> Iterator[None]:
        """What is sent inside is caused by `msg`: its source waits for those messages too (see `batch_causes`)."""
        ticket = self._engine.completion.ticket_of(msg) if self._engine.completion.tickets else None
        if ticket is None:
            yield
            return
        token = CAUSE.set(ticket)
        try:
            yield
        finally:
            CAUSE.reset(token)

    @property
    def completion(self) -> CompletionTracker:
        """The runtime's record of messages whose source waits for the flows to finish them (sources that
        acknowledge after processing, such as `mqtt in` with QoS 1/2, register and release messages here)."""
        return self._engine.completion

    # ----- time ------------------------------------------------------------------------------
    def now(self) -> float:
        """Current time in seconds (the runtime's clock)."""
        return self._engine.clock.now()

    def call_later(self, seconds: float, fn: Callable[[], None]) -> TimerHandle:
        """Call `fn` after `seconds`; errors it raises are reported as this node's errors."""

        def run() -> None:
            if self._closed:
                return
            try:
                fn()
            except Exception as exc:  # noqa: BLE001 - a timer error must not escape the loop
                self.error(exc)

        return self._engine.clock.call_later(seconds, run)

    def spawn(self, coro: Any) -> Any:
        """Run a coroutine tied to this node's lifetime; it is cancelled when the node closes."""
        return self._engine.spawn(self, coro)

    def track(self, coro: Any) -> Any:
        """Like `spawn`, and the work counts as in hand until it ends: the runtime is not idle meanwhile
        (`FlowTester.idle()` waits for it, as for a queued message). For work a node starts on its own, such as
        a timer's callback run elsewhere."""
        task = self._engine.spawn(self, coro)
        self._engine.hold(task)
        return task

    def __repr__(self) -> str:
        return f"<{self.type} node {self.id!r}{' ' + repr(self.name) if self.name else ''}>"


_FILLS = frozenset(("red", "green", "yellow", "blue", "grey", "gray"))
