"""MQTT load for the cluster tests and the cluster benchmark: simulated devices publishing numbered readings (QoS 1)
on one paho connection, a consumer recording what comes back, and the count of what came back against what went.

Reading n is device `d<n % devices>`'s sequence number `n // devices` (`reading`): every device's readings are
numbered 0, 1, 2, ... in the order they are published. Devices publish a fixed number of readings (`send`, in a
steady stream) or at a rate in a thread of their own until stopped (`start` / `stop`), and record which readings
the broker acknowledged (PUBACK). Imported by the tests as `cluster_load`, and by tests/bench/cluster.py (a script
run from tests/bench, with tests/ on its path).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

DEVICES = 200
"""Simulated devices unless told otherwise."""
PAUSE_EVERY = 500
"""`send` pauses PAUSE_S after this many readings: a steady stream, not one burst."""
PAUSE_S = 0.05

Reading = tuple[str, int]
"""(device, sequence number of that device)."""


def reading(n: int, devices: int = DEVICES) -> Reading:
    """The n-th reading published: its device and that device's sequence number."""
    return f"d{n % devices:03d}", n // devices


def readings(total: int, start: int = 0, devices: int = DEVICES) -> set[Reading]:
    """Readings start .. start + total - 1."""
    return {reading(n, devices) for n in range(start, start + total)}


class Devices:
    """`devices` simulated devices on one paho connection (QoS 1) publishing JSON `{"device", "seq"}` on `topic`
    (a format string with `{device}`); `published[(device, seq)]` is the time each reading was handed to paho,
    `acked` the readings the broker acknowledged."""

    def __init__(
        self,
        port: int,
        topic: str,
        credentials: tuple[str, str],
        *,
        client_id: str,
        clean_session: bool = True,
        inflight: int = 200,
        devices: int = DEVICES,
        reconnect_delay: tuple[float, float] | None = None,
    ) -> None:
        self.topic = topic
        self.devices = devices
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.c.username_pw_set(*credentials)
        self.c.max_inflight_messages_set(inflight)
        self.c.max_queued_messages_set(0)
        if reconnect_delay is not None:
            self.c.reconnect_delay_set(*reconnect_delay)
        self._key_of: dict[int, Reading] = {}
        self._acks: list[int] = []
        self.published: dict[Reading, float] = {}
        self.sent = 0
        self.c.on_publish = lambda _c, _u, mid, _rc, _p: self._acks.append(mid)
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self, n: int) -> None:
        """Publish reading n."""
        device, seq = reading(n, self.devices)
        body = json.dumps({"device": device, "seq": seq})
        info = self.c.publish(self.topic.format(device=device), body, qos=1)
        self._key_of[info.mid] = (device, seq)
        self.published[(device, seq)] = time.monotonic()
        self.sent += 1

    def send(self, total: int, start: int = 0) -> None:
        """Publish readings start .. start + total - 1, pausing PAUSE_S every PAUSE_EVERY readings."""
        for n in range(start, start + total):
            self.publish(n)
            if n % PAUSE_EVERY == PAUSE_EVERY - 1:
                time.sleep(PAUSE_S)

    def start(self, rate: float, tick: float = 0.02) -> None:
        """Publish readings 0, 1, 2, ... at `rate` per second (`rate * tick` every `tick` seconds) in a thread
        until `stop()`."""
        self._thread = threading.Thread(target=self._run, args=(rate, tick), daemon=True)
        self._thread.start()

    def _run(self, rate: float, tick: float) -> None:
        n = 0
        per_tick = int(rate * tick)
        next_tick = time.monotonic()
        while not self._stop.is_set():
            for _ in range(per_tick):
                self.publish(n)
                n += 1
            next_tick += tick
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def acks(self) -> int:
        """PUBACKs received."""
        return len(self._acks)

    @property
    def acked(self) -> set[Reading]:
        key_of = self._key_of
        return {key_of[mid] for mid in list(self._acks) if mid in key_of}

    def all_acked(self) -> bool:
        """Whether the broker acknowledged as many messages as were published."""
        return len(set(self._acks)) >= len(self.published)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


class Consumer:
    """Subscribed to `topic_filter` (QoS 1) once constructed; records every JSON message in arrival order."""

    def __init__(self, port: int, topic_filter: str, credentials: tuple[str, str], *, client_id: str) -> None:
        self.got: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
        self.c.username_pw_set(*credentials)
        subscribed = threading.Event()
        self.c.on_connect = lambda c, _u, _f, _rc, _p: c.subscribe(topic_filter, qos=1)
        self.c.on_subscribe = lambda *_a: subscribed.set()
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port, keepalive=10)
        self.c.loop_start()
        if not subscribed.wait(15):
            self.close()
            raise AssertionError(f"the consumer did not subscribe to {topic_filter} within 15 s")

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        body = json.loads(message.payload)
        with self._lock:
            self.got.append(body)

    def answers(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.got)

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@dataclass(frozen=True)
class Tally:
    """What came back against what was sent."""

    delivered: int
    """Distinct items that came back."""
    lost: list[Any]
    """Items sent that never came back, sorted."""
    duplicates: int
    """Items that came back more than once, each extra copy counted."""


def tally(sent: Iterable[Hashable], received: Sequence[Hashable]) -> Tally:
    distinct = set(received)
    return Tally(len(distinct), sorted(set(sent) - distinct), len(received) - len(distinct))
