"""delay: hold each message for a while, or limit the rate of messages (Node-RED's core `delay` node).

Modes (`pauseType`), as Node-RED 4.1 runs them:

- `delay`: every message waits `timeout` `timeoutUnits`.
- `delayv`: every message waits `msg.delay` milliseconds (`timeout` when it has none).
- `random`: every message waits a random time between `randomFirst` and `randomLast`.
- `rate`: at most `rate` messages per `nbRateUnits` `rateUnits`, spread evenly: the first passes at
  once, later ones are queued (or with `drop`, dropped or sent to output 2 when `outputs` is 2).
- `queue`: one message per interval, round-robin over topics, keeping only the newest per topic.
- `timed`: the newest message of every topic, all together once per interval.
- `burst` (Node-RED 5.0): up to `rate` messages per period pass at once, later ones are dropped.

Control properties: `msg.reset` drops everything held (nothing is sent), `msg.flush` releases that
many held messages now (every one when it is not a number), `msg.toFront` queues first (rate mode),
`msg.rate` sets the interval in ms when `allowrate` is on.

The node's queue and timers are instance state, so an unchanged node keeps them across a
`nodes`-mode redeploy. `close()` cancels every timer.
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from collections.abc import Callable
from typing import Any

from pydantic import Field

from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, NRFloat, NRInt

_TIMEOUT_UNITS = {"milliseconds": 0.001, "seconds": 1.0, "minutes": 60.0, "hours": 3600.0, "days": 86400.0}
_RATE_UNITS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_MODES = ("delay", "delayv", "random", "rate", "queue", "timed", "burst")
_STATUS_DEBOUNCE = 0.5
_MIN_INTERVAL = 0.001
_FLOAT_PREFIX = re.compile(r"\s*([+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")


def js_parse_float(value: Any) -> float | None:
    """JavaScript's parseFloat(value), with None for NaN."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if value == value else None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    m = _FLOAT_PREFIX.match(str(value))
    if m is None:
        return None
    return float(m.group(1).replace("Infinity", "inf"))


def _has_content(msg: Msg, ignore: frozenset[str] = frozenset()) -> bool:
    """Whether `msg` carries more than internal (`_`-prefixed) properties and those in `ignore`."""
    for key in msg:
        if key not in ignore and not key.startswith("_"):
            return True
    return False


_FLUSH = frozenset(("flush",))
_TOPIC = frozenset(("topic",))


def _flush_count(flush: Any, available: int) -> int:
    """How many held messages `msg.flush` releases: a number limits it, anything else means all."""
    if isinstance(flush, (int, float)) and not isinstance(flush, bool):
        if flush != flush:  # NaN releases nothing, as Math.floor(NaN) in Node-RED
            return 0
        if flush < available:
            return max(math.floor(flush), 0)
    return available


def _topic_key(topic: Any) -> Any:
    """A dict key comparing like JavaScript's `===` for topics (True is not 1; objects by identity)."""
    if isinstance(topic, bool):
        return ("bool", topic)
    try:
        hash(topic)
    except TypeError:
        return ("object", id(topic))
    return topic


def _unit(value: str | None, table: dict[str, float], default: str, prop: str) -> float:
    if value is None or value == "":
        return table[default]
    if value not in table:
        raise NodeError(f"{prop}: unknown unit {value!r}; use one of {', '.join(table)}")
    return table[value]


class DelayConfig(NodeConfig):
    pauseType: str = Field(
        "delay",
        title="Action",
        json_schema_extra={
            "x-choices": [
                ["delay", "fixed delay"],
                ["random", "random delay"],
                ["delayv", "override delay with msg.delay"],
                ["rate", "rate limit all messages"],
                ["timed", "rate limit, send the last one per period"],
                ["queue", "rate limit, one per topic in turn"],
            ]
        },
    )
    timeout: NRFloat = Field(
        5.0, title="For", json_schema_extra={"x-show-if": {"pauseType": ["delay", "delayv"]}}
    )
    timeoutUnits: str | None = Field(
        "seconds",
        title="Units",
        json_schema_extra={
            "x-choices": [
                ["milliseconds", "milliseconds"],
                ["seconds", "seconds"],
                ["minutes", "minutes"],
                ["hours", "hours"],
                ["days", "days"],
            ],
            "x-show-if": {"pauseType": ["delay", "delayv"]},
        },
    )
    rate: NRFloat = Field(
        1.0,
        title="Rate (messages)",
        json_schema_extra={"x-show-if": {"pauseType": ["rate", "timed", "queue"]}},
    )
    nbRateUnits: NRFloat = Field(
        1.0,
        title="Per (number of)",
        json_schema_extra={"x-show-if": {"pauseType": ["rate", "timed", "queue"]}},
    )
    rateUnits: str | None = Field(
        "second",
        title="Per",
        json_schema_extra={
            "x-choices": [["second", "second"], ["minute", "minute"], ["hour", "hour"], ["day", "day"]],
            "x-show-if": {"pauseType": ["rate", "timed", "queue"]},
        },
    )
    randomFirst: NRFloat = Field(
        1.0, title="Between", json_schema_extra={"x-show-if": {"pauseType": "random"}}
    )
    randomLast: NRFloat = Field(5.0, title="And", json_schema_extra={"x-show-if": {"pauseType": "random"}})
    randomUnits: str | None = Field(
        "seconds",
        title="Units",
        json_schema_extra={
            "x-choices": [
                ["milliseconds", "milliseconds"],
                ["seconds", "seconds"],
                ["minutes", "minutes"],
                ["hours", "hours"],
                ["days", "days"],
            ],
            "x-show-if": {"pauseType": "random"},
        },
    )
    drop: NRBool = Field(
        False,
        title="Drop intermediate messages",
        json_schema_extra={"x-show-if": {"pauseType": ["rate", "timed", "queue"]}},
    )
    allowrate: NRBool = Field(
        False,
        title="Allow msg.rate to override the rate",
        json_schema_extra={"x-show-if": {"pauseType": "rate"}},
    )
    outputs: NRInt = Field(1, title="Outputs", json_schema_extra={"x-widget": "hidden"})


