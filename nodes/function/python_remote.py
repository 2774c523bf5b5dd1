"""Host side of a python function node whose bodies run in its tenant's sandbox worker.

`RemoteFunction` sends the node's setup with its first request (again whenever the worker restarted),
runs batches of messages there, and answers the worker's context and env calls for the node. The
worker side is `python_sandbox`; what crosses is described in `python_wire`.
"""

from __future__ import annotations

import weakref
from itertools import count
from typing import TYPE_CHECKING, Any

from sofiaflow.nodes.function.python_sandbox import NOT_SET_UP
from sofiaflow.nodes.function.python_wire import HeldValues, from_wire, to_wire
from sofiaflow.runtime.api import NodeError, SandboxCrashed, SandboxError, SandboxTimeout

if TYPE_CHECKING:
    from sofiaflow.nodes.function.python_function import PythonFunctionNode
    from sofiaflow.runtime.api import SandboxPool, SandboxWorker

HANDLER = "python-function"
HANDLER_MODULE = "sofiaflow.nodes.function.python_sandbox"
MAX_BATCH = 256
GRACE = 1.0
"""Seconds on top of the per-message time limit before the host gives up on a message (C code)."""

_by_worker: weakref.WeakKeyDictionary[SandboxWorker, dict[str, RemoteFunction]] = weakref.WeakKeyDictionary()
_instances = count(1)


