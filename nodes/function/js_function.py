"""function: Node-RED's JavaScript function node, run in a V8 isolate per node (mini-racer).

The body sees Node-RED's API: `msg`, `node` (send, done, warn, error, log, status, id, name),
`context`, `flow`, `global`, `env.get`, `RED.util` (cloneMessage, getMessageProperty, ...),
`setTimeout`/`setInterval` and their clear functions, `console` and a small `Buffer`. It returns a
message, an array with an entry per output (a message, an array of messages, or null), or null,
and may be written with `await` (the body is then an async function, as in Node-RED).

Every evaluation has a time limit (the node's `timeout`, else the `functionTimeLimit` setting)
and the isolate a heap limit (`functionMemoryLimit`, MB); a runaway script is terminated and
reported as the message's error while other flows go on. Messages cross as JSON; values that are
not JSON (msg.req, msg.res, ...) stay in Python and are put back on what the script sends.
External modules (`libs`) are refused at deploy.

Where the isolate lives follows the `functionIsolation` setting (see placement): in the server
process (the fast path for trusted flows), or in the sandbox worker process of the flow's owner,
where a script that kills V8 (one huge allocation) only kills that worker. In the worker, messages
and timer callbacks are evaluated one at a time per node, without blocking the server. Timers whose
callbacks run past the time limit, or take over half of the time for a few seconds, are cleared and
the node turns red.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import weakref
from importlib import resources
from typing import Any

from pydantic import Field

from sofiaflow.nodes.function.js_bridge import Encoder, HeldValues, decode, literal_reads, split_slot
from sofiaflow.nodes.function.js_checks import ASYNC_HINT, js_caveats, libs_problem, syntax_problem
from sofiaflow.nodes.function.js_isolate import JsError, JsIsolate, JsMemoryLimit, JsTimeout
from sofiaflow.nodes.function.js_sandbox import load_scripts, run_items
from sofiaflow.nodes.function.js_timer_budget import TimerBudget
from sofiaflow.nodes.function.placement import worker_for
from sofiaflow.runtime.api import (
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRFloat,
    NRInt,
    SandboxCrashed,
    SandboxError,
    SandboxTimeout,
    ValidationError,
)

HANDLER = "js"
HANDLER_MODULE = "sofiaflow.nodes.function.js_sandbox"
"""The worker side (runs in the sandbox worker process)."""
DEFAULT_TIME_LIMIT = 1.0
"""Seconds per evaluation when the node sets no `timeout` (setting `functionTimeLimit`)."""
DEFAULT_MEMORY_LIMIT_MB = 64
"""Heap limit of each node's isolate (setting `functionMemoryLimit`)."""
MAX_FETCH_ROUNDS = 20
MAX_LEARNED_SLOTS = 256
MAX_OPEN_CALLS = 10_000
REQUEST_GRACE = 15.0
"""Seconds a worker gets on top of the scripts' own time limits before the host gives up on it."""
OUT_OF_MEMORY = "function: JavaScript ran out of memory"
MAX_BATCH = 256
"""Messages per request to the worker at most (when that many wait)."""
_node_keys = itertools.count(1)
_running: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
"""Per sandbox worker: the key of the node whose request it runs (or ran last)."""
_MEMORY_DEATH = re.compile(r"memory|SIGTRAP|SIGABRT|SIGKILL|SIGSEGV")
"""How a worker killed by V8 running out of memory is described (it aborts, or the kernel kills it)."""
_PRELUDE = resources.files(__package__).joinpath("js_prelude.js").read_text(encoding="utf-8")
_AWAIT = re.compile(r"\bawait\b")
_NODE_DONE = re.compile(r"\bnode\s*\.\s*done\s*\(")


