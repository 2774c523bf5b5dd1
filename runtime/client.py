"""A small client for device code talking to sofiaflow: MQTT publish/subscribe and device-only HTTP routes.

    from sofiaflow.runtime.client import DeviceClient

    with DeviceClient("sensor-1", token, mqtt_port=1883, http_base="http://127.0.0.1:1880") as dev:
        dev.subscribe("devices/sensor-1/commands", lambda topic, payload: print(topic, payload))
        dev.publish("sensors/sensor-1/temp", {"value": 21.5})
        answer = dev.post("/api/readings", json={"value": 21.5})

MQTT authenticates with username = device name and password = token; HTTP sends
`Authorization: Bearer <token>`. A refused login (MQTT CONNACK 4/5, HTTP 401) raises `DeviceAuthError`.

The API is synchronous, for plain device scripts: `connect()` blocks until the broker accepts (or
refuses) the session, then paho-mqtt runs the network loop in its own thread, reconnecting (and
resubscribing) by itself after a drop. Subscription callbacks run on that thread: keep them short
and hand heavy work to a queue. `publish()` with QoS 1 or 2 waits for the broker's acknowledgement
by default. HTTP calls work without `connect()` (they use httpx, one keep-alive connection pool).

This module needs only the standard library, paho-mqtt and httpx, so it can be copied onto a device.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import threading
from collections.abc import Callable
from typing import Any

import httpx
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sofiaflow.runtime.errors import AuthError, ServiceUnavailable

__all__ = [
    "DeviceAuthError",
    "DeviceClient",
    "DeviceClientError",
    "DeviceHTTPError",
    "decode_payload",
    "encode_payload",
]

log = logging.getLogger("sofiaflow.client")

Callback = Callable[[str, Any], None]
_AUTH_CODES = {4, 5, 134, 135}  # MQTT 3.1.1 bad user name or password / not authorized, and the MQTT 5 codes


class DeviceClientError(ServiceUnavailable):
    """A device client call failed (not connected, no acknowledgement in time, broker refused...)."""


class DeviceAuthError(DeviceClientError, AuthError):
    """The broker or the HTTP server refused the device's name or token (or a topic it may not use)."""


class DeviceHTTPError(DeviceClientError):
    """An HTTP call answered with an error status other than 401."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body


def encode_payload(payload: Any) -> bytes:
    """dicts, lists, numbers, booleans and None as JSON; str as UTF-8; bytes as they are."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _no_constants(name: str) -> Any:
    raise ValueError(name)


