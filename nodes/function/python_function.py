"""python function: the Scripting Engine's node, a Python body run in a RestrictedPython sandbox.

Where bodies run follows the setting `functionIsolation`: "process" (the default) runs them in the sandbox
worker of the flow's owner, a batch of messages per request (`python_remote`, `python_sandbox`);
"admin-in-process" keeps administrators' and ownerless flows in the server process; "in-process" runs
every flow's bodies in the server process, which is unsafe: RestrictedPython alone is not a boundary, and
C code that runs long or allocates without end stalls the whole server. A runtime without a "sandbox"
service (an embedded engine, the bare test harness) runs them in process.

The body sees `msg`, `node`, `context`, `flow`, `global_` (also `glob`), and `env`, and returns a
message, a list with one entry per output (a message, a list of messages, or None), or None. It is
compiled once at deploy (syntax errors are reported with their line), each call has a time limit,
and only allow-listed modules can be imported.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from sofiaflow.nodes.function.placement import worker_for
from sofiaflow.nodes.function.python_remote import MAX_BATCH, RemoteFunction
from sofiaflow.nodes.function.sandbox import (
    DEFAULT_ALLOWED_MODULES,
    CompiledScript,
    SandboxError,
    ScriptSyntaxError,
    describe_error,
)
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRFloat, NRInt, clone_message

DEFAULT_TIME_LIMIT = 1.0


class PythonFunctionConfig(NodeConfig):
    func: str = Field(
        "\nreturn msg",
        title="On message",
        description="Python run for each message. `msg` is a dict: read msg['payload'], msg.get('topic'); return msg (or a new dict), a list with one entry per output, or None to send nothing. Also there: node (send, warn, error, status), context, flow, global_, env.",
        json_schema_extra={"x-widget": "code", "x-language": "python"},
    )
    outputs: NRInt = Field(
        1, title="Outputs", description="How many outputs the node has (return a list to send on several)."
    )
    timeout: NRFloat = Field(
        0.0, title="Timeout (seconds)", description="Stop a run that takes longer; 0: no limit."
    )
    initialize: str = Field(
        "",
        title="On start",
        description="Python run once when the node starts (set up context).",
        json_schema_extra={"x-widget": "code", "x-language": "python", "x-section": "Setup"},
    )
    finalize: str = Field(
        "",
        title="On stop",
        description="Python run once when the node stops or is redeployed.",
        json_schema_extra={"x-widget": "code", "x-language": "python", "x-section": "Setup"},
    )
    libs: list[dict[str, str]] = Field(
        [],
        title="Modules",
        description="Python modules made available to the code: the name to use and the module.",
        json_schema_extra={
            "x-widget": "rows",
            "x-section": "Setup",
            "x-columns": [{"key": "var", "title": "Import as"}, {"key": "module", "title": "Module"}],
        },
    )


class _Env:
    """`env.get("NAME")` inside scripts."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def get(self, name: str) -> Any:
        return self._node.env(name)


class ScriptNode:
    """The `node` object a script sees: messaging, logging and status, nothing of the runtime."""

    def __init__(self, node: PythonFunctionNode) -> None:
        self._node = node
        self.id = node.id
        self.name = node.name
        self.outputs = node.output_count(node.config)

    def send(self, msg: Any, clone: bool = True) -> None:
        """Send now; like Node-RED, the first message is cloned unless `clone=False`."""
        if clone and isinstance(msg, dict):
            msg = clone_message(msg)
        self._node.send_result(msg)

    def done(self) -> None:
        """Accepted for Node-RED parity; completion is tracked when the body returns."""

    def warn(self, text: Any) -> None:
        self._node.warn(text)

    def error(self, text: Any, msg: Msg | None = None) -> None:
        self._node.error(NodeError(str(text)), msg)

    def log(self, text: Any) -> None:
        self._node.log(text)

    def status(self, fill: Any = None, shape: Any = None, text: Any = None) -> None:
        self._node.status(fill, shape, text)


