"""An mqtt-broker config node on this platform's own broker (`platform`), and its sessions in a cluster.

The node ignores server, port, TLS and credentials and connects to the platform's own broker: the embedded one in
a single process (in-process), the external one of `SOFIAFLOW_MQTT_URL` in cluster mode, with the runtime's own
client (`SOFIAFLOW_MQTT_USERNAME` / `_PASSWORD`). In cluster mode (the MQTT_SESSIONS service) each worker connects
with a persistent session of its own (clean session off, client id `sofiaflow-<worker>-<config node id>`) and
takes over the sessions of dead workers (runtime/cluster/mqtt_sessions.py): a second connection with the dead
worker's client id (`Takeover`) whose messages go to the same users.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sofiaflow.nodes.mqtt.mqtt_broker_subscriptions import BrokerSubscriptions
from sofiaflow.nodes.mqtt.mqtt_connection import MqttConnection
from sofiaflow.nodes.mqtt.mqtt_options import build
from sofiaflow.runtime.api import NodeError

SESSION_EXPIRY = 7 * 24 * 3600
"""MQTT 5 session expiry (seconds) of a worker's persistent session on the cluster's broker."""


def platform_target(
    conf: dict[str, Any], external: Any, sessions: Any, node_id: str, service: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Properties and credentials that reach this platform's broker: `external` (the `platformBroker` setting)
    when set, with this worker's own persistent session when `sessions` (MQTT_SESSIONS) is given; else the
    embedded broker `service`."""
    conf = {**conf, "usetls": False, "tls": ""}
    if external:
        conf.update(broker=external["url"], port=None)
        if sessions is not None:  # a cluster: this worker's own persistent session
            conf.update(clientid=sessions.client_id(node_id), cleansession=False)
            if int(conf.get("protocolVersion") or 4) == 5 and not conf.get("sessionExpiry"):
                conf["sessionExpiry"] = SESSION_EXPIRY
        creds = {"user": external.get("username") or "", "password": external.get("password") or ""}
        return conf, creds
    if service is None:
        raise NodeError(
            "platform: this runtime runs no MQTT broker of its own (SOFIAFLOW_MQTT_PORT is 0 and "
            "SOFIAFLOW_MQTT_URL is unset)"
        )
    conf.update(broker="127.0.0.1", port=int(service.port))
    return conf, {}


def takeover_link(
    conf: dict[str, Any],
    creds: dict[str, Any],
    client_id: str,
    subscriptions: BrokerSubscriptions,
    *,
    log: Callable[[str], None],
    spawn: Any,
    sleep: Any,
    warn: Any,
    paused: bool,
    holding: bool,
) -> MqttConnection:
    """A connection (not connected yet) with a dead worker's `client_id` (its persistent session), delivering
    what the broker held for it to `subscriptions`; no birth, close or will message."""
    conf = {**conf, "clientid": client_id}
    options = build(conf, creds, None)
    options.birth = options.close = options.will = None

    def state(value: str, error: str | None) -> None:
        if value == "connected":
            log(f"draining the session {client_id} of a worker that is gone")

    link = MqttConnection(
        options, on_message=subscriptions.deliver, on_state=state, spawn=spawn, sleep=sleep, warn=warn
    )
    subscriptions.install(link)
    if paused:
        link.set_reading(False)
    if holding:
        link.hold_intake(True)
    return link


@dataclass(slots=True)
class Takeover:
    """A dead worker's session drained by a config node (runtime/cluster/mqtt_sessions.py Handle)."""

    takeovers: dict[str, MqttConnection]
    client_id: str
    link: MqttConnection

    async def stop(self) -> None:
        self.takeovers.pop(self.client_id, None)
        await self.link.disconnect()
        await self.link.close()
