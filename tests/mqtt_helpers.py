"""Helpers for the embedded broker's tests: a broker on a free port, a paho-mqtt 2.x client whose waits run in
worker threads (so the broker keeps serving on the test's loop), and small polling helpers."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.mqtt.broker import EmbeddedBroker
from sofiaflow.runtime.security.devices import DeviceRegistry

NOT_AUTHORIZED = "Not authorized"


@contextlib.asynccontextmanager
async def broker_env(tmp_path):
    """(registry, started broker on a free loopback port); stopped and disposed after."""
    db = connect(f"sqlite:///{tmp_path / 'broker.db'}")
    registry = DeviceRegistry(db)
    broker = EmbeddedBroker(registry, port=0)
    await broker.start()
    try:
        yield registry, broker
    finally:
        await broker.stop()
        db.dispose()


class Client:
    """A paho client; `await` helpers wait in worker threads."""

    def __init__(
        self,
        port: int,
        user: str | None = None,
        password: str | None = None,
        client_id: str = "",
        clean_session: bool = True,
    ) -> None:
        self.port = port
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.reconnect_delay_set(0.05, 0.05)  # paho sleeps this long, uninterruptibly, before stopping
        self.connacks: queue.Queue = queue.Queue()
        self.subacks: queue.Queue = queue.Queue()
        self.messages: queue.Queue = queue.Queue()
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put([rc.value for rc in rcs])
        self.c.on_message = lambda _c, _u, m: self.messages.put((m.topic, m.payload, m.qos, bool(m.retain)))

    def _on_connect(self, c, _u, _f, rc, _p) -> None:
        self.connacks.put(rc)
        if rc.is_failure:
            c.disconnect()  # ends paho's loop instead of retrying

    def _on_disconnect(self, c, _u, _f, _rc, _p) -> None:
        self.disconnected.set()
        c.disconnect()  # no automatic reconnect: tests reconnect with a new client

    async def connect(self) -> str:
        self.c.connect_async("127.0.0.1", self.port, keepalive=30)
        self.c.loop_start()
        rc = await asyncio.to_thread(self.connacks.get, True, 5)
        return str(rc)

    async def subscribe(self, topic_filter: str, qos: int = 0) -> list[int]:
        self.c.subscribe(topic_filter, qos)
        return await asyncio.to_thread(self.subacks.get, True, 5)

    async def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        info = self.c.publish(topic, payload, qos, retain)
        await asyncio.to_thread(info.wait_for_publish, 5)
        assert info.is_published()

    async def next(self, timeout: float = 5) -> tuple:
        return await asyncio.to_thread(self.messages.get, True, timeout)

    async def nothing(self, within: float = 0.3) -> None:
        with pytest.raises(queue.Empty):
            await asyncio.to_thread(self.messages.get, True, within)

    async def close(self) -> None:
        self.c.disconnect()
        await asyncio.to_thread(self.c.loop_stop)


@contextlib.asynccontextmanager
async def client(port: int, *args, **kwargs):
    c = Client(port, *args, **kwargs)
    try:
        yield c
    finally:
        await c.close()


async def until(condition, timeout: float = 5.0) -> float:
    """Seconds it took `condition()` to hold (bounded)."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


def collector(broker: EmbeddedBroker, topic_filter: str) -> list:
    got: list = []
    broker.subscribe(topic_filter, lambda *m: got.append(m))
    return got
