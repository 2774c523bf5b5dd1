"""Worker side of the JavaScript function node: its V8 isolates, in a sandbox worker process.

The host (nodes/function/js_function.py) sends requests to the tenant's worker; this module keeps
one isolate per node instance there (`key`) and answers:

- `open`  {key, memory, setup: [[kind, code], ...]}: a new isolate with that heap limit (bytes), the
  setup scripts run in it (the API prelude, the compiled bodies). A syntax error raises its text.
- `run`   {key, limit, drain, items: [[code, data | None], ...]}: evaluates the items in order, each
  with `limit` seconds, `data` stored in the global `__sfIn` first. Answers one result per item run:
  `["ok", ops_json, drained_ops_json | None, failure | None]` or a failure, `["timeout" | "memory" |
  "error", text]` (an ok item's failure is its drain's). It stops after
  the first result that is not ok or asks for a context value (`[["need", ...]]`): the host fetches
  and sends the rest again. After an ok evaluation that left promises pending (or when `drain`), the
  microtasks' operations are collected with `__sf.drain()`.
- `close` {key}: the isolate is dropped.

Before running, the worker tells the host `running` (event, the key): when the process dies, the
host knows which node's request killed it, and the requests of others that were waiting are retried.

An isolate that reaches its heap limit is replaced and set up again here (its state is lost). A
single huge allocation kills the whole process (V8 fatal out of memory): the host sees the worker
crash and opens the node's isolate again in the new worker.

V8 reserves far more address space than it uses: the worker's memory limit must be RLIMIT_DATA
(768 MB or more), never RLIMIT_AS, with which no isolate can start.
"""

from __future__ import annotations

import os
from typing import Any

from .js_isolate import JsError, JsIsolate, JsMemoryLimit, JsTimeout

SETUP_LIMIT = 5.0
"""Seconds allowed to each setup script (prelude and compiling the bodies)."""
SETTLE_LIMIT = 10.0
"""Seconds a terminated script gets to actually stop. Some builtins cannot be interrupted (one huge
`Array.prototype.fill`): they go on until done or until V8 aborts the process out of memory."""
EXIT_WEDGED = 3

_isolates: dict[str, JsIsolate] = {}


def prepare() -> None:
    """Load V8 (its library and ICU data) while the worker can still read them, before its limits apply."""
    from py_mini_racer._dll import init_mini_racer

    init_mini_racer(ignore_duplicate_init=True)


def handle(op: str, payload: Any, host: Any) -> Any:
    """Answer one request from the host (see the module docstring)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("key"), str):
        raise ValueError(f"js {op}: the payload must be a dict with a string 'key'")
    key = payload["key"]
    if op == "open":
        return _open(key, int(payload.get("memory") or 0), payload.get("setup") or [])
    if op == "run":
        isolate = _isolates.get(key)
        if isolate is None:
            raise ValueError(f"js run: no isolate {key!r} in this worker (open it first)")
        host.event("running", key)  # if this crashes the worker, the host knows whose request did it
        return _run(isolate, float(payload.get("limit") or 0), bool(payload.get("drain")), payload.get("items") or [])
    if op == "close":
        isolate = _isolates.pop(key, None)
        if isolate is not None:
            isolate.close()
        return None
    raise ValueError(f"js: unknown operation {op!r} (open, run, close)")


def _open(key: str, memory: int, setup: list) -> None:
    old = _isolates.pop(key, None)
    if old is not None:
        old.close()
    scripts = [(str(kind), str(code)) for kind, code in setup]
    isolate = JsIsolate(memory, on_reset=lambda fresh: load_scripts(fresh, scripts))
    try:
        load_scripts(isolate, scripts)
    except JsError:
        isolate.close()
        raise
    _isolates[key] = isolate


def load_scripts(isolate: JsIsolate, scripts: list[tuple[str, str]]) -> None:
    """Run setup scripts in an isolate; a script's error names its kind (body, initialize, ...) and line."""
    for kind, code in scripts:
        try:
            isolate.run(code, SETUP_LIMIT)
        except JsError as exc:
            text = str(exc) if kind == "prelude" else str(exc).replace("(line ", f"({kind}:line ")
            raise JsError(text) from None


def _run(isolate: JsIsolate, limit: float, drain: bool, items: list) -> list:
    results: list = []
    for code, data in items:
        try:
            text = isolate.run(str(code), limit, None if data is None else str(data))
        except JsError as exc:
            results.append(_failure(exc, isolate))
            break
        if not isinstance(text, str):
            text = "[]"
        if text.startswith('[["need"'):
            results.append(["ok", text, None, None])
            break
        drained, failure = None, None
        if drain or not text.endswith('["pending",0]]'):
            try:
                drained = isolate.run("__sf.drain()", limit)
            except JsError as exc:
                failure = _failure(exc, isolate)
        results.append(["ok", text, drained if isinstance(drained, str) else None, failure])
        if failure is not None:
            break
    return results


def _failure(exc: JsError, isolate: JsIsolate) -> list:
    if isinstance(exc, JsTimeout):
        _settle(isolate)
    kind = "timeout" if isinstance(exc, JsTimeout) else "memory" if isinstance(exc, JsMemoryLimit) else "error"
    return [kind, str(exc)]


def _settle(isolate: JsIsolate) -> None:
    """Wait until a timed-out script has really stopped; a script that cannot be stopped ends the worker."""
    try:
        isolate.run("0", SETTLE_LIMIT)
    except JsTimeout:
        os.write(2, b"js: a script past its time limit could not be stopped; the worker exits\n")
        os._exit(EXIT_WEDGED)
    except JsError:
        pass
