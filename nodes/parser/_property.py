"""The msg property a parser node reads and writes (`payload`, `data.raw`, `msg.x`), as Node-RED's
getMessageProperty / setMessageProperty address it."""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.api import Msg, NodeError, props

MISSING: Any = object()


class MsgProperty:
    """A parsed property path; `get` answers MISSING when the message has none."""

    def __init__(self, expr: str, field: str = "property") -> None:
        expr = expr or "payload"
        if expr.startswith("msg."):
            expr = expr[4:]
        try:
            self._parts = props.parse_path(expr)
        except props.PropertyPathError as exc:
            raise NodeError(f"{field}: {exc}") from None
        self.expr = expr

    def get(self, msg: Msg) -> Any:
        return props.get_parts(msg, self._parts, MISSING)

    def set(self, msg: Msg, value: Any) -> None:
        props.set_path(msg, self.expr, value)
