"""range: map a number linearly from an input range to an output range (Node-RED 16-range.js)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_number, js_string
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, props

_ACTIONS = frozenset(("scale", "clamp", "roll", "drop"))
_MISSING = object()


class RangeConfig(NodeConfig):
    minin: float | int | str | None = Field("", title="Input from", json_schema_extra={"x-widget": "text"})
    maxin: float | int | str | None = Field("", title="Input to", json_schema_extra={"x-widget": "text"})
    minout: float | int | str | None = Field("", title="Target from", json_schema_extra={"x-widget": "text"})
    maxout: float | int | str | None = Field("", title="Target to", json_schema_extra={"x-widget": "text"})
    action: str = Field(
        "scale",
        title="Action",
        json_schema_extra={
            "x-choices": [
                ["scale", "scale the message property"],
                ["clamp", "scale and limit to the target range"],
                ["roll", "scale and wrap within the target range"],
                ["drop", "scale, but drop if outside the input range"],
            ]
        },
    )
    round: NRBool = Field(False, title="Round the result to the nearest integer")
    property: str = Field("payload", title="Property", description="The msg property scaled (msg.payload).")


def _js_round(value: float) -> int | float:
    """Math.round: halves go up (towards +Infinity)."""
    if math.isnan(value) or math.isinf(value):
        return value
    return math.floor(value + 0.5)


def _plain(value: float) -> int | float:
    """Whole results as ints (JavaScript has one number type; 5 prints as 5, not 5.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


class RangeNode(Node[RangeConfig]):
    type = "range"
    category = "function"
    color = "#e2d96e"
    Config = RangeConfig
    help = (
        "Maps a number from an input range to an output range. `clamp` limits it to the input range first, "
        "`roll` wraps it round, `drop` discards messages outside the input range."
    )

    def setup(self) -> None:
        cfg = self.config
        bounds = {}
        for name in ("minin", "maxin", "minout", "maxout"):
            raw = getattr(cfg, name)
            if raw is None or (isinstance(raw, str) and raw.strip() == ""):
                raise NodeError(f"{name} is required")
            number = js_number(raw)
            if isinstance(number, float) and not math.isfinite(number):
                raise NodeError(f"{name}: {raw!r} is not a number")
            bounds[name] = number
        if cfg.action not in _ACTIONS:
            raise NodeError(f"action: {cfg.action!r} is not one of scale, clamp, roll, drop")
        minin, maxin = bounds["minin"], bounds["maxin"]
        if minin == maxin:
            raise NodeError("minin and maxin must differ (the input range is empty)")
        try:
            parts = props.parse_path(cfg.property or "payload")
        except props.PropertyPathError as exc:
            raise NodeError(f"property: {exc}") from None
        self._parts = parts
        self._expr = cfg.property or "payload"
        self._simple = parts[0] if len(parts) == 1 and isinstance(parts[0], str) else None
        self._map = self._compile(
            cfg.action, minin, maxin, bounds["minout"], bounds["maxout"], bool(cfg.round)
        )

    @staticmethod
    def _compile(
        action: str, minin: float, maxin: float, minout: float, maxout: float, rounding: bool
    ) -> Any:
        span_in = maxin - minin
        span_out = maxout - minout

        def scale(n: float) -> Any:
            value = (n - minin) / span_in * span_out + minout  # Node-RED's order of operations
            return _js_round(value) if rounding else _plain(value)

        if action == "scale":
            return scale
        if action == "clamp":

            def clamp(n: float) -> Any:
                if n < minin:  # as Node-RED: minin first, then maxin
                    n = minin
                if n > maxin:
                    n = maxin
                return scale(n)

            return clamp
        if action == "roll":
            return lambda n: scale(math.fmod(math.fmod(n - minin, span_in) + span_in, span_in) + minin)

        def drop(n: float) -> Any:
            if n < minin or n > maxin:
                return _MISSING
            return scale(n)

        return drop

    def on_input(self, msg: Msg) -> None:
        key = self._simple
        if key is not None:
            value = msg.get(key, _MISSING)
        else:
            value = props.get_parts(msg, self._parts, _MISSING)
        if value is _MISSING:
            self.send(msg)  # no value: pass the message on untouched
            return
        number = js_number(value)
        if isinstance(number, float) and math.isnan(number):
            # Node-RED 4.1 (16-range.js) only logs this and drops the message: no catch fires
            self.log(f"Payload is not a number: {js_string(value)}")
            return
        result = self._map(number)
        if result is _MISSING:
            return
        if key is not None:
            msg[key] = result
        else:
            props.set_path(msg, self._expr, result)
        self.send(msg)
