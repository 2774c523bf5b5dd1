"""What is known of a JavaScript function body without running it: V8's syntax check (parse only, in a small
isolate of its own), external modules refused, and the features that work with a difference here (for the
import report)."""

from __future__ import annotations

import atexit
import json
import re
import threading
from typing import Any

from sofiaflow.nodes.function.js_isolate import JsError, JsIsolate

ASYNC_HINT = re.compile(r"\bawait\b|\bPromise\b|\.then\s*\(|\basync\b")
"""A body that may finish later than its call (its evaluation is drained)."""

_checker: JsIsolate | None = None
_checker_lock = threading.Lock()


def _close_checker() -> None:
    global _checker
    with _checker_lock:
        checker, _checker = _checker, None
    if checker is not None:
        checker.close()


def syntax_problem(kind: str, source: str, is_async: bool = True) -> str | None:
    """V8's syntax error for a body (with its line), or None. The code is parsed, never run."""
    global _checker
    with _checker_lock:
        if _checker is None:
            # built on a thread without an event loop, so it gets its own loop thread and can be
            # used from any loop (deploys) or none (the command line)
            made: list[JsIsolate] = []
            maker = threading.Thread(target=lambda: made.append(JsIsolate(16 * 1024 * 1024)))
            maker.start()
            maker.join()
            _checker = made[0]
            _checker.run(_SINGLE_FUNCTION_CHECK, 2.0)
            # closed while the interpreter still runs: left to the final collection at exit, mini-racer's
            # context teardown could wait forever (the command line hung after its report)
            atexit.register(_close_checker)
        head = "async function" if is_async else "function"
        try:
            # parsed whole before anything runs, and the first statement ends the script: a body that
            # closes its function early ("}); evil(); (function(){") cannot get any of its code run here
            _checker.run(f"throw {_PARSED!r}; void ({head}(msg, node){{\n{source}\n}});", 2.0)
        except JsError as exc:
            if _PARSED not in str(exc):
                return str(exc).replace("(line ", f"({kind}:line ")
        try:
            # the body alone must be one function body (Function() compiles it without running it)
            _checker.run("__sfSingleFunction()", 2.0, json.dumps([is_async, source]))
        except JsError:
            return "SyntaxError: the code closes the function it is written in (unbalanced braces or parentheses)"
    return None


_PARSED = "__sofiaflow_parsed__"
_SINGLE_FUNCTION_CHECK = """function __sfSingleFunction() {
  var a = JSON.parse(__sfIn);
  var Make = a[0] ? Object.getPrototypeOf(async function () {}).constructor : Function;
  Make("msg, node", a[1]);
  return null;
}"""


def libs_problem(config: Any) -> str | None:
    """External modules (the Setup tab's `libs`) are not supported: the refusal, or None."""
    modules = [lib.get("module") or lib.get("var") for lib in config.libs or [] if isinstance(lib, dict)]
    modules = [m for m in modules if m]
    if modules:
        return (
            f"libs: external modules are not supported ({', '.join(map(str, modules))}); "
            "remove them from the Setup tab"
        )
    return None


def js_caveats(config: Any) -> list[str]:
    """Features of a JavaScript body that work with a difference here (empty when none are used)."""
    source = "\n".join((config.func or "", config.initialize or "", config.finalize or ""))
    caveats = []
    missing = sorted(set(re.findall(r"\b(require|process|util|URLSearchParams|URL|promisify)\b", source)))
    if missing:
        caveats.append(
            f"uses {', '.join(missing)}: not available in the isolate (ReferenceError when reached)"
        )
    if re.search(r"\bBuffer\s*\.\s*(?!from\b|isBuffer\b|alloc\b|concat\b)\w+", source):
        caveats.append("Buffer here has from/isBuffer/alloc/concat and toString only")
    dynamic = re.search(r"\b(context|flow|global)\s*\.\s*(get|keys)\s*\(\s*[^'\"`)\s]", source)
    if dynamic:
        caveats.append("reads context keys computed at run time: the first call with a new key runs twice")
    if dynamic and ASYNC_HINT.search(source):
        caveats.append(
            "after an await, context keys computed at run time that were not read before are unavailable"
        )
    if re.search(r"\bnode\s*\.\s*on\s*\(", source):
        caveats.append("node.on('close') handlers are not called; use the Finalize tab")
    if re.search(r"\bnew\s+Date\b", source):
        caveats.append("Date values put on messages leave the script as ISO strings")
    return caveats
