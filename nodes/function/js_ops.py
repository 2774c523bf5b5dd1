"""The JavaScript function node's operations: what a script did (send, done, context writes, status, timers),
applied on the Python side after its evaluation."""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.api import NodeError, ValidationError

_OF_A_CALL = frozenset(("send", "return", "throw", "done", "state"))
"""Operations that name the call (the message) they belong to."""


class Operations:
    """Part of JsFunctionNode: applying the operations an evaluation gave back."""

    def _apply(self, ops: list) -> None:
        calls = self._calls
        for op in ops:
            if op[0] in _OF_A_CALL and op[1] != self._current and op[1] in calls:
                # another message's call, still open (its promise settled, a timer it armed ran): its own cause
                with self.sending_for(calls[op[1]]):
                    self._apply_one(op)
            else:
                self._apply_one(op)

    def _apply_one(self, op: list) -> None:
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
