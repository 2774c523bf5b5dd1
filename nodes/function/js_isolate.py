"""One V8 isolate (mini-racer) with a time limit per evaluation and a heap limit.

`JsIsolate.run(code, limit)` evaluates `code` and returns its value. The isolate runs on its own
engine thread; the caller waits at most `limit` seconds, then V8 is told to terminate the script
(`JsTimeout`). A script that outgrows the heap limit is stopped too (`JsMemoryLimit`) and the
isolate is replaced, since V8 refuses further work in an isolate that hit its hard limit.

Evaluations must come from one thread: the asyncio loop the isolate was created on, or any
thread when it was created outside a loop (then mini-racer's own loop thread serves it).
"""

from __future__ import annotations

import queue
import re
from collections.abc import Callable

from py_mini_racer import MiniRacer
from py_mini_racer._exc import JSEvalException, JSOOMException, JSParseException, JSTerminatedException

from sofiaflow.runtime.api import NodeError

_RESULT_WAIT_AFTER_CANCEL = 5.0
_LOCATED = re.compile(r"^([^:\n]+):(\d+): (.*)$", re.M)


class JsError(NodeError):
    """A script failed (syntax or run-time error); the message is V8's."""


class JsTimeout(JsError):
    """A script ran past its time limit and was terminated."""


class JsStuck(JsTimeout):
    """A terminated script did not stop (some builtins cannot be interrupted): the isolate is unusable."""


class JsMemoryLimit(JsError):
    """A script outgrew the isolate's heap limit and was terminated."""


class JsIsolate:
    """A V8 isolate with limits; see the module docstring."""

    def __init__(
        self,
        memory_limit: int,
        on_reset: Callable[[JsIsolate], None] | None = None,
        settle_wait: float = _RESULT_WAIT_AFTER_CANCEL,
    ) -> None:
        self.memory_limit = memory_limit
        self.settle_wait = settle_wait
        self._on_reset = on_reset
        self._racer: MiniRacer | None = None
        self._open()

    def _open(self) -> None:
        self._global = None
        self._racer = MiniRacer()
        if self.memory_limit > 0:
            self._racer.set_hard_memory_limit(self.memory_limit)

    def run(self, code: str, limit: float, data: str | None = None) -> object:
        """Evaluate `code`; raise JsTimeout after `limit` seconds (0 = no limit), JsError on errors.

        `data`, when given, is first stored in the global `__sfIn` (a string): code that does not
        change from call to call is compiled once by V8, which is much faster than new source text.
        """
        racer = self._racer
        if racer is None:
            raise JsError("the JavaScript isolate is closed")
        ctx = racer._ctx
        if data is not None:
            if self._global is None:
                self._global = racer.eval("globalThis")
            ctx.set_object_item(self._global, "__sfIn", data)
        if not ctx.are_we_running_on_the_mini_racer_event_loop():
            return self._run_via_loop(code, limit)
        # Same steps as mini-racer's synchronous eval, with a deadline and a cancel on expiry.
        handle = ctx._python_to_value_handle(code)
        task = ctx._dll.mr_eval(ctx._ctx, handle.raw, 0)
        results = ctx._non_cancelable_mr_task_results_queue
        timed_out = False
        try:
            value = results.get(timeout=limit) if limit > 0 else results.get()
        except queue.Empty:
            timed_out = True
            ctx._dll.mr_cancel_task(ctx._ctx, task)
            try:
                value = results.get(timeout=self.settle_wait)
            except queue.Empty:
                self._racer = None  # its next result would answer the wrong evaluation: never use it again
                raise JsStuck(
                    f"a script past its time limit of {round(limit * 1000)}ms could not be stopped"
                ) from None
        try:
            return ctx._value_handle_to_python(value)
        except JSOOMException:
            self.reset()
            raise JsMemoryLimit(
                f"JavaScript heap limit of {self.memory_limit // (1024 * 1024)} MB reached"
            ) from None
        except JSTerminatedException:
            if timed_out:
                raise JsTimeout(f"Script execution timed out after {round(limit * 1000)}ms") from None
            raise JsError("execution terminated") from None
        except JSParseException as exc:
            raise JsError(_first_line(str(exc))) from None
        except JSEvalException as exc:
            raise JsError(_first_line(str(exc))) from None

    def _run_via_loop(self, code: str, limit: float) -> object:
        try:
            return self._racer.eval(code, timeout_sec=limit or None)
        except TimeoutError:
            raise JsTimeout(f"Script execution timed out after {round(limit * 1000)}ms") from None
        except JSOOMException:
            self.reset()
            raise JsMemoryLimit(
                f"JavaScript heap limit of {self.memory_limit // (1024 * 1024)} MB reached"
            ) from None
        except JSEvalException as exc:
            raise JsError(_first_line(str(exc))) from None

    def reset(self) -> None:
        """Replace the isolate with a fresh one (its state is lost) and tell the owner to reload."""
        self.close()
        self._open()
        if self._on_reset is not None:
            self._on_reset(self)

    def heap_used(self) -> int:
        """Bytes of V8 heap in use."""
        return int(self._racer.heap_stats()["used_heap_size"]) if self._racer else 0

    def close(self) -> None:
        self._global = None
        racer, self._racer = self._racer, None
        if racer is not None:
            racer.close()


def _first_line(text: str) -> str:
    """V8's error text without the source excerpt and caret lines mini-racer appends.

    A located error (`<anonymous>:3: SyntaxError: ...`) keeps its place as `... (line 2)`, counted
    from the first line of the node's code (the wrapper adds one line before it).
    """
    located = _LOCATED.match(text)
    if located:
        return f"{located.group(3).strip()} (line {int(located.group(2)) - 1})"
    lines = [line for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line and ":" in line:
            return line.strip()
    return lines[0].strip() if lines else text
