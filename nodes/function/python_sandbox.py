"""Worker side of the python function node: bodies run here, in a sandbox worker process.

The host (`python_remote`) sends each node's setup (its sources, outputs, time limit, modules), then
batches of messages. Each message runs through `CompiledScript` with the same `node`, `context`, `flow`,
`global_`/`glob` and `env` a body sees in process; context and env are calls to the host, and what the
body does with `node` (send, warn, log, error, status) is collected per message and applied, in order, by
the host. A message's answer is `[ops, error]`: ops like `["send", value]`, `["return", value]`,
`["warn", text]`, `["log", text]`, `["error", text, msg]`, `["status", fill, shape, text]`, and the error
text (with the body's line) or None. Values the host held back (msg.req, objects) arrive as msgpack
extensions and go back unchanged.

This module runs in the worker process, not in the server: the api loads its names on first use, so taking
`clone_message` from it loads only the message module, not the whole runtime, into every tenant's worker.
"""

from __future__ import annotations

import time
from importlib import import_module
from typing import Any

import msgspec

from sofiaflow.nodes.function.python_wire import views_from_wire, views_to_wire
from sofiaflow.nodes.function.sandbox import (
    DEFAULT_ALLOWED_MODULES,
    CompiledScript,
    SandboxError,
    describe_error,
)
from sofiaflow.runtime.api import clone_message

NOT_SET_UP = "is not set up in this worker"
"""Error text for a request about a node this worker does not know (it restarted): the host re-sends setup."""
PROGRESS_EVERY = 0.05
"""Seconds between progress reports to the host during a batch (they keep the host's deadline per message)."""

_encode = msgspec.msgpack.Encoder().encode
_nodes: dict[str, _RemoteNode] = {}


def prepare() -> None:
    """At worker start, before privileges drop: import what bodies may import."""
    for name in sorted(DEFAULT_ALLOWED_MODULES):
        try:
            import_module(name)
        except ImportError:
            pass


def handle(op: str, payload: Any, host: Any) -> Any:
    """Serve one request of the python function host (see the module docstring)."""
    if op == "run":
        node = _node_for(payload, host)
        return node.run_batch(payload["msgs"])
    if op == "setup":
        _setup(payload["setup"], host)
        return None
    if op in ("initialize", "finalize"):
        node = _node_for(payload, host)
        return node.run_part(op)
    if op == "forget":
        node = _nodes.get(payload["node"])
        if node is not None and node.token == payload.get("token"):
            del _nodes[payload["node"]]
        return None
    raise ValueError(f"unknown python function operation {op!r}")


def _node_for(payload: dict, host: Any) -> _RemoteNode:
    setup = payload.get("setup")
    if setup is not None:
        return _setup(setup, host)
    node = _nodes.get(payload["node"])
    if node is None:
        raise LookupError(f"python function {payload['node']} {NOT_SET_UP}")
    return node


def _setup(setup: dict, host: Any) -> _RemoteNode:
    node = _nodes[setup["id"]] = _RemoteNode(setup, host)
    return node


class _Ops:
    """What the body did with `node` while handling the current message."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[list[Any]] = []


class _ScriptNode:
    """The `node` object a body sees: messaging, logging and status, collected for the host."""

    def __init__(self, setup: dict, ops: _Ops) -> None:
        self._ops = ops
        self.id = setup["id"]
        self.name = setup.get("name") or ""
        self.outputs = int(setup.get("outputs", 1))

    def send(self, msg: Any, clone: bool = True) -> None:
        """Send now; like Node-RED, the first message is cloned unless `clone=False`."""
        if clone and isinstance(msg, dict):
            msg = clone_message(msg)
        self._ops.items.append(["send", msg])

    def done(self) -> None:
        """Accepted for Node-RED parity; completion is tracked when the body returns."""

    def warn(self, text: Any) -> None:
        self._ops.items.append(["warn", str(text)])

    def error(self, text: Any, msg: Any = None) -> None:
        self._ops.items.append(["error", str(text), msg if isinstance(msg, dict) else None])

    def log(self, text: Any) -> None:
        self._ops.items.append(["log", str(text)])

    def status(self, fill: Any = None, shape: Any = None, text: Any = None) -> None:
        self._ops.items.append(
            ["status", fill if isinstance(fill, (dict, str)) or fill is None else str(fill), shape, text]
        )


class _Context:
    """`context`, `flow` or `global_` in a body: each use is a call to the host's context store."""

    def __init__(self, host: Any, node_id: str, scope: str) -> None:
        self._call = host.call
        self._node = node_id
        self._scope = scope

    def get(self, key: Any, store: Any = None) -> Any:
        return self._call("context", [self._node, self._scope, "get", key, None, store])

    def set(self, key: Any, value: Any = None, store: Any = None) -> None:
        self._call("context", [self._node, self._scope, "set", key, value, store])

    def delete(self, key: Any, store: Any = None) -> None:
        self._call("context", [self._node, self._scope, "delete", key, None, store])

    def keys(self, store: Any = None) -> Any:
        return self._call("context", [self._node, self._scope, "keys", None, None, store])

    def incr(self, key: Any, by: Any = 1, store: Any = None) -> Any:
        return self._call("context", [self._node, self._scope, "incr", key, by, store])


