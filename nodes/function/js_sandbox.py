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
  and sends the rest again. Consecutive calls given as data (`__sf.callIn()`) run several per evaluation
  (`__sf.callMany`, for up to 50 ms), answered as one `["many", "[count, stop, [ops, ...]]", drained |
  None, failure | None]`. After an ok evaluation that left promises pending (or when `drain`), the
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

import asyncio
import os
import re
from typing import Any

from sofiaflow.nodes.function.js_isolate import JsError, JsIsolate, JsMemoryLimit, JsStuck, JsTimeout

SETUP_LIMIT = 5.0
"""Seconds allowed to each setup script (prelude and compiling the bodies)."""
SETTLE_WAIT = 10.0
"""Seconds a terminated script gets to actually stop. Some builtins cannot be interrupted (one huge
`Array.prototype.fill`): they go on until done or until V8 aborts the process out of memory. One that
is still going after this ends the worker."""
EXIT_WEDGED = 3
CALL_IN = "__sf.callIn()"
MANY_BUDGET = 0.05
"""Seconds of calls one evaluation runs before it answers (several messages per evaluation)."""
_MANY_HEAD = re.compile(r"^\[(\d+),(\d)")

_isolates: dict[str, JsIsolate] = {}
_loop = asyncio.new_event_loop()
"""Isolates are made and used while this loop runs in the worker's main thread: mini-racer then takes the
direct path (no hop to a thread of its own for every evaluation)."""


def prepare() -> None:
    """Load V8 (its library and ICU data) while the worker can still read them, before its limits apply."""
    from py_mini_racer._dll import init_mini_racer

    init_mini_racer(ignore_duplicate_init=True)


def handle(op: str, payload: Any, host: Any) -> Any:
    """Answer one request from the host (see the module docstring)."""
    return _loop.run_until_complete(_on_loop(op, payload, host))


async def _on_loop(op: str, payload: Any, host: Any) -> Any:
    try:
        return _handle(op, payload, host)
    except JsStuck as exc:
        os.write(2, f"js: {exc}; the worker exits\n".encode())
        os._exit(EXIT_WEDGED)


def _handle(op: str, payload: Any, host: Any) -> Any:
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
        return run_items(
            isolate, float(payload.get("limit") or 0), bool(payload.get("drain")), payload.get("items") or []
        )
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
    isolate = JsIsolate(memory, on_reset=lambda fresh: load_scripts(fresh, scripts), settle_wait=SETTLE_WAIT)
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


def run_items(isolate: JsIsolate, limit: float, drain: bool, items: list) -> list:
    """Answer a `run` request's items on `isolate` (see the module docstring); the host runs it on an isolate of its
    own when the node is not in a worker."""
    results: list = []
    i = 0
    while i < len(items):
        group = 0
        if not drain:
            while (
                i + group < len(items) and items[i + group][0] == CALL_IN and items[i + group][1] is not None
            ):
                group += 1
        if group > 1:
            went_on, stop = _run_many(
                isolate, limit, [str(item[1]) for item in items[i : i + group]], results
            )
            if went_on is None:  # the isolate was replaced (heap limit) or failed: one by one instead
                stop = _run_one_by_one(isolate, limit, drain, items[i : i + group], results)
                went_on = group
            i += went_on
        else:
            stop = _run_one_by_one(isolate, limit, drain, items[i : i + 1], results)
            i += 1
        if stop:
            break
    return results


def _run_many(isolate: JsIsolate, limit: float, datas: list[str], results: list) -> tuple[int | None, bool]:
    """Several calls in one evaluation: (calls answered or None to go one by one, whether to stop)."""
    try:
        text = isolate.run(
            f"__sf.callMany({MANY_BUDGET * 1000:.0f})", limit + MANY_BUDGET, "[" + ",".join(datas) + "]"
        )
    except JsTimeout as exc:
        if isinstance(exc, JsStuck):
            raise
        done = isolate.run("__sf.takeDone(0)", SETUP_LIMIT)
        count = _many_count(done)[0]
        if count:
            results.append(["many", done, None, None])
        results.append(["timeout", f"Script execution timed out after {round(limit * 1000)}ms"])
        return count + 1, True
    except JsError:
        return None, False
    count, stop = _many_count(text)
    drained = None
    if stop == 2:
        try:
            drained = isolate.run("__sf.drain()", limit)
        except JsError as exc:
            results.append(["many", text, None, _failure(exc)])
            return count, True
    results.append(["many", text, drained if isinstance(drained, str) else None, None])
    return count, stop == 1


def _many_count(text: object) -> tuple[int, int]:
    match = _MANY_HEAD.match(text) if isinstance(text, str) else None
    if match is None:
        raise JsError(f"callMany answered {str(text)[:80]!r}")
    return int(match.group(1)), int(match.group(2))


def _run_one_by_one(isolate: JsIsolate, limit: float, drain: bool, items: list, results: list) -> bool:
    """Each item in an evaluation of its own; True when the run must stop there."""
    for code, data in items:
        try:
            text = isolate.run(str(code), limit, None if data is None else str(data))
        except JsError as exc:
            results.append(_failure(exc))
            return True
        if not isinstance(text, str):
            text = "[]"
        if text.startswith('[["need"'):
            results.append(["ok", text, None, None])
            return True
        drained, failure = None, None
        if drain or not text.endswith('["pending",0]]'):
            try:
                drained = isolate.run("__sf.drain()", limit)
            except JsError as exc:
                failure = _failure(exc)
        results.append(["ok", text, drained if isinstance(drained, str) else None, failure])
        if failure is not None:
            return True
    return False


def _failure(exc: JsError) -> list:
    if isinstance(exc, JsStuck):
        raise exc
    kind = (
        "timeout" if isinstance(exc, JsTimeout) else "memory" if isinstance(exc, JsMemoryLimit) else "error"
    )
    return [kind, str(exc)]