def decode_payload(data: bytes) -> Any:
    """JSON when the bytes are valid JSON, else text when they are UTF-8, else the bytes."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return data
    try:
        return json.loads(text, parse_constant=_no_constants)
    except ValueError:
        return text


class DeviceClient:
    """A device's connection to sofiaflow; see the module docstring."""

    def __init__(
        self,
        name: str,
        token: str,
        mqtt_host: str = "127.0.0.1",
        mqtt_port: int = 1883,
        http_base: str = "http://127.0.0.1:1880",
        *,
        client_id: str | None = None,
        keepalive: int = 60,
        timeout: float = 10.0,
        mqtt_tls: ssl.SSLContext | None = None,
        http_verify: ssl.SSLContext | bool = True,
    ) -> None:
        if not name or not token:
            raise ValueError("DeviceClient needs the device name and a token")
        self.name, self.mqtt_host, self.mqtt_port, self.http_base = name, mqtt_host, int(mqtt_port), http_base
        self.client_id = client_id or f"{name}-{os.urandom(4).hex()}"
        self.keepalive, self.timeout = keepalive, timeout
        self._token, self._mqtt_tls, self._http_verify = token, mqtt_tls, http_verify
        self._mqtt: mqtt.Client | None = None
        self._http: httpx.Client | None = None
        self._cond = threading.Condition()
        self._connack: Any = None
        self._subacks: dict[int, list] = {}
        self._subs: dict[str, tuple[Callback, int]] = {}
        self.connected = False

    # ----- lifecycle ------------------------------------------------------------------------------------------
    def connect(self, timeout: float | None = None) -> DeviceClient:
        """Open the MQTT session; DeviceAuthError when the broker refuses the name/token."""
        if self._mqtt is not None:
            return self
        timeout = self.timeout if timeout is None else timeout
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
        client.username_pw_set(self.name, self._token)
        if self._mqtt_tls is not None:
            client.tls_set_context(self._mqtt_tls)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(1, 30)
        self._connack = None
        try:
            client.connect(self.mqtt_host, self.mqtt_port, self.keepalive)
        except OSError as exc:
            raise DeviceClientError(
                f"cannot reach the MQTT broker at {self.mqtt_host}:{self.mqtt_port}: {exc}"
            ) from exc
        client.loop_start()
        with self._cond:
            self._cond.wait_for(lambda: self._connack is not None, timeout)
            code = self._connack
        if code is None or code.is_failure:
            client.loop_stop()
            client.disconnect()
            if code is None:
                raise DeviceClientError(
                    f"no answer from the MQTT broker at {self.mqtt_host}:{self.mqtt_port} "
                    f"within {timeout:g} s"
                )
            if code.value in _AUTH_CODES:
                raise DeviceAuthError(f"the MQTT broker refused device {self.name!r}: {code}")
            raise DeviceClientError(f"the MQTT broker refused the connection: {code}")
        self._mqtt = client
        return self

    def close(self) -> None:
        """Disconnect MQTT and close the HTTP connections."""
        client, self._mqtt = self._mqtt, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        self.connected = False
        http, self._http = self._http, None
        if http is not None:
            http.close()

    def __enter__(self) -> DeviceClient:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- MQTT -----------------------------------------------------------------------------------------------
    def publish(self, topic: str, payload: Any, qos: int = 1, retain: bool = False, wait: bool = True) -> int:
        """Publish `payload` (see `encode_payload`); with QoS > 0 and `wait`, return once the broker acked."""
        client = self._require()
        info = client.publish(topic, encode_payload(payload), qos=qos, retain=retain)
        if info.rc == mqtt.MQTT_ERR_NO_CONN:
            kept = "it is queued and goes out on reconnect" if qos else "it is dropped"
            raise DeviceClientError(f"not connected to the MQTT broker; {kept}")
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DeviceClientError(f"publish to {topic!r} failed: {mqtt.error_string(info.rc)}")
        if wait and qos:
            try:
                info.wait_for_publish(self.timeout)
            except (RuntimeError, ValueError) as exc:
                raise DeviceClientError(f"publish to {topic!r} failed: {exc}") from None
            if not info.is_published():
                raise DeviceClientError(
                    f"the broker did not acknowledge the publish to {topic!r} within {self.timeout:g} s"
                )
        return info.mid

    def subscribe(self, topic_filter: str, callback: Callback, qos: int = 1) -> int:
        """Call `callback(topic, payload)` (on paho's thread) for each message; returns the granted QoS.

        DeviceAuthError when the broker refuses the filter (SUBACK 0x80).
        """
        client = self._require()
        self._subs[topic_filter] = (callback, qos)
        client.message_callback_add(topic_filter, self._wrap(callback))
        result, mid = client.subscribe(topic_filter, qos)
        if result != mqtt.MQTT_ERR_SUCCESS:
            raise DeviceClientError(f"subscribe to {topic_filter!r} failed: {mqtt.error_string(result)}")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._subacks, self.timeout):
                raise DeviceClientError(f"no SUBACK for {topic_filter!r} within {self.timeout:g} s")
            codes = self._subacks.pop(mid)
        if not codes or codes[0].is_failure:
            self._subs.pop(topic_filter, None)
            client.message_callback_remove(topic_filter)
            raise DeviceAuthError(f"the MQTT broker refused the subscription to {topic_filter!r}")
        return codes[0].value

    def unsubscribe(self, topic_filter: str) -> None:
        client = self._require()
        self._subs.pop(topic_filter, None)
        client.message_callback_remove(topic_filter)
        client.unsubscribe(topic_filter)

    def _require(self) -> mqtt.Client:
        if self._mqtt is None:
            raise DeviceClientError("call connect() first (or use the client in a `with` block)")
        return self._mqtt

    def _wrap(self, callback: Callback) -> Callable[[mqtt.Client, Any, mqtt.MQTTMessage], None]:
        def deliver(_client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
            try:
                callback(message.topic, decode_payload(message.payload))
            except Exception:  # noqa: BLE001 - a failing callback must not stop the network loop
                log.exception("subscription callback failed for %r", message.topic)

        return deliver

    # paho callbacks (network thread)
    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        with self._cond:
            first = self._connack is None
            self._connack = reason
            self.connected = not reason.is_failure
            self._cond.notify_all()
        if not first and self.connected:
            for topic_filter, (_callback, qos) in list(self._subs.items()):
                client.subscribe(topic_filter, qos)  # a clean session forgot them

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self.connected = False
        if reason is not None and reason.is_failure:
            log.warning("device %s lost the MQTT connection: %s", self.name, reason)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int, codes: list, _props: Any) -> None:
        with self._cond:
            self._subacks[mid] = list(codes)
            self._cond.notify_all()

    # ----- HTTP -----------------------------------------------------------------------------------------------
    def get(self, path: str, params: dict | None = None) -> Any:
        """GET a device-only route; the answer's JSON (or text). DeviceAuthError on 401."""
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        """POST `json` (or httpx `content=`/`data=`) to a device-only route; the answer's JSON (or text)."""
        return self.request("POST", path, json=json, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._http is None:
            self._http = httpx.Client(
                base_url=self.http_base,
                verify=self._http_verify,
                timeout=self.timeout,
                headers={"Authorization": f"Bearer {self._token}"},
            )
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise DeviceClientError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        body: Any = response.content
        if "json" in response.headers.get("content-type", ""):
            try:
                body = response.json()
            except ValueError:
                body = response.text
        elif isinstance(body, bytes):
            try:
                body = body.decode()
            except UnicodeDecodeError:
                pass
        if response.status_code == 401:
            detail = body.get("message") if isinstance(body, dict) else body
            raise DeviceAuthError(f"{method} {path}: 401 unauthorized for device {self.name!r}: {detail}")
        if response.status_code >= 400:
            raise DeviceHTTPError(
                response.status_code, f"{method} {path}: HTTP {response.status_code}: {body}", body
            )
        return body
