"""A public test harness for flows and node types: a flow snippet in, messages out per port.

    async with FlowTester(flows) as t:
        t.inject("n1", {"payload": 3})
        await t.idle()
        assert t.outputs("n2")[0][0]["payload"] == 6

`FlowTester` deploys with the registered node types (or the ones given), records what every
node sends on each output, errors and debug events, and can drive a virtual clock.
"""

from __future__ import annotations

import copy
from typing import Any

from sofiaflow.runtime.core.clock import VirtualClock
from sofiaflow.runtime.core.context import ContextManager, MemoryStore
from sofiaflow.runtime.core.engine import Engine
from sofiaflow.runtime.core.events import EventBus
from sofiaflow.runtime.core.message import new_msgid
from sofiaflow.runtime.core.node import Node
from sofiaflow.runtime.flows.deploy import Deployer, DeployResult
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry
from sofiaflow.runtime.security.credentials import CredentialStore
from sofiaflow.runtime.types import FlowJSON, Msg


class _Probe(Node):
    type = "test-probe"
    category = "internal"
    inputs = 1

    def __init__(self, sink: list[Msg]) -> None:  # noqa: D401 - a bare listener, not a flow node
        self._sink = sink
        self._closed = False
        self._handler = self._sink.append
        self._inbox = None
        self._watched = False
        self.count_in = 0


class FlowTester:
    """Deploy `flows` in a private engine; see the module docstring."""

    def __init__(
        self,
        flows: FlowJSON,
        registry: NodeRegistry | None = None,
        virtual_time: bool = False,
        credentials: dict[str, dict[str, Any]] | None = None,
        stores: dict[str, Any] | None = None,
    ) -> None:
        from cryptography.fernet import Fernet

        self.flows = copy.deepcopy(flows)
        self.registry = registry or default_registry()
        self.clock = VirtualClock() if virtual_time else None
        self.events = EventBus(history=10_000)
        self.contexts = ContextManager(stores or {"memory": MemoryStore()}, default="memory")
        self.engine = Engine(self.contexts, self.events, clock=self.clock)
        self.deployer = Deployer(self.engine, self.registry, CredentialStore(None, Fernet.generate_key()))
        self._credentials = credentials
        self._outputs: dict[str, list[list[Msg]]] = {}
        self.debug: list[dict[str, Any]] = []
        self.logs: list[dict[str, Any]] = []
        self.events.subscribe("debug", lambda _t, d: self.debug.append(d))
        self.events.subscribe("log", lambda _t, d: self.logs.append(d))

    async def __aenter__(self) -> FlowTester:
        self.deployer.state = "start"
        await self.deploy(self.flows, "full")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.deployer.stop()

    async def deploy(self, flows: FlowJSON, deploy_type: str = "full") -> DeployResult:
        """Deploy again (e.g. in `nodes` mode) and re-attach the output probes."""
        result = await self.deployer.deploy(flows, deploy_type, credentials=self._credentials)
        self.flows = copy.deepcopy(flows)
        self._attach_probes()
        return result

    def _attach_probes(self) -> None:
        for node in self.engine.nodes.values():
            ports = self._outputs.setdefault(node.id, [])
            wires = list(node._wires)
            count = max(len(wires), node.output_count(node.config))
            while len(ports) < count:
                ports.append([])
            while len(wires) < count:
                wires.append(())
            node._wires = tuple(tuple(w) + (_Probe(ports[i]),) for i, w in enumerate(wires))

    def node(self, node_id: str) -> Node:
        return self.engine.nodes[node_id]

    def inject(self, node_id: str, msg: Msg | None = None) -> Msg:
        """Deliver `msg` to the input of `node_id` (a `_msgid` is added if missing)."""
        msg = dict(msg or {})
        msg.setdefault("_msgid", new_msgid())
        if not self.engine.deliver(node_id, msg):
            raise KeyError(f"node {node_id!r} is not running or has no input")
        return msg

    def outputs(self, node_id: str) -> list[list[Msg]]:
        """Every message `node_id` sent so far, one list per output port."""
        return self._outputs.get(node_id, [])

    def payloads(self, node_id: str, port: int = 0) -> list[Any]:
        ports = self.outputs(node_id)
        return [m.get("payload") for m in ports[port]] if port < len(ports) else []

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.logs if e["level"] == "error"]

    def clear(self) -> None:
        for ports in self._outputs.values():
            for port in ports:
                port.clear()
        self.debug.clear()
        self.logs.clear()

    async def idle(self) -> None:
        """Wait until no message is queued."""
        await self.engine.idle()

    async def advance(self, seconds: float) -> None:
        """Move the virtual clock forward timer by timer, letting messages settle after each."""
        if self.clock is None:
            raise RuntimeError("FlowTester(virtual_time=True) is needed to advance time")
        end = self.clock.now() + seconds
        await self.idle()
        for _ in range(1_000_000):
            due = self.clock.next_due()
            if due is None or due > end:
                break
            self.clock.advance(max(due - self.clock.now(), 0.0))
            await self.idle()
        self.clock.advance(max(end - self.clock.now(), 0.0))
        await self.idle()