class JsFunctionConfig(NodeConfig):
    func: str = Field(
        "\nreturn msg;",
        title="On message",
        description="JavaScript run for each message, as in Node-RED: `msg` is an object (msg.payload, msg.topic); return msg, an array with one entry per output, or null to send nothing.",
        json_schema_extra={"x-widget": "code", "x-language": "javascript"},
    )
    outputs: NRInt = Field(1, title="Outputs", description="How many outputs the node has.")
    timeout: NRFloat = Field(
        0.0, title="Timeout (seconds)", description="Stop a run that takes longer; 0: no limit."
    )
    noerr: NRInt = Field(0, title="Syntax problems found", json_schema_extra={"x-widget": "hidden"})
    initialize: str = Field(
        "",
        title="On start",
        description="JavaScript run once when the node starts.",
        json_schema_extra={"x-widget": "code", "x-language": "javascript", "x-section": "Setup"},
    )
    finalize: str = Field(
        "",
        title="On stop",
        description="JavaScript run once when the node stops.",
        json_schema_extra={"x-widget": "code", "x-language": "javascript", "x-section": "Setup"},
    )
    libs: list[dict[str, Any]] = Field(
        [],
        title="Modules",
        description="Modules made available to the code: the variable and the module.",
        json_schema_extra={
            "x-widget": "rows",
            "x-section": "Setup",
            "x-columns": [{"key": "var", "title": "Variable"}, {"key": "module", "title": "Module"}],
        },
    )


