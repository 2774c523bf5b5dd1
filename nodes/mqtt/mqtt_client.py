"""aiomqtt's client, with the per-message paths made direct (used by mqtt_connection.py).

aiomqtt puts each received message on a queue read through a task per message, and awaits each
publish's acknowledgement; at thousands of messages a second that costs more than the messages.
`FastClient` keeps aiomqtt's connection handling (connect, subscribe, disconnect, the socket on
the asyncio loop) and instead:

- calls `on_message(client, message)` for each received PUBLISH (QoS 1/2 acknowledged by the caller:
  paho's manual-ack mode), and `on_ack(mid)` when a QoS 1/2 publish is acknowledged;
- reads up to READ_BATCH packets per readable event (paho reads one when nothing is in flight);
- can stop reading the socket (`reading(False)`), and reports `on_drained()` when paho has written
  everything it queued, for flow control.

It relies on aiomqtt 2.x / paho-mqtt 2.x internals (`_on_*` callbacks, `_packet_read`,
`_out_packet`); the MQTT tests exercise all of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho

from sofiaflow.nodes.mqtt.mqtt_options import ConnectOptions, Outgoing

READ_BATCH = 256
_PROTOCOLS = {3: aiomqtt.ProtocolVersion.V31, 4: aiomqtt.ProtocolVersion.V311, 5: aiomqtt.ProtocolVersion.V5}


class FastClient(aiomqtt.Client):
    """See the module docstring."""

    def __init__(
        self,
        *,
        on_message: Callable[[FastClient, paho.MQTTMessage], None],
        on_ack: Callable[[int], None],
        on_drained: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._client.disable_logger()  # paho's per-packet debug lines cost more than they tell
        self._client.on_publish = None  # see watch_acks
        self._client.manual_ack_set(True)
        self._hooks = (on_message, on_ack, on_drained)
        self._reader: tuple[int, Callable[[], None]] | None = None
        self._reading = True
        self.connack_properties: Any = None

    @classmethod
    def from_options(cls, o: ConnectOptions, **hooks: Any) -> FastClient:
        will = None
        if o.will is not None:
            will = aiomqtt.Will(o.will.topic, o.will.payload, o.will.qos, o.will.retain, o.will.properties)
        kwargs: dict[str, Any] = dict(
            hostname=o.host,
            port=o.port,
            username=o.username,
            password=o.password,
            identifier=o.client_id,
            protocol=_PROTOCOLS[o.protocol],
            will=will,
            transport=o.transport,
            keepalive=o.keepalive,
            tls_context=o.tls,
            properties=o.properties,
            timeout=10,
            max_inflight_messages=0,  # unlimited in paho (its queue scan per ack is O(n)): the caller keeps a window
        )
        kwargs["clean_start" if o.protocol == 5 else "clean_session"] = o.clean_session
        if o.transport == "websockets":
            kwargs["websocket_path"] = o.ws_path
        return cls(**hooks, **kwargs)

    @property
    def lost(self) -> asyncio.Future:
        """Resolves when the connection ends (with the error, if it broke)."""
        return self._disconnected

    def publish_nowait(self, item: Outgoing) -> paho.MQTTMessageInfo:
        """Queue a publish in paho (written on the next loop turn); its ack comes through `on_ack`."""
        return self._client.publish(item.topic, item.payload, item.qos, item.retain, item.properties)

    def ack(self, mid: int, qos: int) -> None:
        """Acknowledge a received QoS 1/2 message."""
        self._client.ack(mid, qos)

    def watch_acks(self, on: bool) -> None:
        """Turn paho's on_publish callback on only while QoS 1/2 messages await their acknowledgement.

        paho builds a reason code and a properties object for each callback, also for every QoS 0
        message written; without the callback, QoS 0 publishing is about 10% cheaper.
        """
        self._client.on_publish = self._on_publish if on else None

    def out_queue(self) -> int:
        """Packets paho has queued but not yet written."""
        return len(self._client._out_packet)

    def reading(self, on: bool) -> None:
        """Read the socket, or stop (TCP flow control then holds the broker back)."""
        if on == self._reading:
            return
        self._reading = on
        reader = self._reader
        if reader is not None:
            if on:
                self._loop.add_reader(*reader)
                self._loop.call_soon(reader[1])
            else:
                self._loop.remove_reader(reader[0])

    # ----- aiomqtt / paho callbacks --------------------------------------------------------------------------
    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None
    ) -> None:
        self.connack_properties = properties
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        self._hooks[0](self, message)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        self._hooks[1](mid)

    def _on_socket_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_unregister_write(client, userdata, sock)
        self._hooks[2]()

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        self._reader = None
        super()._on_socket_close(client, userdata, sock)

    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        """As aiomqtt's (called from the connecting thread), with a reader that takes READ_BATCH packets."""
        packet_read = getattr(client, "_packet_read", None)
        if packet_read is None:  # another paho: keep aiomqtt's reader
            super()._on_socket_open(client, userdata, sock)
            return
        loop = self._loop

        def on_readable() -> None:
            try:
                for _ in range(READ_BATCH):
                    if client._sock is None or not self._reading:
                        return
                    rc = packet_read()
                    if rc == paho.MQTT_ERR_AGAIN:
                        break
                    if rc > 0:
                        client._loop_rc_handle(rc)
                        return
                else:
                    loop.call_soon(on_readable)  # a full batch: come back after the others had a turn
                    return
                pending = getattr(
                    client._sock, "pending", None
                )  # TLS / websocket buffers the selector misses
                if pending is not None and pending() > 0:
                    loop.call_soon(on_readable)
            except Exception as exc:  # noqa: BLE001 - a broken socket ends the connection
                if not self._disconnected.done():
                    self._disconnected.set_exception(exc)

        def create_misc_task() -> None:
            self._misc_task = loop.create_task(self._misc_loop())

        self._reader = (sock.fileno(), on_readable)
        if self._reading:
            loop.call_soon_threadsafe(loop.add_reader, sock.fileno(), on_readable)
        loop.call_soon_threadsafe(create_misc_task)
