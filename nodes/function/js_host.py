"""The JavaScript function node's isolate host: the node's isolate in its tenant's sandbox worker process.

The node opens its isolate in the worker (again after the worker restarted: a new generation), sends it
requests, and turns the worker's death or silence into the message's error: a script that kills V8 kills only
that worker, and requests of other nodes that waited behind it are sent again.
"""

from __future__ import annotations

import itertools
import re
import weakref
from typing import Any

from sofiaflow.nodes.function.js_isolate import JsTimeout
from sofiaflow.nodes.function.js_sandbox import run_items
from sofiaflow.runtime.api import NodeError, SandboxCrashed, SandboxError, SandboxTimeout

HANDLER = "js"
HANDLER_MODULE = "sofiaflow.nodes.function.js_sandbox"
"""The worker side (runs in the sandbox worker process)."""
REQUEST_GRACE = 15.0
"""Seconds a worker gets on top of the scripts' own time limits before the host gives up on it."""
OUT_OF_MEMORY = "function: JavaScript ran out of memory"
_node_keys = itertools.count(1)
_running: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
"""Per sandbox worker: the key of the node whose request it runs (or ran last)."""
_MEMORY_DEATH = re.compile(r"memory|SIGTRAP|SIGABRT|SIGKILL|SIGSEGV")
"""How a worker killed by V8 running out of memory is described (it aborts, or the kernel kills it)."""


def next_key(node_id: str) -> str:
    """The key of a node instance's isolate in its worker (unique in this process)."""
    return f"{node_id}#{next(_node_keys)}"


class IsolateHost:
    """Part of JsFunctionNode: requests to the isolate, in the worker (or on the node's own isolate)."""

    async def _close_in_worker(self) -> None:
        async with self._lock:
            try:
                if (self.config.finalize or "").strip():
                    await self._evaluate_in_worker(None, "__sf.finish({ctx})")
            except NodeError as exc:
                self.warn(f"finalize failed: {exc}")
            if self._generation is None:
                return
            try:
                worker = self._pool.worker(self._tenant)
                if worker.generation == self._generation:
                    await worker.request(HANDLER, "close", {"key": self._key}, timeout=REQUEST_GRACE)
            except (
                SandboxError,
                OSError,
                RuntimeError,
            ) as exc:  # a closed pool or a dead worker holds nothing
                self.log(f"closing the isolate in the worker: {exc}")

    async def _open_worker(self) -> Any:
        """The tenant's worker, with this node's isolate open in it (again after a restart)."""
        try:
            worker = self._pool.worker(self._tenant)
        except SandboxError as exc:
            raise NodeError(f"function: {exc}") from None
        if worker.generation != self._generation or self._generation is None:
            worker.on_event(HANDLER, lambda op, key, worker=worker: _running.__setitem__(worker, key))
            payload = {"key": self._key, "memory": self._memory, "setup": [list(s) for s in self._scripts]}
            try:
                await worker.request(
                    HANDLER, "open", payload, timeout=len(self._scripts) * 5.0 + REQUEST_GRACE
                )
            except SandboxCrashed as exc:
                self._crashed(exc)
            except SandboxTimeout:
                raise NodeError("function: the JavaScript worker did not start in time") from None
            except SandboxError as exc:
                raise NodeError(f"function: {exc}") from None
            self._generation = worker.generation
        return worker

    async def _request(self, items: list, call_id: int | None, retry: bool = True) -> list:
        if self._isolate is not None:  # the isolate is here: the worker's code, on it
            try:
                return run_items(self._isolate, self._limit, self._drain_always, items)
            except JsTimeout as exc:  # a builtin that would not stop (JsStuck)
                self._stopped("timeout", str(exc), call_id)
        worker = await self._open_worker()
        payload = {"key": self._key, "limit": self._limit, "drain": self._drain_always, "items": items}
        try:
            return await worker.request(
                HANDLER, "run", payload, timeout=self._limit * 2 * len(items) + REQUEST_GRACE
            )
        except SandboxCrashed as exc:
            self._generation = None
            self._cancel_timers()
            if retry and _running.get(worker) != self._key:
                # another node's request killed the worker while ours waited: nothing of ours ran
                self.log(f"the JavaScript worker stopped while this node waited ({exc}); running again")
                return await self._request(items, call_id, retry=False)
            try:
                self._crashed(exc)
            except NodeError as error:
                raise _OwnCrash(error) from None
        except SandboxTimeout:
            self._generation = None
            self._cancel_timers()
            self._stopped(
                "timeout", f"Script execution timed out after {round(self._limit * 1000)}ms", call_id
            )
        except SandboxError as exc:
            raise NodeError(f"function: {exc}") from None
        return []

    def _crashed(self, exc: BaseException) -> None:
        """The worker died (V8 aborts the process when one allocation is too big): its isolates are gone."""
        self._generation = None
        self._cancel_timers()
        self.log(f"the JavaScript worker stopped: {exc}")
        if not _MEMORY_DEATH.search(str(exc)):
            self.status("red", "ring", "stopped: worker crashed")
            raise ScriptStopped(f"function: the JavaScript worker stopped ({exc})", "crashed")
        self._stopped("crashed", str(exc), None)


class _OwnCrash(NodeError):
    """This node's request killed the worker; `error` is the message's error."""

    def __init__(self, error: NodeError) -> None:
        super().__init__(str(error))
        self.error = error


class ScriptStopped(NodeError):
    """An evaluation was stopped: `kind` is timeout, memory (heap limit) or crashed (the worker died)."""

    def __init__(self, text: str, kind: str) -> None:
        super().__init__(text)
        self.kind = kind
