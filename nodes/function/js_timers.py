"""The JavaScript function node's timers: setTimeout/setInterval armed on the Python side, each callback
evaluated under the time limit; timers that run past it, or take over half of the time, are cleared. A callback
runs as caused by the message whose handling armed the timer (its source waits for what it sends while that
message is in progress, as for a promise of the message)."""

from __future__ import annotations

import contextvars
import time

from sofiaflow.nodes.function.js_host import ScriptStopped
from sofiaflow.runtime.api import NodeError


class Timers:
    """Part of JsFunctionNode: the script's timers."""

    def _cancel_timers(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self._intervals.clear()

    def _arm(self, timer_id: int, seconds: float, repeat: bool) -> None:
        if self._closing:
            return
        if repeat:
            self._intervals.add(timer_id)
        # the callback runs in the context the timer was armed in, whatever the clock: what it sends is caused by
        # the message that armed it (its source waits for that while the message is still in progress)
        context = contextvars.copy_context()
        self._timers[timer_id] = self.call_later(
            seconds, lambda: context.run(self._fire, timer_id, seconds, repeat)
        )

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