class JsFunctionNode(Node[JsFunctionConfig]):
    type = "function"
    category = "function"
    label = "function"
    color = "#fdd0a2"
    Config = JsFunctionConfig
    help = (
        "Runs a JavaScript body on each message, as Node-RED's function node: use `msg`, `node`, "
        "`context`, `flow`, `global` and `env`; return msg, an array per output, or null. "
        "`flow.incr(key, by, store)` (also on `context` and `global`) adds to a number atomically, in the "
        "`redis` store across every worker, when the call ends (it gives no value back)."
    )

    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        return max(int(config.outputs or 0), 0)

    @classmethod
    def check_config(cls, config: JsFunctionConfig) -> list[str]:
        """External modules and syntax errors, found without running any of the code."""
        problems = [message for message in (libs_problem(config),) if message]
        for prop, kind in (("func", "body"), ("initialize", "initialize"), ("finalize", "finalize")):
            source = getattr(config, prop) or ""
            if kind != "body" and not source.strip():
                continue
            problem = syntax_problem(kind, source, is_async=kind != "finalize")
            if problem:
                problems.append(f"{prop}: {problem}")
        return problems

    @classmethod
    def import_caveats(cls, config: JsFunctionConfig) -> list[str]:
        """What may behave differently from Node-RED for this node (shown by the import report)."""
        return js_caveats(config)

    # ----- lifecycle --------------------------------------------------------------------------
    def setup(self) -> None:
        problem = libs_problem(self.config)
        if problem:
            raise NodeError(f"function: {problem}")
        timeout = float(self.config.timeout or 0)
        self._limit = timeout if timeout > 0 else float(self.setting("functionTimeLimit", DEFAULT_TIME_LIMIT))
        memory_mb = float(self.setting("functionMemoryLimit", DEFAULT_MEMORY_LIMIT_MB))
        sources = (self.config.func or "", self.config.initialize or "", self.config.finalize or "")
        self._drain_always = any(ASYNC_HINT.search(s) for s in sources)
        self._slots = literal_reads(*sources)
        self.auto_done = not _NODE_DONE.search(self.config.func or "")
        self._held = HeldValues()
        self._calls: dict[int, Msg] = {}
        self._call_ids = itertools.count(1)
        self._timers: dict[int, Any] = {}
        self._closing = False
        self._current: int | None = None
        self._intervals: set[int] = set()
        self._budget = TimerBudget()
        self._memory = int(memory_mb * 1024 * 1024)
        self._scripts = self._setup_scripts()
        self._isolate: JsIsolate | None = None
        self._lock = asyncio.Lock()
        # the engine hands on_batch what waits: one evaluation (here) or one request (in a worker) for many messages
        self.max_batch = MAX_BATCH
        placement = worker_for(self)
        if placement is not None:
            self._pool, self._tenant = placement
            self._pool.register_handler(HANDLER, HANDLER_MODULE)
            self._key = f"{self.id}#{next(_node_keys)}"
            self._generation: int | None = None
            return
        self._isolate = JsIsolate(self._memory, on_reset=self._load)
        try:
            self._load(self._isolate)
        except JsError as exc:
            self._isolate.close()
            raise NodeError(f"function: {exc}") from None

    @property
    def in_worker(self) -> bool:
        """True when the node's isolate lives in its tenant's sandbox worker."""
        return self._isolate is None

    def _setup_scripts(self) -> list[tuple[str, str]]:
        """The API prelude and the compiled bodies, as (kind, code) to run in a fresh isolate."""
        info = Encoder(self._held).encode(
            {
                "id": self.id,
                "name": self.name,
                "path": f"{self.z}/{self.id}",
                "outputCount": self.output_count(self.config),
            }
        )
        scripts = [
            ("prelude", _PRELUDE + f"\n__sf.setup({info});"),
            _compiled(
                "body", self.config.func or "", "msg, node", bool(_AWAIT.search(self.config.func or ""))
            ),
        ]
        if (self.config.initialize or "").strip():
            scripts.append(_compiled("initialize", self.config.initialize, "node", True))
        if (self.config.finalize or "").strip():
            scripts.append(_compiled("finalize", self.config.finalize, "node", False))
        return scripts

    def _load(self, isolate: JsIsolate) -> None:
        """Install the API and compile the bodies (again after an isolate reset)."""
        load_scripts(isolate, self._scripts)

    async def start(self) -> None:
        if self.in_worker:
            try:
                async with self._lock:
                    await self._open_worker()
                    if (self.config.initialize or "").strip():
                        await self._evaluate_in_worker(None, "__sf.init({ctx})")
            except NodeError as exc:
                self.error(exc)
            return
        if (self.config.initialize or "").strip():
            try:
                self._evaluate(None, "__sf.init({ctx})")
            except NodeError as exc:
                self.error(exc)

    async def close(self, removed: bool) -> None:
        self._closing = True
        self._cancel_timers()
        if self.in_worker:
            await self._close_in_worker()
            return
        try:
            if (self.config.finalize or "").strip():
                self._evaluate(None, "__sf.finish({ctx})")
        except NodeError as exc:
            self.warn(f"finalize failed: {exc}")
        finally:
            self._isolate.close()

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

    def _cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._intervals.clear()

    # ----- messages ---------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        call_id = self._open_call(msg)
        self._current = call_id
        try:
            self._evaluate(msg, f"__sf.call({call_id},{{msg}},{{ctx}},{{buffers}},{{watched}})", call_id)
        except NodeError:
            self._calls.pop(call_id, None)
            raise
        finally:
            self._current = None

    async def on_batch(self, msgs: list[Msg]) -> list[BaseException | None]:
        """Messages, evaluated in order in as few evaluations (or requests to the worker) as it takes."""
        entries = []
        for msg in msgs:
            call_id = self._open_call(msg)
            entries.append((msg, f"__sf.call({call_id},{{msg}},{{ctx}},{{buffers}},{{watched}})", call_id))
        async with self._lock:
            return await self._evaluate_all(entries)

    def _open_call(self, msg: Msg) -> int:
        call_id = next(self._call_ids)
        self._calls[call_id] = msg
        if len(self._calls) > MAX_OPEN_CALLS:  # bodies that never finish must not hold messages forever
            del self._calls[next(iter(self._calls))]
        return call_id

    def _evaluate(self, msg: Msg | None, template: str, call_id: int | None = None) -> None:
        """Run `template` (with {msg}, {ctx}, {buffers} filled in), fetching context it needs, and apply ops."""
        encoder = Encoder(self._held)
        msg_text = encoder.encode(msg) if msg is not None else "null"
        extra: set[str] = set()
        for _ in range(MAX_FETCH_ROUNDS):
            code, data = self._code(encoder, msg_text, template, call_id, extra)
            ops = self._run(code, call_id, data)
            if self._needs(ops, extra):
                continue
            self._apply(ops)
            if self._drain_always or (ops and ops[-1][0] == "pending" and ops[-1][1] > 0):
                self._apply(self._run("__sf.drain()", call_id))
            return
        raise NodeError("function: too many context values read by name at run time")

    async def _evaluate_in_worker(self, msg: Msg | None, template: str, call_id: int | None = None) -> None:
        """`_evaluate` with the isolate in the worker (the lock is held)."""
        outcome = (await self._evaluate_all([(msg, template, call_id)]))[0]
        if outcome is not None:
            raise outcome

    async def _evaluate_all(
        self, entries: list[tuple[Msg | None, str, int | None]]
    ) -> list[BaseException | None]:
        """Evaluate (msg, template, call id) entries in order in the worker; one outcome per entry (None: ok).

        One request carries every entry: the first gets the context values fetched now, the others go on
        with those values as the earlier ones left them. The worker stops at the first entry that fails or
        asks for a value not fetched; the rest is sent again with values fetched anew. After a crash, the
        entries are sent one by one, so only the one that kills the worker again fails.
        """
        outcomes: list[BaseException | None] = [None] * len(entries)
        encoded: list[tuple[Encoder, str] | None] = [None] * len(entries)
        rounds = [0] * len(entries)
        extra: set[str] = set()
        one_by_one = len(entries) == 1
        i = 0
        while i < len(entries):
            end = i + 1 if one_by_one else len(entries)
            items = []
            for k in range(i, end):
                if encoded[k] is None:
                    encoder = Encoder(self._held)
                    msg = entries[k][0]
                    encoded[k] = (encoder, encoder.encode(msg) if msg is not None else "null")
                encoder, msg_text = encoded[k]
                items.append(
                    list(self._code(encoder, msg_text, entries[k][1], entries[k][2], extra, fresh=k == i))
                )
            try:
                answer = await self._request(items, entries[i][2])
            except _OwnCrash as crash:
                if not one_by_one:
                    one_by_one = True
                    continue
                answer, failure = [], crash.error
            except NodeError as exc:  # the worker was lost or timed out: these entries fail with it
                answer, failure = [], exc
            else:
                failure = None
            if not answer:
                for k in range(i, end):
                    outcomes[k] = failure or NodeError("function: the JavaScript worker answered nothing")
                    self._forget(entries[k][2])
                i = end
                continue
            i = self._settle(entries, answer, i, outcomes, rounds, extra)
        return outcomes

    def _settle(
        self, entries: list, answer: list, first: int, outcomes: list, rounds: list[int], extra: set[str]
    ) -> int:
        """Apply the worker's results for entries from `first`; the index to go on from."""
        results = self._per_entry(answer)
        for offset, (kind, ops, drained, failure) in enumerate(results):
            k = first + offset
            call_id = entries[k][2]
            self._current = call_id
            try:
                if kind != "ok":
                    self._stopped(kind, ops, call_id)
                if self._needs(ops, extra):
                    rounds[k] += 1
                    if rounds[k] < MAX_FETCH_ROUNDS:
                        return k  # again from this one, with the value fetched
                    raise NodeError("function: too many context values read by name at run time")
                self._apply(ops)
                if drained is not None:
                    self._apply(drained)
                if failure is not None:
                    self._stopped(failure[0], failure[1], call_id)
            except NodeError as exc:
                outcomes[k] = exc
                self._forget(call_id)
            finally:
                self._current = None
        return first + len(results)

    def _per_entry(self, answer: list) -> list[tuple[str, Any, list | None, list | None]]:
        """The worker's results, one (kind, ops or error text, drained ops, failure) per entry."""
        held = self._held
        results = []
        for result in answer:
            kind = result[0]
            if kind == "many":
                _count, _stop, each = decode(result[1], held)
                last = len(each) - 1
                for j, ops in enumerate(each):
                    tail = j == last
                    results.append(
                        (
                            "ok",
                            ops,
                            decode(result[2], held) if tail and result[2] else None,
                            result[3] if tail else None,
                        )
                    )
            elif kind == "ok":
                results.append(
                    ("ok", decode(result[1], held), decode(result[2], held) if result[2] else None, result[3])
                )
            else:
                results.append((kind, result[1], None, None))
        return results

    def _forget(self, call_id: int | None) -> None:
        if call_id is not None:
            self._calls.pop(call_id, None)

    def _code(
        self,
        encoder: Encoder,
        msg_text: str,
        template: str,
        call_id: int | None,
        extra: set[str],
        fresh: bool = True,
    ) -> tuple[str, str | None]:
        """The code to evaluate (and its `__sfIn` data) with the context values fetched now (or, not
        `fresh`, with the values the previous evaluation left)."""
        ctx_text = encoder.encode(self._fetch(self._slots | extra)) if fresh else '"same"'
        buffers = "true" if encoder.buffers else "false"
        watched = "true" if self._watched else "false"
        if call_id is not None and encoder.strict:
            # strict JSON: pass it as data to constant code (compiled once)
            return "__sf.callIn()", f"[{call_id},{msg_text},{ctx_text},{buffers},{watched}]"
        return template.format(msg=msg_text, ctx=ctx_text, buffers=buffers, watched=watched), None

    def _needs(self, ops: list, extra: set[str]) -> bool:
        """True when the script asked for a context value not fetched (learned for the next round)."""
        if not ops or ops[0][0] != "need":
            return False
        slot = ops[0][1]
        if slot in extra or slot in self._slots:
            raise NodeError(f"function: cannot read {slot!r}")
        if len(self._slots) < MAX_LEARNED_SLOTS:
            self._slots = self._slots | {slot}
        else:
            extra.add(slot)
        return True

    def _run(self, code: str, call_id: int | None, data: str | None = None) -> list:
        try:
            text = self._isolate.run(code, self._limit, data)
        except (JsTimeout, JsMemoryLimit) as exc:
            self._stopped("timeout" if isinstance(exc, JsTimeout) else "memory", str(exc), call_id)
        except JsError as exc:
            raise NodeError(f"function: {exc}") from None
        return decode(text, self._held) if isinstance(text, str) else []

    def _stopped(self, kind: str, text: str, call_id: int | None) -> None:
        """Raise the error of an evaluation that failed (`kind`: timeout, memory, error, crashed)."""
        if kind == "error":
            raise NodeError(f"function: {text}")
        self.status("red", "ring", "stopped: " + ("out of memory" if kind == "crashed" else kind))
        if call_id is not None:
            self._calls.pop(call_id, None)
        if kind == "crashed":
            raise ScriptStopped(OUT_OF_MEMORY, kind)
        raise ScriptStopped(f"Error: {text}", kind)  # Node-RED's text: the Error's toString()

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

    def _fetch(self, slots: set[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for slot in slots:
            scope, store, key = split_slot(slot)
            if scope == "env":
                value = self.env(key)
            else:
                target = self.context if scope == "node" else self.flow if scope == "flow" else self.global_
                value = target.keys(store) if key == "*keys" else target.get(key, store)
            values[slot] = value
        return values

    # ----- operations from the script ---------------------------------------------------------
    def _apply(self, ops: list) -> None:
        for op in ops:
            kind = op[0]
            if kind in ("send", "return"):
                self._send(op[2])
                if kind == "return" and self.auto_done:
                    self._finish(op[1], None)
            elif kind == "throw":
                self._fail(op[1], op[2])
            elif kind == "done":
                self._restate(op[1], op[3])
                self._finish(op[1], op[2])
            elif kind == "state":
                self._restate(op[1], op[2])
            elif kind == "set":
                self._set(*op[1:])
            elif kind == "incr":
                self._incr(*op[1:])
            elif kind == "status":
                st = op[1] if isinstance(op[1], dict) else {}
                self.status({k: v for k, v in st.items() if v is not None})
            elif kind == "warn":
                self.warn(op[1])
            elif kind == "log":
                self.log(op[1])
            elif kind == "error":
                self.error(NodeError(str(op[1])), op[2] if isinstance(op[2], dict) else None)
            elif kind == "timer":
                self._arm(op[1], op[2] / 1000.0, op[3])
            elif kind == "clear":
                self._intervals.discard(op[1])
                handle = self._timers.pop(op[1], None)
                if handle is not None:
                    handle.cancel()

    def _send(self, out: list | None) -> None:
        if not out:
            return
        self.send([port if port else None for port in out])

    def _restate(self, call_id: int, state: Any) -> None:
        """Make the input message what the script left it as (Node-RED completes that same object)."""
        msg = self._calls.get(call_id)
        if msg is not None and isinstance(state, dict):
            msg.clear()
            msg.update(state)

    def _finish(self, call_id: int, error: str | None) -> None:
        msg = self._calls.pop(call_id, None) if self.auto_done else self._calls.get(call_id)
        if not self.auto_done and msg is not None:
            self._calls.pop(call_id, None)
            self.done(msg, NodeError(error) if error else None)
        elif error and msg is not None:
            self.error(NodeError(error), msg)

    def _fail(self, call_id: int, text: str) -> None:
        msg = self._calls.pop(call_id, None)
        if msg is None:
            self.error(NodeError(text))
            return
        if self.auto_done and call_id == self._current:
            raise NodeError(text)  # the engine reports it as this message's error
        if self.auto_done:
            self.error(NodeError(text), msg)
        else:
            self.done(msg, NodeError(text))

    def _set(self, scope: str, store: str | None, key: str, value: Any, delete: bool) -> None:
        target = self.context if scope == "node" else self.flow if scope == "flow" else self.global_
        if delete:
            target.delete(key, store)
        else:
            target.set(key, value, store)

    def _incr(self, scope: str, store: str | None, key: str, by: int | float) -> None:
        """`flow.incr(key, by, store)` in a script: sofiaflow's atomic increment (no value back to the script)."""
        target = self.context if scope == "node" else self.flow if scope == "flow" else self.global_
        try:
            target.incr(key, by, store)
        except ValidationError as exc:
            self.error(
                NodeError(f"function: {exc}"), self._calls.get(self._current) if self._current else None
            )

    def _arm(self, timer_id: int, seconds: float, repeat: bool) -> None:
        if self._closing:
            return
        if repeat:
            self._intervals.add(timer_id)
        self._timers[timer_id] = self.call_later(seconds, lambda: self._fire(timer_id, seconds, repeat))

    def _fire(self, timer_id: int, seconds: float, repeat: bool) -> None:
        """A timer is due: evaluate its callback (in the worker: as a task, after what is running)."""
        self._timers.pop(timer_id, None)
        if self.in_worker:
            self.track(self._fire_in_worker(timer_id, seconds, repeat))
            return
        started = time.monotonic()
        try:
            self._evaluate(None, f"__sf.fire({timer_id},{{ctx}})")
        except NodeError as exc:
            self._fired(timer_id, seconds, repeat, started, exc)
            raise
        self._fired(timer_id, seconds, repeat, started, None)

    async def _fire_in_worker(self, timer_id: int, seconds: float, repeat: bool) -> None:
        async with self._lock:
            if self._closing:
                return
            started = time.monotonic()
            failure = None
            try:
                await self._evaluate_in_worker(None, f"__sf.fire({timer_id},{{ctx}})")
            except NodeError as exc:
                failure = exc
                self.error(exc)
        self._fired(timer_id, seconds, repeat, started, failure)

    def _fired(
        self, timer_id: int, seconds: float, repeat: bool, started: float, failure: BaseException | None
    ) -> None:
        """After a timer callback: re-arm an interval, unless it ran too long or timers take too much time."""
        if isinstance(failure, ScriptStopped) and failure.kind == "timeout":
            self._intervals.discard(timer_id)
            self.status("red", "ring", "stopped: a timer callback ran past the time limit")
            return
        if self._budget.over(started, time.monotonic()):
            self._cancel_timers()
            self.status("red", "ring", "stopped: timers took over half of the time")
            self.error(NodeError("function: timers cleared, their callbacks took over half of the time"))
            return
        if repeat and timer_id in self._intervals and not self._closing:
            self._arm(timer_id, seconds, True)


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


def _compiled(kind: str, source: str, params: str, is_async: bool) -> tuple[str, str]:
    """The setup script that compiles one body of the node (`kind`: body, initialize, finalize)."""
    head = "async function" if is_async else "function"
    return kind, f"__sf.compile({kind!r}, ({head}({params}){{\n{source}\n}}));\n//# sourceURL={kind}"
