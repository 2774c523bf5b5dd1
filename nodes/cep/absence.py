"""absence: alarm when a key sends nothing for `timeout` seconds (a device gone silent, a heartbeat lost).

Keys are learned from traffic (`learn`) and/or given in `keys` (watched from the node's start). A key's last
sign of life is the runtime clock at arrival, or with a `timeProperty` the latest event time it sent (epoch ms
or ISO text; an older, out-of-order message does not move it back). When the clock reaches last + timeout the
first output gets one alarm: {topic: key, payload: {key, state: "silent", lastSeen (ms), since (ms)}}. The next
message that brings the key back sends a recovery on the second output (with `recovery`): {key, state:
"recovered", lastSeen, silentFor (s)}.

State lives on the instance (an unchanged node keeps it across a `nodes` redeploy of other nodes) and is
bounded by `maxKeys`: learning a key past it forgets the least recently seen learned key, with a warning, and
counts it in the status.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from sofiaflow.nodes.cep.event_keys import key_getter, time_getter
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRBool, NRFloat, NRInt, new_message

_JUST_AFTER = 1e-6
"""Seconds: the soonest a timer looks at a key again."""


class AbsenceConfig(NodeConfig):
    key: str = Field(
        "topic",
        title="Per",
        description="What separates the devices: a msg property or a JSONata expression.",
    )
    keyType: str = "msg"
    timeout: NRFloat = Field(
        600.0, title="Silent for (seconds)", description="Alert when a key sends nothing for this long."
    )
    keys: list[str] = Field(
        [],
        title="Expected keys",
        description="Keys watched from the start, before they send anything.",
        json_schema_extra={"x-widget": "strings"},
    )
    learn: NRBool = Field(True, title="Learn new keys from the messages")
    recovery: NRBool = Field(True, title="Send a recovery message when a silent key speaks again")
    timeProperty: str = Field("", title="Event time property", description="Blank: arrival time.")
    maxKeys: NRInt = Field(10_000, title="Max keys")


@dataclass
class _Watch:
    last: float
    given: bool = False
    silent: bool = False
    silent_last: float = 0.0
    timer: Any = None


class AbsenceNode(Node[AbsenceConfig]):
    type = "absence"
    category = "cep"
    color = "#c7e9c0"
    outputs = 2
    Config = AbsenceConfig
    help = (
        "Sends an alarm (output 1) when a key sends no message for `timeout` seconds, and a recovery (output 2, "
        "with `recovery`) when it comes back. Keys come from traffic (`learn`) and/or the `keys` list (watched "
        "from the start). The key is `key` (a msg property, or JSONata with keyType 'jsonata'); the last sign of "
        "life is the arrival time, or the latest `timeProperty` time (epoch ms or ISO text). Alarm payload: "
        "{key, state: 'silent', lastSeen, since}; recovery: {key, state: 'recovered', lastSeen, silentFor}. "
        "At most `maxKeys` keys (the least recent learned key is forgotten, with a warning)."
    )

    def setup(self) -> None:
        cfg = self.config
        if cfg.timeout is None or not cfg.timeout > 0:
            raise NodeError(f"timeout: expected a number of seconds above 0, got {cfg.timeout!r}")
        if cfg.maxKeys is None or cfg.maxKeys < 1:
            raise NodeError(f"maxKeys: expected a whole number of at least 1, got {cfg.maxKeys!r}")
        if len(cfg.keys) > cfg.maxKeys:
            raise NodeError(f"keys: {len(cfg.keys)} given keys are more than maxKeys={cfg.maxKeys}")
        if not cfg.learn and not cfg.keys:
            raise NodeError("keys: give the keys to watch, or set learn to learn them from traffic")
        self._timeout = float(cfg.timeout)
        self._max_keys = int(cfg.maxKeys)
        self._key = key_getter(self, cfg.key, cfg.keyType)
        self._time = time_getter(self, cfg.timeProperty)
        self._watch: OrderedDict[str, _Watch] = OrderedDict()
        self._started = False
        self.dropped_keys = 0
        self.alarms = 0

    async def start(self) -> None:
        if self._started:  # an unchanged node restarted in place keeps its watches
            return
        self._started = True
        now = self.now()
        for key in self.config.keys:
            if key not in self._watch:
                self._watch[key] = _Watch(last=now, given=True)
                self._arm(key)

    # ----- input ------------------------------------------------------------------------------------
    def on_input(self, msg: Msg) -> None:
        key = self._key(msg)
        if key is None:
            raise NodeError(f"key: the message has no {self.config.key!r}")
        watch = self._watch.get(key)
        if watch is None:
            if not self.config.learn:
                return
            ts = self._time(msg)
            watch = self._learn(key, ts)
        else:
            ts = self._time(msg)
            self._watch.move_to_end(key)
            if ts <= watch.last:
                return  # out of order: nothing newer about this key
            watch.last = ts
        if watch.silent and self.now() < watch.last + self._timeout:
            watch.silent = False
            if self.config.recovery:
                self.send([None, self._report(key, watch, "recovered")])
            self._show()
        self._arm(key)

    def _learn(self, key: str, ts: float) -> _Watch:
        if len(self._watch) >= self._max_keys:
            victim = next((k for k, w in self._watch.items() if not w.given), None)
            if victim is not None:
                dropped = self._watch.pop(victim)
                if dropped.timer is not None:
                    dropped.timer.cancel()
                self.dropped_keys += 1
                if self.dropped_keys == 1 or self.dropped_keys % 1000 == 0:
                    self.warn(f"more than maxKeys={self._max_keys} keys: the least recently seen forgotten")
                self._show()
        watch = self._watch[key] = _Watch(last=ts)
        return watch

    # ----- timers -----------------------------------------------------------------------------------
    def _arm(self, key: str) -> None:
        """Make sure a timer will look at `key` by its deadline (one timer per key at most)."""
        watch = self._watch[key]
        if watch.timer is not None or watch.silent:
            return
        delay = watch.last + self._timeout - self.now()
        # a deadline already reached (an event time older than the clock) is looked at just after this instant,
        # so messages arriving at the same instant still count as signs of life
        watch.timer = self.call_later(max(delay, _JUST_AFTER), lambda: self._due(key, watch))

    def _due(self, key: str, watch: _Watch) -> None:
        watch.timer = None
        if self._watch.get(key) is not watch or watch.silent:
            return
        if self.now() < watch.last + self._timeout:
            self._arm(key)  # it spoke since the timer was set
            return
        watch.silent = True
        watch.silent_last = watch.last
        self.alarms += 1
        self.send([self._report(key, watch, "silent"), None])
        self._show()

    def _report(self, key: str, watch: _Watch, state: str) -> Msg:
        payload: dict[str, Any] = {"key": key, "state": state, "lastSeen": _ms(watch.last)}
        if state == "silent":
            payload["since"] = _ms(watch.last + self._timeout)
        else:
            payload["silentFor"] = round(self.now() - watch.silent_last, 3)
        msg = new_message()
        msg["topic"] = key
        msg["payload"] = payload
        return msg

    def _show(self) -> None:
        silent = sum(1 for w in self._watch.values() if w.silent)
        text = f"{silent} silent of {len(self._watch)}"
        if self.dropped_keys:
            text += f", {self.dropped_keys} keys dropped"
        self.status("red" if silent else ("yellow" if self.dropped_keys else "green"), "dot", text)

    async def close(self, removed: bool) -> None:
        for watch in self._watch.values():
            if watch.timer is not None:
                watch.timer.cancel()
                watch.timer = None


def _ms(ts: float) -> float:
    value = ts * 1000.0
    return int(value) if value.is_integer() else value