class DelayNode(Node[DelayConfig]):
    type = "delay"
    category = "function"
    color = "#e6e0f8"
    auto_done = False
    Config = DelayConfig
    help = (
        "Delays each message (fixed, random, or by msg.delay), or limits the rate of messages, "
        "queueing or dropping the excess (optionally to a second output), per topic if asked. "
        "msg.reset clears what it holds, msg.flush releases it now."
    )

    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        return 2 if getattr(config, "outputs", 1) == 2 else 1

    # ----- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        c = self.config
        mode = c.pauseType
        if mode not in _MODES:
            raise NodeError(f"pauseType: unknown mode {mode!r}; use one of {', '.join(_MODES)}")
        if c.outputs not in (None, 1, 2):
            raise NodeError(f"outputs: must be 1 or 2, not {c.outputs!r}")
        self._mode = mode
        self._two = c.outputs == 2
        self._drop = bool(c.drop)
        self._allowrate = bool(c.allowrate)

        # state (kept on the instance: an unchanged node keeps it across a `nodes` redeploy)
        self._held: dict[int, tuple[Any, Msg]] = {}  # delay/delayv/random: arrival order
        self._seq = 0
        self._buffer: deque[Msg] = deque()  # rate mode queue
        self._topics: dict[Any, Msg] = {}  # queue/timed: newest msg per topic, in round-robin order
        self._interval: Any = None  # handle of the next interval tick, None when stopped
        self._tick: Callable[[], None] = self._rate_tick
        self._last_sent: float | None = None
        self._status_timer: Any = None
        self._burst_timers: dict[int, Any] = {}
        self._inflight = 0

        timeout_unit = _unit(c.timeoutUnits, _TIMEOUT_UNITS, "seconds", "timeoutUnits")
        if mode in ("delay", "delayv"):
            if c.timeout is None or c.timeout < 0 or math.isnan(c.timeout):
                raise NodeError(f"timeout: the delay must be a number >= 0, not {c.timeout!r}")
            self._timeout = c.timeout * timeout_unit
            # Node-RED shows the count of held messages only for delays over a second
            self._show_count = mode == "delayv" or self._timeout > 1.0
            self._handle = self._on_delay if mode == "delay" else self._on_delayv
        elif mode == "random":
            unit = _unit(c.randomUnits, _TIMEOUT_UNITS, "seconds", "randomUnits")
            for prop in ("randomFirst", "randomLast"):
                value = getattr(c, prop)
                if value is None or value < 0 or math.isnan(value):
                    raise NodeError(f"{prop}: must be a number >= 0, not {value!r}")
            self._random_first = c.randomFirst * unit  # type: ignore[operator]
            self._random_diff = c.randomLast * unit - self._random_first  # type: ignore[operator]
            # (Node-RED tests the configured fixed timeout here, not the random range)
            self._show_count = (c.timeout or 0) * timeout_unit >= 1.0
            self._handle = self._on_random
        else:
            rate = c.rate
            if rate is None or not rate > 0 or math.isinf(rate):
                raise NodeError(f"rate: must be a number > 0, not {rate!r}")
            unit = _unit(c.rateUnits, _RATE_UNITS, "second", "rateUnits")
            nb = c.nbRateUnits if c.nbRateUnits is not None and c.nbRateUnits > 0 else 1.0
            self._fixed_rate = unit / rate * nb  # seconds between two messages
            self._rate = self._fixed_rate
            self._burst = rate
            self._period = unit * nb
            if mode == "rate":
                self._handle = self._on_rate_drop if self._drop else self._on_rate_queue
            elif mode == "burst":
                self._handle = self._on_burst
            else:
                self._tick = self._queue_tick if mode == "queue" else self._timed_tick
                self._handle = self._on_topic_queue

    async def start(self) -> None:
        if self._mode in ("queue", "timed") and self._interval is None:
            self._start_interval()
        elif self._mode == "burst" and self._inflight == 0:
            self.status("green", "ring", "")

    def on_input(self, msg: Msg) -> None:
        self._handle(msg)

    async def close(self, removed: bool) -> None:
        self._stop_interval()
        if self._status_timer is not None:
            self._status_timer.cancel()
            self._status_timer = None
        for handle in self._burst_timers.values():
            handle.cancel()
        self._burst_timers.clear()
        self._inflight = 0
        held = [m for _, m in self._held.values()]
        for handle, _ in self._held.values():
            handle.cancel()
        self._held.clear()
        held.extend(self._buffer)
        self._buffer.clear()
        held.extend(self._topics.values())
        self._topics.clear()
        for m in held:
            self.done(m)
        self.status()

    # ----- helpers ------------------------------------------------------------------------------
    def _set_status(self, fill: str, shape: str, text: str) -> None:
        st = {"fill": fill, "shape": shape, "text": text}
        if st != self.last_status:
            self.status(st)

    def _count_status(self) -> None:
        self._set_status("blue", "dot", str(len(self._held)))

    def _report_depth(self) -> None:
        """Show the queue length, at most every half second (as Node-RED's reportDepth)."""
        if self._status_timer is None:
            self._status_timer = self.call_later(_STATUS_DEBOUNCE, self._show_depth)

    def _show_depth(self) -> None:
        self._status_timer = None
        self._set_status("blue", "dot", str(len(self._buffer) + len(self._topics)))

    def _start_interval(self) -> None:
        if self._interval is not None:
            self._interval.cancel()
        self._interval = self.call_later(self._rate, self._tick)

    def _stop_interval(self) -> None:
        if self._interval is not None:
            self._interval.cancel()
            self._interval = None

    def _msg_rate(self, msg: Msg) -> float | None:
        """With `allowrate`, the interval (s) that `msg.rate` (ms) asks for, else None."""
        if not self._allowrate or "rate" not in msg:
            return None
        value = js_parse_float(msg["rate"])
        if value is None:
            return None
        return max(value / 1000.0, _MIN_INTERVAL)

    def _release(self, msg: Msg) -> None:
        self.send(msg)
        self.done(msg)

    # ----- delay, delayv, random ----------------------------------------------------------------
    def _on_delay(self, msg: Msg) -> None:
        self._hold(msg, self._timeout)

    def _on_delayv(self, msg: Msg) -> None:
        wait = self._timeout
        if "delay" in msg:
            value = js_parse_float(msg["delay"])
            if value is not None:
                wait = value / 1000.0
        self._hold(msg, max(wait, 0.0))

    def _on_random(self, msg: Msg) -> None:
        self._hold(msg, max(self._random_first + self._random_diff * random.random(), 0.0))

    def _hold(self, msg: Msg, wait: float) -> None:
        flush = "flush" in msg
        pure_flush = flush and not _has_content(msg, _FLUSH)
        if not pure_flush:
            self._seq += 1
            key = self._seq
            self._held[key] = (self.call_later(wait, lambda: self._held_due(key)), msg)
        if "reset" in msg:
            for handle, m in self._held.values():
                handle.cancel()
                self.done(m)
            self._held.clear()
            self._set_status("blue", "ring", "0")
        elif flush:
            for _ in range(_flush_count(msg["flush"], len(self._held))):
                handle, m = self._held.pop(next(iter(self._held)))
                handle.cancel()
                self._release(m)
            self._count_status()
            if pure_flush:
                self.done(msg)
        elif self._show_count:
            self._count_status()

    def _held_due(self, key: int) -> None:
        entry = self._held.pop(key, None)
        if entry is None:
            return
        if self._show_count:
            self._count_status()
        self._release(entry[1])

    # ----- rate limit ---------------------------------------------------------------------------
    def _on_rate_queue(self, msg: Msg) -> None:
        has_flush = "flush" in msg
        flush = msg.pop("flush", None)
        has_reset = "reset" in msg
        if has_reset and not has_flush:
            self._stop_interval()
            self._last_sent = None
            self._rate_reset()
            self.done(msg)
            return
        taken = False
        if _has_content(msg):
            taken = True
            if has_reset:
                # reset + flush: the message joins the queue, the flush below releases it
                self._enqueue(msg)
                if self._interval is None:
                    self._start_interval()
            elif self._interval is not None:  # limiting: queue it
                new_rate = self._msg_rate(msg)
                if new_rate is not None and new_rate != self._rate:
                    self._rate = new_rate
                    self._start_interval()
                self._enqueue(msg)
                self._report_depth()
            else:  # idle: pass it at once and start the interval
                new_rate = self._msg_rate(msg)
                if new_rate is not None:
                    self._rate = new_rate
                self._release(msg)
                self._report_depth()
                self._start_interval()
        if has_flush:
            count = _flush_count(flush, len(self._buffer))
            if count == 0:
                self._stop_interval()
            else:
                for _ in range(count):
                    m = self._buffer.popleft()
                    m.pop("reset", None)
                    if _has_content(m):
                        self.send(m)
                    self.done(m)
                self._start_interval()
            self._set_status("blue", "dot", str(len(self._buffer)))
        if has_reset:
            self._rate_reset()
        if not taken:
            self.done(msg)

    def _enqueue(self, msg: Msg) -> None:
        if msg.get("toFront") is True:
            self._buffer.appendleft(msg)
        else:
            self._buffer.append(msg)

    def _rate_reset(self) -> None:
        for m in self._buffer:
            self.done(m)
        self._buffer.clear()
        self._rate = self._fixed_rate
        self._set_status("blue", "ring", "0")

    def _rate_tick(self) -> None:
        if not self._buffer:  # nothing left: stop until the next message (the depth did not change)
            self._interval = None
            return
        self._interval = self.call_later(self._rate, self._rate_tick)
        m = self._buffer.popleft()
        if _has_content(m):
            self.send(m)
        self.done(m)
        self._report_depth()

    def _on_rate_drop(self, msg: Msg) -> None:
        if "reset" in msg:
            if "flush" not in msg:
                self._stop_interval()
                self._last_sent = None
            self._rate = self._fixed_rate
            self._set_status("blue", "ring", "0")
            self.done(msg)
            return
        new_rate = self._msg_rate(msg)
        if new_rate is not None:
            self._rate = new_rate
        now = self.now()
        if self._last_sent is None or now - self._last_sent > self._rate:
            self._last_sent = now
            self.send(msg)
        elif self._two:
            self.send([None, msg])
        self.done(msg)

    # ----- burst (Node-RED 5.0) -------------------------------------------------------------------
    def _on_burst(self, msg: Msg) -> None:
        if "reset" in msg:
            for handle in self._burst_timers.values():
                handle.cancel()
            self._burst_timers.clear()
            self._inflight = 0
            self._set_status("green", "ring", "")
            self.done(msg)
            return
        if self._inflight < self._burst:
            self._inflight += 1
            self.send(msg)
            self._seq += 1
            key = self._seq
            self._burst_timers[key] = self.call_later(self._period, lambda: self._burst_free(key))
        else:
            if self._two:
                self.send([None, msg])
            self._set_status("red", "dot", "")
        self.done(msg)

    def _burst_free(self, key: int) -> None:
        self._burst_timers.pop(key, None)
        if self._inflight >= self._burst:
            self._set_status("green", "ring", "")
        self._inflight = max(self._inflight - 1, 0)

    # ----- per-topic queue / timed ----------------------------------------------------------------
    def _on_topic_queue(self, msg: Msg) -> None:
        new_rate = self._msg_rate(msg)
        if new_rate is not None and new_rate != self._rate:
            self._rate = new_rate
            self._start_interval()
        if "topic" not in msg:
            msg["topic"] = "_none_"
        key = _topic_key(msg["topic"])
        topics = self._topics
        old = topics.get(key)
        topics[key] = msg  # a known topic keeps its place in the round
        if old is not None:
            if self._two:
                self.send([None, old])
            self.done(old)
        else:
            self._report_depth()
        if "flush" in msg:
            for _ in range(_flush_count(msg["flush"], len(topics))):
                m = topics.pop(next(iter(topics)))
                m.pop("flush", None)
                m.pop("reset", None)
                if _has_content(m, _TOPIC):
                    self.send(m)
                self.done(m)
            self.status()
        if "reset" in msg:
            for m in topics.values():
                self.done(m)
            topics.clear()
            if self._rate != self._fixed_rate:
                self._rate = self._fixed_rate
                self._start_interval()
            self.status({"text": "reset"})

    def _queue_tick(self) -> None:
        self._interval = self.call_later(self._rate, self._queue_tick)
        if self._topics:
            topics = self._topics
            self._release(topics.pop(next(iter(topics))))
            self._report_depth()

    def _timed_tick(self) -> None:
        self._interval = self.call_later(self._rate, self._timed_tick)
        if self._topics:
            batch = list(self._topics.values())
            self._topics.clear()
            for m in batch:
                self._release(m)
            self._report_depth()
