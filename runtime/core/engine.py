"""The message engine: routing with Node-RED's clone rule, ordered delivery, errors, status.

Delivery is asynchronous and FIFO: `route` appends (target, msg) to one run queue that a
dispatcher drains in batches on the event loop (the same breadth-first order Node-RED's
setImmediate gives, without a task per hop). Nodes whose `on_input` is a coroutine get their own
ordered inbox and worker instead (runtime/core/inbox.py), so a slow node never holds up the
dispatcher. Sources call `await engine.wait_capacity()` before emitting: when too many messages
are queued they wait, which keeps memory bounded under bursts.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections import deque
from collections.abc import Coroutine
from random import random
from time import perf_counter
from typing import Any

from sofiaflow.runtime.core.clock import Clock, LoopClock
from sofiaflow.runtime.core.completion import CAUSE, CompletionTracker
from sofiaflow.runtime.core.context import ContextManager, ContextScope
from sofiaflow.runtime.core.events import EventBus
from sofiaflow.runtime.core.inbox import work
from sofiaflow.runtime.core.message import clone_message, new_msgid
from sofiaflow.runtime.core.metrics import BUSY_QUEUE, EngineStats
from sofiaflow.runtime.core.node import Node
from sofiaflow.runtime.core.services import Services
from sofiaflow.runtime.errors import NodeError
from sofiaflow.runtime.types import Msg

log = logging.getLogger("sofiaflow.engine")

_MAX_ERROR_LOOP = 9


class Engine:
    """Runs installed nodes: routing, error/status/complete events, context, time."""

    def __init__(
        self,
        contexts: ContextManager | None = None,
        events: EventBus | None = None,
        clock: Clock | None = None,
        batch: int = 4096,
        high_water: int = 20_000,
        close_timeout: float = 15.0,
        node_settings: dict[str, Any] | None = None,
    ) -> None:
        self.contexts = contexts or ContextManager()
        self.events = events or EventBus()
        self.clock: Clock = clock or LoopClock()
        self.global_context = self.contexts.scope("global")
        self._tenant_globals: dict[str, ContextScope] = {}
        self.nodes: dict[str, Node] = {}
        self.batch = batch
        self.high_water = high_water
        self.low_water = high_water // 2
        self.close_timeout = close_timeout
        self.node_settings: dict[str, Any] = dict(node_settings or {})
        self.services = Services()  # what nodes look up with `Node.service(KEY)` (runtime/core/services.py)
        self.pending = 0
        self.errors_total = 0
        self.messages_total = 0
        self.stats = EngineStats()  # sampled handling times (sofiaflow.runtime.core.metrics)
        self._queue: deque[tuple[Node, Msg]] = deque()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._capacity = asyncio.Event()
        self._capacity.set()
        self._tasks: dict[str, set[asyncio.Task]] = {}
        self._idle_waiters: list[asyncio.Future] = []
        self.completion = CompletionTracker()  # messages whose source waits for the flows to finish them

    def global_for(self, tenant: str | None) -> ContextScope:
        """The `global` context a tenant's nodes see: administrators' and ownerless flows share the platform's
        ("global"), each developer's flows their own ("global:<user>"), so no tenant reads another's."""
        if tenant is None:
            return self.global_context
        scope = self._tenant_globals.get(tenant)
        if scope is None:
            scope = self._tenant_globals[tenant] = self.contexts.scope(f"global:{tenant}")
        return scope

    # ----- installing --------------------------------------------------------------------------
    def add(self, node: Node) -> None:
        """Register a constructed node so it can receive messages."""
        node._closed = False
        if node.inputs and getattr(node, "max_batch", 0) > 0 and hasattr(node, "on_batch"):
            node._handler = (
                None  # batches: the ordered worker hands it all that waits (runtime/core/inbox.py)
            )
            node._inbox = deque()
        elif node.inputs and type(node).on_input is not Node.on_input:
            if inspect.iscoroutinefunction(node.on_input):
                node._handler = None
                node._inbox = deque()
            else:
                node._handler = node.on_input
        self.nodes[node.id] = node

    def wire(self, node: Node, wires: list[list[str]]) -> None:
        """(Re)connect `node`'s outputs to the running targets named in `wires`."""
        resolved = []
        for port in wires:
            targets = tuple(t for t in (self.nodes.get(tid) for tid in port) if t is not None and t.inputs)
            resolved.append(targets)
        node._wires = tuple(resolved)

    async def remove(self, node: Node, removed: bool) -> None:
        """Stop `node`: drop its queue, cancel its tasks, await its close hook (with a deadline)."""
        node._closed = True
        if self.nodes.get(node.id) is node:
            del self.nodes[node.id]
        self.stats.forget(node)
        if node._inbox:
            self.pending -= len(node._inbox)
            if self.completion.tickets:  # dropped with the node: finished, as far as their sources go
                for msg in node._inbox:
                    self.completion.release(msg)
            node._inbox.clear()
        for task in self._tasks.pop(node.id, set()):
            task.cancel()
        if node._worker is not None:
            node._worker.cancel()
            node._worker = None
        try:
            async with asyncio.timeout(self.close_timeout):
                await node.close(removed)
        except TimeoutError:
            log.warning("%r did not close within %.0f s", node, self.close_timeout)
        except Exception:
            log.exception("%r failed to close", node)

    # ----- messaging -----------------------------------------------------------------------------
    def route(self, node: Node, out: Msg | list[Any]) -> None:
        """Deliver `out` (a msg, or one entry per output) along `node`'s wires.

        The first delivery of each message object gets the original; later ones get clones.
        """
        wires = node._wires
        if out.__class__ is dict:
            if not wires or not wires[0]:
                return
            if "_msgid" not in out:
                out["_msgid"] = new_msgid()
            targets = wires[0]
            node.count_out += 1
            target = targets[0]
            if target._handler is not None and not self.completion.tickets:  # fast path: one append, no call
                self.pending += 1
                self._queue.append((target, out))
                if not self._scheduled:
                    self._schedule()
            else:
                self._deliver(target, out)
            if len(targets) > 1:
                for target in targets[1:]:
                    self._deliver(target, clone_message(out))
            return
        if out.__class__ is not list:
            if isinstance(out, (list, tuple)):
                out = list(out)
            else:
                raise NodeError(f"send() takes a message dict or a list, not {type(out).__name__}")
        seen: set[int] | None = None
        nwires = len(wires)
        queue = self._queue
        for port, item in enumerate(out):
            if item is None or port >= nwires:
                continue
            targets = wires[port]
            if not targets:
                continue
            for msg in (item,) if item.__class__ is dict else item:
                if msg is None:
                    continue
                if msg.__class__ is not dict:
                    raise NodeError(f"output {port + 1}: a message must be a dict, not {type(msg).__name__}")
                if "_msgid" not in msg:
                    msg["_msgid"] = new_msgid()
                node.count_out += 1
                for target in targets:
                    if seen is None:
                        seen = {id(msg)}
                        delivery = msg
                    elif id(msg) in seen:
                        delivery = clone_message(msg)
                    else:
                        seen.add(id(msg))
                        delivery = msg
                    if target._handler is not None and not self.completion.tickets:
                        self.pending += 1
                        queue.append((target, delivery))
                        if not self._scheduled:
                            self._schedule()
                    else:
                        self._deliver(target, delivery)

    def deliver(self, target_id: str, msg: Msg) -> bool:
        """Deliver `msg` straight to the node `target_id` (link nodes); False if not running."""
        target = self.nodes.get(target_id)
        if target is None or not target.inputs:
            return False
        self._deliver(target, msg)
        return True

    def _deliver(self, target: Node, msg: Msg) -> None:
        self.pending += 1
        if target._handler is not None:
            self._queue.append((target, msg))
            if not self._scheduled:
                self._schedule()
        elif target._inbox is not None:
            target._inbox.append(msg)
            if target._worker is None:
                target._worker = self._get_loop().create_task(work(self, target))
        else:
            self.pending -= 1
            return
        if self.completion.tickets:
            self.completion.hold(msg)

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _schedule(self) -> None:
        self._scheduled = True
        self._get_loop().call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        queue = self._queue
        budget = self.batch
        handled = 0
        completed = self.completed
        tracked = self.completion.tickets
        try:
            if len(queue) > BUSY_QUEUE:  # busy: time the batch's first message; the loop below stays as fast
                handled = 1
                self._handle_timed(*queue.popleft())
            elif random() < self.stats.calm_share:  # calm: time every message of a share of batches
                while queue and handled < budget:
                    handled += 1
                    self._handle_timed(*queue.popleft())
            while queue and handled < budget:
                node, msg = queue.popleft()
                handled += 1
                if tracked:  # some source waits for its messages to be finished
                    self._handle_timed(node, msg)
                    continue
                if node._closed:
                    continue
                node.count_in += 1
                try:
                    node._handler(msg)
                except Exception as exc:  # noqa: BLE001 - any node failure goes to catch
                    self.handle_error(node, exc, msg)
                    continue
                if node._watched and node.auto_done:
                    completed(node, msg)
        finally:
            self.pending -= handled
            self.messages_total += handled
            if queue and not self._scheduled:
                self._schedule()
            self.progressed()

    def _handle_timed(self, node: Node, msg: Msg) -> None:
        """Handle one message of the run queue as `_drain` does, recording its time in `stats` (and releasing
        the delivery of a tracked message, runtime/core/completion.py)."""
        ticket = self.completion.ticket_of(msg) if self.completion.tickets else None
        if node._closed or (ticket is not None and ticket.abandoned):  # abandoned: given up, no output
            if ticket is not None:
                self.completion.release(msg)
            return
        node.count_in += 1
        cause = CAUSE.set(ticket) if ticket is not None else None
        started = perf_counter()
        try:
            node._handler(msg)
        except Exception as exc:  # noqa: BLE001 - any node failure goes to catch
            self.stats.record(node, perf_counter() - started)
            self.handle_error(node, exc, msg)
            if ticket is not None:
                self.completion.release(msg)
            return
        finally:
            if cause is not None:
                CAUSE.reset(cause)
        self.stats.record(node, perf_counter() - started)
        if node._watched and node.auto_done:
            self.completed(node, msg)
        if ticket is not None and node.auto_done:
            self.completion.release(msg)

    def progressed(self) -> None:
        """Wake sources waiting for capacity, and `idle()` waiters, once few enough messages are pending."""
        if self.pending <= self.low_water and not self._capacity.is_set():
            self._capacity.set()
        if self.pending <= 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)

    async def wait_capacity(self) -> None:
        """Sources await this before emitting; it blocks while the engine is over its high-water mark."""
        if self.pending >= self.high_water:
            self._capacity.clear()
            await self._capacity.wait()

    def hold(self, task: asyncio.Future[Any]) -> None:
        """Count `task` as work in hand until it ends: `idle()` waits for it as for a queued message."""
        self.pending += 1

        def settled(_task: asyncio.Future[Any]) -> None:
            self.pending -= 1
            self.progressed()

        task.add_done_callback(settled)

    async def idle(self) -> None:
        """Wait until no message is queued anywhere (timers may still fire later)."""
        while self.pending > 0:
            fut = self._get_loop().create_future()
            self._idle_waiters.append(fut)
            await fut
            await asyncio.sleep(0)

    # ----- events ------------------------------------------------------------------------------------
    def handle_error(self, node: Node, exc: BaseException, msg: Msg | None) -> bool:
        """Count and log `exc`; with a msg, offer it to catch nodes. True when one took it."""
        node.count_err += 1
        self.errors_total += 1
        text = str(exc) or type(exc).__name__
        if not isinstance(exc, NodeError):
            text = f"{type(exc).__name__}: {text}" if str(exc) else type(exc).__name__
        self.log_event(node, "error", text, msg)
        if msg is None:
            return False
        prev = msg.get("error")
        count = 1
        if (
            isinstance(prev, dict)
            and isinstance(prev.get("source"), dict)
            and prev["source"].get("id") == node.id
        ):
            count = int(prev["source"].get("count", 0)) + 1
        if count > _MAX_ERROR_LOOP:
            log.error("%r: message stopped, it failed %d times in a loop", node, count)
            self._failed(msg, exc)
            return False
        error = {
            "message": text,
            "source": {"id": node.id, "type": node.type, "name": node.name, "count": count},
        }
        if not isinstance(exc, NodeError) and exc.__traceback__ is not None:
            error["stack"] = "".join(traceback.format_exception(exc)[-3:])
        if node.flow_scope is not None and node.flow_scope.throw(node, error, msg):
            return True
        self._failed(msg, exc)
        return False

    def _failed(self, msg: Msg, exc: BaseException) -> None:
        """An error no catch node took: the tracked message's ticket records it (runtime/core/completion.py)."""
        ticket = self.completion.ticket_of(msg) if self.completion.tickets else None
        if ticket is not None and ticket.failed is None:
            ticket.failed = exc

    def status_changed(self, node: Node, status: dict[str, Any]) -> None:
        self.events.publish(f"status/{node.id}", status)
        if node.flow_scope is not None:
            node.flow_scope.status_changed(node, status)

    def completed(self, node: Node, msg: Msg) -> None:
        for listener in node.flow_scope.listeners["complete"]:
            if listener.accepts(node):
                out = clone_message(msg)
                out["complete"] = {"source": {"id": node.id, "type": node.type, "name": node.name}}
                listener.on_event(out)

    def log_event(self, node: Node | None, level: str, text: Any, msg: Msg | None = None) -> None:
        """Log a node's message and publish it for the editor's debug sidebar."""
        who = repr(node) if node is not None else "runtime"
        getattr(log, "warning" if level == "warn" else level, log.info)("%s: %s", who, text)
        self.events.publish(
            "log",
            {
                "level": level,
                "id": node.id if node else None,
                "type": node.type if node else None,
                "name": node.name if node else None,
                "z": node.z if node else None,
                "msg": str(text),
                "_msgid": msg.get("_msgid") if isinstance(msg, dict) else None,
            },
        )

    # ----- tasks -------------------------------------------------------------------------------------
    def spawn(self, node: Node, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        task = self._get_loop().create_task(coro)
        bucket = self._tasks.setdefault(node.id, set())
        bucket.add(task)

        def finished(t: asyncio.Task) -> None:
            bucket.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.handle_error(node, t.exception(), None)

        task.add_done_callback(finished)
        return task