class _Env:
    """`env.get("NAME")` in a body: the flow's, group's and node's variables and NR_* names (asked of the host)."""

    def __init__(self, host: Any, node_id: str) -> None:
        self._call = host.call
        self._node = node_id

    def get(self, name: Any) -> Any:
        return self._call("env", [self._node, name])


class _RemoteNode:
    """One python function node's compiled bodies and the objects they see."""

    def __init__(self, setup: dict, host: Any) -> None:
        self.host = host
        self.token = setup.get("token")
        self.ops = _Ops()
        self.limit = float(setup["limit"])
        allowed = frozenset(setup.get("modules") or DEFAULT_ALLOWED_MODULES)
        label = setup.get("name") or setup["id"]

        def compile_part(part: str, source: str) -> CompiledScript:
            return CompiledScript(
                source,
                name=f"{label} ({part})",
                allowed_modules=allowed,
                time_limit=self.limit,
                on_print=self._print,
            )

        self.script = compile_part("func", setup.get("func") or "")
        self.parts = {
            part: compile_part(part, setup[part])
            for part in ("initialize", "finalize")
            if (setup.get(part) or "").strip()
        }
        self.libs = dict(setup.get("libs") or {})
        facade = _ScriptNode(setup, self.ops)
        flow = _Context(host, setup["id"], "flow")
        global_ = _Context(host, setup["id"], "global")
        self.variables = {
            "node": facade,
            "context": _Context(host, setup["id"], "node"),
            "flow": flow,
            "global_": global_,
            "glob": global_,
            "env": _Env(host, setup["id"]),
        }

    def _print(self, line: str) -> None:
        self.ops.items.append(["log", line])

    def _run(self, script: CompiledScript, msg: Any) -> Any:
        variables = dict(self.variables)
        if msg is not None:
            variables["msg"] = msg
        for var, module in self.libs.items():
            variables[var] = script.import_library(module)
        return script.run(variables)

    def _answer(self, script: CompiledScript, msg: Any) -> msgspec.Raw:
        """One message's `[ops, error]`, encoded here so a value that cannot leave fails only its message."""
        ops = self.ops.items = []
        error = None
        views = views_from_wire(msg)
        try:
            result = self._run(script, msg)
            if result is not None:
                if not isinstance(result, (dict, list, tuple)):
                    raise SandboxError(
                        f"a python function must return a dict, a list or None, not {type(result).__name__}"
                    )
                ops.append(["return", result])
        except SandboxError as exc:
            error = str(exc)
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - the body's error, with its line, fails its message
            error = describe_error(exc, script.name)
        try:
            return msgspec.Raw(_encode([views_to_wire(ops) if views else ops, error]))
        except (TypeError, OverflowError, ValueError, msgspec.EncodeError) as exc:
            kept = [op for op in ops if op[0] in ("warn", "log")]
            return msgspec.Raw(_encode([kept, f"a value cannot leave the python function: {exc}"]))

    def run_batch(self, msgs: list[Any]) -> list[msgspec.Raw]:
        answers = []
        last = time.monotonic()
        for msg in msgs:
            answers.append(self._answer(self.script, msg))
            now = time.monotonic()
            if now - last > PROGRESS_EVERY:
                self.host.progress()
                last = now
        return answers

    def run_part(self, part: str) -> msgspec.Raw | None:
        script = self.parts.get(part)
        return None if script is None else self._answer(script, None)