class RemoteFunction:
    """One node's link to its sandbox worker; see the module docstring."""

    def __init__(
        self, node: PythonFunctionNode, pool: SandboxPool, tenant: str, setup: dict[str, Any]
    ) -> None:
        pool.register_handler(HANDLER, HANDLER_MODULE, preload=setup["modules"])
        self.node = node
        self.limit = float(setup["limit"])
        self.setup = dict(setup, token=next(_instances))
        self.worker = pool.worker(tenant)
        self.held = HeldValues()
        self._generation: int | None = None
        nodes = _by_worker.get(self.worker)
        if nodes is None:
            nodes = _by_worker[self.worker] = {}
            self.worker.on_call(HANDLER, lambda op, payload, nodes=nodes: _answer_call(nodes, op, payload))
        nodes[node.id] = self
        self._nodes = nodes

    async def _request(self, op: str, payload: dict[str, Any], timeout: float) -> Any:
        worker = self.worker
        fresh = self._generation != worker.generation
        body = {"node": self.node.id, "setup": self.setup if fresh else None, **payload}
        try:
            answer = await worker.request(
                HANDLER, op, body, timeout=timeout, progress_timeout=self.limit + GRACE
            )
        except SandboxError as exc:
            if fresh or type(exc) is not SandboxError or NOT_SET_UP not in str(exc):
                raise
            body["setup"] = self.setup  # the worker restarted between our requests
            answer = await worker.request(
                HANDLER, op, body, timeout=timeout, progress_timeout=self.limit + GRACE
            )
        self._generation = worker.generation
        return answer

    async def run_batch(self, msgs: list[dict]) -> list[BaseException | None]:
        """Run each message through the body in the worker; one result per message, in order."""
        held = self.held = HeldValues()
        wire = [to_wire(msg, held) for msg in msgs]
        try:
            answers = await self._request("run", {"msgs": wire}, self.limit * len(msgs) + GRACE)
            if not isinstance(answers, list) or len(answers) != len(msgs):
                raise SandboxError(
                    f"the sandbox worker answered {type(answers).__name__} for {len(msgs)} messages"
                )
        except SandboxError as exc:
            error = self._failure(exc)
            return [error] * len(msgs)
        node = self.node
        node.recovered()
        results: list[BaseException | None] = []
        for msg, answer in zip(msgs, answers, strict=True):
            with node.sending_for(msg):  # its sends are its own: its source waits for them
                results.append(node.apply(_ops(answer, held), _error(answer), msg))
        return results

    async def run_part(self, part: str) -> None:
        """Run `initialize` or `finalize` in the worker; NodeError when it fails."""
        self.held = HeldValues()
        try:
            answer = await self._request(part, {}, self.limit + GRACE)
        except SandboxError as exc:
            raise self._failure(exc) from None
        if answer is not None:
            error = self.node.apply(_ops(answer, self.held), _error(answer), None)
            if error is not None:
                raise error

    async def forget(self) -> None:
        """The node closed: the worker drops its bodies; the host stops answering for it."""
        if self._nodes.get(self.node.id) is self:
            del self._nodes[self.node.id]
        if self._generation == self.worker.generation and self.worker.pid is not None:
            try:
                await self.worker.request(
                    HANDLER,
                    "forget",
                    {"node": self.node.id, "token": self.setup["token"]},
                    timeout=self.limit + GRACE,
                )
            except SandboxError:
                pass

    def _failure(self, exc: SandboxError) -> NodeError:
        if isinstance(exc, SandboxTimeout):
            text = f"python function: killed after {self.limit:.1f} s of C code (its sandbox worker restarts)"
        elif isinstance(exc, SandboxCrashed):
            text = f"python function: {exc}".replace("the sandbox worker", "its sandbox worker")
        else:
            text = f"python function: {exc}"
        self.node.failed(text)
        return NodeError(text)

    # ----- the worker's calls ------------------------------------------------------------------------
    def context_call(self, scope_name: Any, method: Any, key: Any, value: Any, store: Any) -> Any:
        node = self.node
        scope = {"node": node.context, "flow": node.flow, "global": node.global_}.get(scope_name)
        if scope is None:
            raise ValueError(f"unknown context scope {scope_name!r}")
        if not (
            isinstance(key, str)
            or key is None
            and method == "keys"
            or isinstance(key, list)
            and all(isinstance(k, str) for k in key)
        ):
            raise TypeError(f"a context key must be a string or a list of strings, not {type(key).__name__}")
        if store is not None and not isinstance(store, str):
            raise TypeError(f"a context store name must be a string, not {type(store).__name__}")
        if method == "get":
            return to_wire(scope.get(key, store), self.held)
        if method == "set":
            scope.set(key, from_wire(value, self.held), store)
            return None
        if method == "delete":
            scope.delete(key, store)
            return None
        if method == "keys":
            return scope.keys(store)
        if method == "incr":  # sofiaflow's atomic increment (ContextScope.incr)
            if not isinstance(key, str):
                raise TypeError(f"incr takes one key, not {type(key).__name__}")
            return scope.incr(key, value, store)
        raise ValueError(f"unknown context method {method!r}")

    def env(self, name: Any) -> Any:
        """Like `node.env(name)` without the server's process environment (flow, group, node, NR_* only)."""
        if not isinstance(name, str):
            raise TypeError(f"env.get takes a name, not {type(name).__name__}")
        value = flow_env(self.node, name)
        return to_wire(value, self.held)


def flow_env(node: Any, name: str) -> Any:
    """An env variable from the node's group, its flow's chain (tab, subflow instances) and NR_* names: never
    the server's process environment."""
    return node.flow_scope.env_get(name, node, process=False)


def _answer_call(nodes: dict[str, RemoteFunction], op: str, payload: Any) -> Any:
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], str):
        raise ValueError("a python function call names its node first")
    remote = nodes.get(payload[0])
    if remote is None:
        raise LookupError(f"no python function {payload[0]!r} runs in this worker")
    if op == "context" and len(payload) == 6:
        return remote.context_call(*payload[1:])
    if op == "env" and len(payload) == 2:
        return remote.env(payload[1])
    raise ValueError(f"unknown python function call {op!r}")


def _ops(answer: Any, held: HeldValues) -> list[Any]:
    if not isinstance(answer, list) or len(answer) != 2 or not isinstance(answer[0], list):
        raise_protocol(answer)
    ops = answer[0]
    return from_wire(ops, held) if held.values else ops


def _error(answer: Any) -> str | None:
    error = answer[1]
    return error if error is None or isinstance(error, str) else str(error)


def raise_protocol(answer: Any) -> None:
    raise NodeError(f"python function: the sandbox worker answered {type(answer).__name__}, not [ops, error]")
