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

The node is put together from parts, one module each: `js_batches` (evaluations, a backlog in few of them),
`js_ops` (applying what a script did), `js_timers` (its timers) and `js_host` (the isolate in the worker).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from importlib import resources
from typing import Any

from pydantic import Field

from sofiaflow.nodes.function.js_batches import MAX_BATCH, Evaluations
from sofiaflow.nodes.function.js_bridge import Encoder, HeldValues, literal_reads
from sofiaflow.nodes.function.js_checks import ASYNC_HINT, js_caveats, libs_problem, syntax_problem
from sofiaflow.nodes.function.js_host import (
    HANDLER,
    HANDLER_MODULE,
    OUT_OF_MEMORY,
    IsolateHost,
    ScriptStopped,
    next_key,
)
from sofiaflow.nodes.function.js_isolate import JsError, JsIsolate
from sofiaflow.nodes.function.js_json import ValueEncoder
from sofiaflow.nodes.function.js_ops import Operations
from sofiaflow.nodes.function.js_sandbox import load_scripts
from sofiaflow.nodes.function.js_timer_budget import TimerBudget
from sofiaflow.nodes.function.js_timers import Timers
from sofiaflow.nodes.function.placement import worker_for
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRFloat, NRInt

__all__ = ["OUT_OF_MEMORY", "JsFunctionConfig", "JsFunctionNode", "ScriptStopped"]

DEFAULT_TIME_LIMIT = 1.0
"""Seconds per evaluation when the node sets no `timeout` (setting `functionTimeLimit`)."""
DEFAULT_MEMORY_LIMIT_MB = 64
"""Heap limit of each node's isolate (setting `functionMemoryLimit`)."""
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


class JsFunctionNode(Evaluations, Operations, Timers, IsolateHost, Node[JsFunctionConfig]):
    type = "function"
    category = "function"
    label = "function"
    color = "#fdd0a2"
    Config = JsFunctionConfig
    batch_causes = True
    """Each message's operations are applied inside `sending_for(msg)` (js_batches), and its timers keep it as
    their cause (js_timers): messages whose source waits for them come in batches too."""
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
        self._json = ValueEncoder(self._held)
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
            self._key = next_key(self.id)
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


def _compiled(kind: str, source: str, params: str, is_async: bool) -> tuple[str, str]:
    """The setup script that compiles one body of the node (`kind`: body, initialize, finalize)."""
    head = "async function" if is_async else "function"
    return kind, f"__sf.compile({kind!r}, ({head}({params}){{\n{source}\n}}));\n//# sourceURL={kind}"
