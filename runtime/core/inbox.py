"""The ordered inbox of a node whose `on_input` is a coroutine (or that takes batches: `max_batch` and `on_batch`):
the engine appends its messages to `node._inbox` and starts one worker task (`work`) that hands them on one at a
time, or in batches, in order, so a slow node never holds up the engine's dispatcher. A message is pending
(`Engine.idle` waits for it) until the node is done with it; a tracked message (runtime/core/completion.py) is
released once it is done or failed, and one given up by a cluster deploy leaves the inbox unhandled."""

from __future__ import annotations

import asyncio
from collections import deque
from time import perf_counter
from typing import TYPE_CHECKING

from sofiaflow.runtime.core.completion import CAUSE
from sofiaflow.runtime.errors import NodeError
from sofiaflow.runtime.types import Msg

if TYPE_CHECKING:
    from sofiaflow.runtime.core.engine import Engine
    from sofiaflow.runtime.core.node import Node


async def work(engine: Engine, node: Node) -> None:
    """Drain `node`'s inbox in order (its one worker task, runtime/core/engine.py starts it): each message awaits
    `on_input` (or, for a node with `on_batch`, what waits goes in batches), failures go to catch nodes."""
    if getattr(node, "max_batch", 0) > 0 and hasattr(node, "on_batch"):
        await _work_batches(engine, node)
        return
    inbox = node._inbox
    try:
        while inbox and not node._closed:
            msg = inbox.popleft()
            engine.messages_total += 1
            node.count_in += 1
            ticket = engine.completion.ticket_of(msg) if engine.completion.tickets else None
            if ticket is not None and ticket.abandoned:  # given up (a cluster deploy): no output
                _drop_given_up(engine, msg)
                continue
            if ticket is not None:
                CAUSE.set(ticket)  # this worker task's own context
            started = perf_counter()
            try:
                await node.on_input(msg)
                engine.stats.record(node, perf_counter() - started)
            except asyncio.CancelledError:
                engine.pending -= 1
                if ticket is not None:
                    engine.completion.release(msg)
                raise
            except Exception as exc:  # noqa: BLE001
                engine.stats.record(node, perf_counter() - started)
                engine.handle_error(node, exc, msg)
                if ticket is not None:
                    engine.completion.release(msg)
            else:
                if node._watched and node.auto_done:
                    engine.completed(node, msg)
                if ticket is not None and node.auto_done:
                    engine.completion.release(msg)
            finally:
                if ticket is not None:
                    CAUSE.set(None)
            engine.pending -= 1  # only now: idle() must not return while a message is in hand
            engine.progressed()
    finally:
        node._worker = None
        engine.progressed()


async def _work_batches(engine: Engine, node: Node) -> None:
    """`work` for nodes with `on_batch`: everything waiting (up to `max_batch`) in one call, results in order."""
    inbox = node._inbox
    limit = max(int(node.max_batch), 1)
    try:
        while inbox and not node._closed:
            first = engine.completion.ticket_of(inbox[0]) if engine.completion.tickets else None
            if first is not None and first.abandoned:  # given up (a cluster deploy): no output
                engine.messages_total += 1
                _drop_given_up(engine, inbox.popleft())
                continue
            tracked = first is not None
            if tracked and node.batch_causes:  # the node says which message caused each send
                msgs = _batch_of_live(engine, inbox, limit)
                if not msgs:
                    continue
                count = len(msgs)
                ticket = None
            else:  # a tracked message alone: its sends are its own
                count = 1 if tracked else min(len(inbox), limit)
                msgs = [inbox.popleft() for _ in range(count)]
                ticket = engine.completion.ticket_of(msgs[0]) if tracked else None
            engine.messages_total += count
            node.count_in += count
            if ticket is not None:
                CAUSE.set(ticket)
            started = perf_counter()
            try:
                results = await node.on_batch(msgs)
                if not isinstance(results, list) or len(results) != count:
                    raise NodeError(
                        f"on_batch returned {type(results).__name__} for {count} messages, "
                        f"not a list of {count} results"
                    )
            except asyncio.CancelledError:
                engine.pending -= count
                for msg in msgs:
                    engine.completion.release(msg)
                raise
            except Exception as exc:  # noqa: BLE001 - the whole batch failed: each message fails with it
                results = [exc] * count
            finally:
                if ticket is not None:
                    CAUSE.set(None)
            engine.stats.record(node, (perf_counter() - started) / count)
            for msg, result in zip(msgs, results, strict=True):
                if result is not None:
                    if not isinstance(result, BaseException):
                        result = NodeError(str(result))
                    _fail(engine, node, result, msg)
                elif node._watched and node.auto_done:
                    engine.completed(node, msg)
                if engine.completion.tickets and (result is not None or node.auto_done):
                    engine.completion.release(msg)
            engine.pending -= count  # only now: idle() must not return while messages are in hand
            engine.progressed()
    finally:
        node._worker = None
        engine.progressed()


def _fail(engine: Engine, node: Node, exc: BaseException, msg: Msg) -> None:
    """`msg` failed in a batch: the catch nodes hear it, and what they send is caused by `msg` (its source waits for
    that too, as for a message handled alone)."""
    ticket = engine.completion.ticket_of(msg) if engine.completion.tickets else None
    if ticket is None:
        engine.handle_error(node, exc, msg)
        return
    token = CAUSE.set(ticket)
    try:
        engine.handle_error(node, exc, msg)
    finally:
        CAUSE.reset(token)


def _batch_of_live(engine: Engine, inbox: deque[Msg], limit: int) -> list[Msg]:
    """Up to `limit` messages off `inbox`, those given up (a cluster deploy) finished on the way."""
    msgs: list[Msg] = []
    completion = engine.completion
    while inbox and len(msgs) < limit:
        msg = inbox.popleft()
        ticket = completion.ticket_of(msg)
        if ticket is not None and ticket.abandoned:
            engine.messages_total += 1
            _drop_given_up(engine, msg)
        else:
            msgs.append(msg)
    return msgs


def _drop_given_up(engine: Engine, msg: Msg) -> None:
    """A queued message whose ticket was given up leaves the inbox without being handled."""
    engine.pending -= 1
    engine.completion.release(msg)
    engine.progressed()