class PythonFunctionNode(Node[PythonFunctionConfig]):
    type = "python function"
    category = "function"
    label = "python function"
    color = "#fdd0a2"
    Config = PythonFunctionConfig
    help = (
        "Runs a Python body on each message (sandboxed). Use `msg`, `node`, `context`, `flow`, "
        "`global_` and `env`; return msg, a list per output, or None. "
        "`flow.incr(key, by=1, store=None)` (also on `context` and `global_`) adds to a number atomically "
        "and returns the new value; in the `redis` store, atomically across every worker."
    )

    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        return max(int(config.outputs or 0), 0)

    @classmethod
    def check_config(cls, config: PythonFunctionConfig) -> list[str]:
        """Compile every body so `flows validate` reports syntax errors with their lines."""
        problems = []
        for field in ("func", "initialize", "finalize"):
            source = getattr(config, field) or ""
            if field != "func" and not source.strip():
                continue
            try:
                CompiledScript(source, name=field, allowed_modules=DEFAULT_ALLOWED_MODULES | _extra_modules())
            except ScriptSyntaxError as exc:
                problems.append(f"{field}: {exc}")
            except SandboxError as exc:
                problems.append(f"{field}: {exc}")
        return problems

    def setup(self) -> None:
        limit = (
            self.config.timeout
            if self.config.timeout and self.config.timeout > 0
            else float(self.setting("functionTimeLimit", DEFAULT_TIME_LIMIT))
        )
        allowed = DEFAULT_ALLOWED_MODULES | frozenset(self.setting("functionExtraModules", ()))
        try:
            self._script = CompiledScript(
                self.config.func or "",
                name=f"{self.name or self.id} (func)",
                allowed_modules=allowed,
                time_limit=limit,
                on_print=self.log,
            )
            self._init = self._compile_optional(self.config.initialize, "initialize", allowed, limit)
            self._final = self._compile_optional(self.config.finalize, "finalize", allowed, limit)
        except SandboxError as exc:
            raise NodeError(f"python function: {exc}") from None
        self._outputs = self.output_count(self.config)
        self._facade = ScriptNode(self)
        self._env = _Env(self)
        self._libs = {
            lib["var"]: lib["module"] for lib in self.config.libs if lib.get("var") and lib.get("module")
        }
        self._remote: RemoteFunction | None = None
        self._red: dict[str, Any] | None = None
        self.max_batch = 0  # in process: one message at a time through on_input
        placement = worker_for(self)
        if placement is not None:
            pool, tenant = placement
            self._remote = RemoteFunction(
                self,
                pool,
                tenant,
                {
                    "id": self.id,
                    "name": self.name,
                    "func": self.config.func or "",
                    "outputs": self._outputs,
                    "initialize": self.config.initialize or "",
                    "finalize": self.config.finalize or "",
                    "limit": limit,
                    "modules": sorted(allowed),
                    "libs": self._libs,
                },
            )
            self.max_batch = MAX_BATCH
            self.batch_causes = True  # run_batch applies each answer inside sending_for(msg)

    def _compile_optional(
        self, source: str, part: str, allowed: frozenset[str], limit: float
    ) -> CompiledScript | None:
        if not source or not source.strip():
            return None
        return CompiledScript(
            source,
            name=f"{self.name or self.id} ({part})",
            allowed_modules=allowed,
            time_limit=limit,
            on_print=self.log,
        )

    def _variables(self, msg: Msg | None) -> dict[str, Any]:
        variables: dict[str, Any] = {
            "node": self._facade,
            "context": self.context,
            "flow": self.flow,
            "global_": self.global_,
            "glob": self.global_,
            "env": self._env,
        }
        if msg is not None:
            variables["msg"] = msg
        return variables

    async def start(self) -> None:
        if self._init is not None:
            if self._remote is not None:
                await self._remote.run_part("initialize")
            else:
                self._run(self._init, None)

    async def close(self, removed: bool) -> None:
        if self._remote is not None:
            try:
                if self._final is not None:
                    await self._remote.run_part("finalize")
            except NodeError as exc:
                self.warn(f"finalize failed: {exc}")
            finally:
                await self._remote.forget()
            return
        if self._final is not None:
            try:
                self._run(self._final, None)
            except NodeError as exc:
                self.warn(f"finalize failed: {exc}")

    def _run(self, script: CompiledScript, msg: Msg | None) -> Any:
        variables = self._variables(msg)
        if self._libs:
            for var, module in self._libs.items():
                variables[var] = _import(script, module)
        try:
            return script.run(variables)
        except SandboxError as exc:
            raise NodeError(str(exc)) from None
        except NodeError:
            raise
        except Exception as exc:
            raise NodeError(describe_error(exc, script.name)) from exc

    def on_input(self, msg: Msg) -> None:
        result = self._run(self._script, msg)
        if result is not None:
            self.send_result(result)

    async def on_batch(self, msgs: list[Msg]) -> list[BaseException | None]:
        """In a sandbox worker: the batch's messages run there; one result per message."""
        return await self._remote.run_batch(msgs)

    def apply(self, ops: list[Any], error: str | None, msg: Msg | None) -> BaseException | None:
        """Do, in order, what a body did in the worker for `msg`; the message's error, if any."""
        try:
            for op in ops:
                kind = op[0]
                if kind == "send" or kind == "return":
                    self.send_result(op[1])
                elif kind == "log":
                    self.log(op[1])
                elif kind == "warn":
                    self.warn(op[1])
                elif kind == "error":
                    self.error(NodeError(str(op[1])), op[2] if isinstance(op[2], dict) else None)
                elif kind == "status":
                    self.status(op[1], op[2], op[3])
        except Exception as exc:  # noqa: BLE001 - as when node.send raises in the body: the message fails
            return exc
        return None if error is None else NodeError(error)

    def failed(self, text: str) -> None:
        """The worker was killed or died under this node's messages: say so in red."""
        self.status("red", "ring", text.removeprefix("python function: ")[:80])
        self._red = self.last_status

    def recovered(self) -> None:
        """A batch ran: clear the red status `failed` set (not one the body set since)."""
        if self._red is not None:
            if self.last_status is self._red:
                self.status()
            self._red = None

    def send_result(self, result: Any) -> None:
        """Send what a body returned (or passed to node.send), checking its shape."""
        if isinstance(result, dict):
            self.send(result)
        elif isinstance(result, (list, tuple)):
            out = list(result)
            if len(out) > self._outputs and self._outputs >= 1:
                raise NodeError(f"returned {len(out)} entries for {self._outputs} output(s)")
            self.send(out)
        else:
            raise NodeError(
                f"a python function must return a dict, a list or None, not {type(result).__name__}"
            )


def _extra_modules() -> frozenset[str]:
    """Modules allowed on top of the default list by `SOFIAFLOW_FUNCTION_MODULES` (comma-separated)."""
    return frozenset(
        m.strip() for m in os.environ.get("SOFIAFLOW_FUNCTION_MODULES", "").split(",") if m.strip()
    )


def _import(script: CompiledScript, module: str) -> Any:
    return script.import_library(module)  # same allow-list check as `import` in the body
