"""mqtt-broker: the config node holding one shared MQTT connection for its `mqtt in` / `mqtt out` users.

As Node-RED's MQTTBrokerNode: users `register` (the first one connects, unless `autoConnect` is
off), subscribe with a `ref` (their id), publish, and get the connection status ("connecting",
"connected", "disconnected") on their badge. When the broker is the runtime's embedded one (service
"mqtt-embedded" on a local address and its port) messages go in-process (mqtt_embedded.py);
otherwise a client connects (mqtt_connection.py: the lean MQTT 3.1.1 client of mqtt_protocol.py for
TCP/TLS, aiomqtt for MQTT 5 and websockets), with reconnects, resubscription and a bounded buffer
for QoS 1/2 publishes made while disconnected.

`platform` (this platform's broker, mqtt_platform.py): the node connects to the platform's own broker, in cluster
mode with shared subscriptions (`$share/sofiaflow-<config node id>/<topic>`, so each message reaches one worker)
and a persistent session per worker. The tenancy rules of the embedded broker become, on the external one (which
tells no origin): a developer's node publishes nowhere another owner's devices hold (as on the embedded broker),
and hears no message on a topic another owner's devices hold (mqtt_broker_subscriptions.py); what devices may do
is Mosquitto's dynamic security (runtime/cluster/dynsec.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field, field_validator

from sofiaflow.nodes.mqtt.mqtt_broker_subscriptions import BrokerSubscriptions
from sofiaflow.nodes.mqtt.mqtt_connection import MqttConnection
from sofiaflow.nodes.mqtt.mqtt_embedded import EmbeddedLink
from sofiaflow.nodes.mqtt.mqtt_fields import Qos, StrBool
from sofiaflow.nodes.mqtt.mqtt_options import (
    LOCAL_HOSTS,
    ConnectOptions,
    Outgoing,
    apply_override,
    build,
    is_embedded,
    parse_target,
)
from sofiaflow.nodes.mqtt.mqtt_payload import encode
from sofiaflow.nodes.mqtt.mqtt_platform import Takeover, platform_target, takeover_link
from sofiaflow.runtime.api import (
    DEVICES,
    MQTT_BROKER,
    MQTT_SESSIONS,
    Node,
    NodeConfig,
    NodeError,
    NRBool,
    NRInt,
    device_topic_index,
    publish_refusal,
)

STATUS = {
    "connecting": ("yellow", "ring", "connecting"),
    "connected": ("green", "dot", "connected"),
    "disconnected": ("red", "ring", "disconnected"),
}


class MqttBrokerConfig(NodeConfig):
    platform: NRBool = Field(
        False,
        title="This platform's broker",
        description="Connect to the platform's own broker (the embedded one, or the cluster's broker in "
        "cluster mode): no server, port or TLS to fill in.",
        json_schema_extra={"x-section": "Connection"},
    )
    broker: str = Field(
        "",
        title="Server",
        description="Host name or IP address of the broker, e.g. localhost or 127.0.0.1 (or a mqtt:// URL).",
        json_schema_extra={"x-section": "Connection", "x-show-if": {"platform": False}},
    )
    port: str | int | None = Field(
        1883, title="Port", json_schema_extra={"x-section": "Connection", "x-show-if": {"platform": False}}
    )
    usetls: NRBool = Field(
        False,
        title="Use TLS",
        json_schema_extra={"x-section": "Connection", "x-show-if": {"platform": False}},
    )
    tls: str | None = Field(
        "",
        title="TLS configuration",
        description="Certificates and keys (a tls-config config node).",
        json_schema_extra={
            "x-section": "Connection",
            "x-config": "tls-config",
            "x-show-if": {"platform": False, "usetls": True},
        },
    )
    verifyservercert: NRBool = Field(
        False, title="Verify server certificate", json_schema_extra={"x-widget": "hidden"}
    )
    protocolVersion: NRInt = Field(
        4,
        title="Protocol",
        json_schema_extra={
            "x-section": "Connection",
            "x-choices": [["3", "MQTT V3.1 (legacy)"], ["4", "MQTT V3.1.1"], ["5", "MQTT V5"]],
        },
    )
    clientid: str = Field(
        "",
        title="Client ID",
        description="Leave blank for an auto generated one (must be set for non-clean sessions).",
        json_schema_extra={"x-section": "Connection"},
    )
    autoConnect: Any = Field(
        True,
        title="Connect automatically",
        json_schema_extra={"x-section": "Connection", "x-widget": "checkbox"},
    )
    keepalive: NRInt = Field(60, title="Keep alive (seconds)", json_schema_extra={"x-section": "Connection"})
    cleansession: NRBool = Field(
        True, title="Use clean session", json_schema_extra={"x-section": "Connection"}
    )
    sessionExpiry: NRInt = Field(
        0,
        title="Session expiry (seconds)",
        json_schema_extra={"x-section": "Connection", "x-show-if": {"protocolVersion": 5}},
    )
    autoUnsubscribe: NRBool = Field(
        True,
        title="Automatically unsubscribe when disconnecting",
        json_schema_extra={"x-section": "Connection"},
    )
    compatmode: NRBool = Field(
        False, title="Use legacy MQTT 3.1 support", json_schema_extra={"x-widget": "hidden"}
    )
    userProps: Any = Field(
        "",
        title="User properties (JSON object)",
        description="MQTT v5 user properties sent with the connection, as a JSON object.",
        json_schema_extra={
            "x-section": "Connection",
            "x-widget": "code",
            "x-language": "json",
            "x-show-if": {"protocolVersion": 5},
        },
    )
    birthTopic: str = Field(
        "",
        title="Birth message topic",
        description="Published when the connection is made; leave blank for none.",
        json_schema_extra={"x-section": "Messages"},
    )
    birthQos: Qos = Field("0", title="Birth message QoS", json_schema_extra={"x-section": "Messages"})
    birthRetain: StrBool = Field(
        "false", title="Retain the birth message", json_schema_extra={"x-section": "Messages"}
    )
    birthPayload: Any = Field(
        "", title="Birth message payload", json_schema_extra={"x-section": "Messages", "x-widget": "text"}
    )
    birthMsg: Any = Field(
        {},
        title="Birth message v5 properties",
        json_schema_extra={"x-section": "Messages", "x-show-if": {"protocolVersion": 5}},
    )
    closeTopic: str = Field(
        "",
        title="Close message topic",
        description="Published before the connection is closed on purpose; leave blank for none.",
        json_schema_extra={"x-section": "Messages"},
    )
    closeQos: Qos = Field("0", title="Close message QoS", json_schema_extra={"x-section": "Messages"})
    closeRetain: StrBool = Field(
        "false", title="Retain the close message", json_schema_extra={"x-section": "Messages"}
    )
    closePayload: Any = Field(
        "", title="Close message payload", json_schema_extra={"x-section": "Messages", "x-widget": "text"}
    )
    closeMsg: Any = Field(
        {},
        title="Close message v5 properties",
        json_schema_extra={"x-section": "Messages", "x-show-if": {"protocolVersion": 5}},
    )
    willTopic: str = Field(
        "",
        title="Will message topic",
        description="Published by the broker when the connection is lost; leave blank for none.",
        json_schema_extra={"x-section": "Messages"},
    )
    willQos: Qos = Field("0", title="Will message QoS", json_schema_extra={"x-section": "Messages"})
    willRetain: StrBool = Field(
        "false", title="Retain the will message", json_schema_extra={"x-section": "Messages"}
    )
    willPayload: Any = Field(
        "", title="Will message payload", json_schema_extra={"x-section": "Messages", "x-widget": "text"}
    )
    willMsg: Any = Field(
        {},
        title="Will message v5 properties",
        json_schema_extra={"x-section": "Messages", "x-show-if": {"protocolVersion": 5}},
    )

    @field_validator("autoConnect", mode="before")
    @classmethod
    def _auto_connect(cls, value: Any) -> bool:
        return not (value is False or value == "false")  # Node-RED: only false / "false" turn it off


class MqttBrokerNode(Node[MqttBrokerConfig]):
    type = "mqtt-broker"
    category = "config"
    label = "mqtt-broker"
    is_config_node = True
    inputs = 0
    outputs = 0
    Config = MqttBrokerConfig
    credentials_spec = {"user": "text", "password": "password"}
    help = (
        "An MQTT broker connection shared by the mqtt in and mqtt out nodes that use it: server, port, "
        "TLS, protocol version, client id, keep-alive, birth/close/will messages; credentials user/password. "
        "'This platform's broker' (platform) connects to the platform's own broker instead: the embedded one, or "
        "the cluster's in cluster mode."
    )

    @property
    def target(self) -> str:
        """Where this config node connects, `host:port` as configured (changed by `connect` actions), for the
        runtime's metrics; read-only."""
        return f"{self._conf.get('broker') or ''}:{self._conf.get('port') or ''}".strip(":")

    def setup(self) -> None:
        self._conf: dict[str, Any] = self.config.model_dump()
        self._creds: dict[str, Any] = dict(self.credentials)
        if self._conf.get("protocolVersion") not in (None, 3, 4, 5):
            raise NodeError(f"protocolVersion: {self._conf['protocolVersion']!r} is not 3, 4 or 5")
        parse_target(self._conf.get("broker") or "", self._conf.get("port"), bool(self._conf.get("usetls")))
        self.users: dict[str, Node] = {}
        self._subscriptions = BrokerSubscriptions(self.error, self._device_topics)
        self._link: MqttConnection | EmbeddedLink | None = None
        self._lock = asyncio.Lock()
        self._pausers: set[str] = set()
        self.state = "disconnected"
        self._reported: str | None = None
        self._was_connected = False
        local = (self._conf.get("broker") or "").strip() in ("localhost", "127.0.0.1")
        self.local_topic = local  # Node-RED adds msg._topic for brokers on localhost
        self.platform = bool(self._conf.get("platform"))
        self._takeovers: dict[str, MqttConnection] = {}
        """Dead workers' sessions this worker drains (cluster mode), by client id."""
        self._holding = False
        """A cluster deploy drains: what arrives is kept, not handed on (MqttConnection.hold_intake)."""

    # ----- what users see -------------------------------------------------------------------------------------
    @property
    def v5(self) -> bool:
        return int(self._conf.get("protocolVersion") or 4) == 5 and not self._conf.get("compatmode")

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.connected

    @property
    def embedded(self) -> bool:
        return isinstance(self._link, EmbeddedLink)

    def register(self, node: Node) -> None:
        self.users[node.id] = node
        node.status(*STATUS[self.state])
        if len(self.users) == 1 and self._conf.get("autoConnect", True):
            self.connect()

    async def deregister(self, node: Node, removed: bool) -> None:
        node.status(*STATUS["disconnected"])
        self.users.pop(node.id, None)
        if node.id in self._pausers:
            self.resume(node.id)
        if removed and not self.users and self.connected:
            async with self._lock:
                await self._link.disconnect()

    # ----- subscriptions -------------------------------------------------------------------------------------
    def subscribe(self, topic: str, options: dict[str, Any], callback: Any, ref: str) -> Any:
        """Subscribe `callback(topic, payload, qos, retain, v5 fields)` under `ref`; returns an awaitable or None."""
        user = self.users.get(ref)
        qos = self._subscriptions.add(
            topic, options, callback, ref, user.tenant if user is not None else None
        )
        link = self._link
        if link is not None:
            return link.subscribe(self._subscriptions.share + topic, qos, options)
        return None

    def unsubscribe(self, topic: str, ref: str, remove_client_subscription: bool = False) -> None:
        if not self._subscriptions.remove(topic, ref):
            return
        if self._link is not None and (remove_client_subscription or self._conf.get("autoUnsubscribe", True)):
            self._link.unsubscribe(self._subscriptions.share + topic)

    def _device_topics(self) -> Any:
        try:
            return device_topic_index(self.service(DEVICES))
        except NodeError:
            return None

    # ----- publishing ----------------------------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        payload: Any,
        qos: int = 0,
        retain: bool = False,
        properties: Any = None,
        publisher: Node | None = None,
    ) -> None:
        """Publish now, or buffer (QoS 1/2) while disconnected; QoS 0 while disconnected is dropped. On the
        embedded broker a `publisher` node's tenant may not write into another owner's device topics
        (runtime/security/tenant.py): PermissionError; and it is the message's origin (without a publisher: this
        config node's tenant), which decides which flows hear it."""
        link = self._link
        if link is None:
            if qos == 0:
                return
            link = self._ensure_link()
            if link is None:
                return
        if publisher is not None and (self.platform or isinstance(link, EmbeddedLink)):
            refusal = publish_refusal(publisher, topic)
            if refusal is not None:
                raise PermissionError(refusal)
        origin = (self if publisher is None else publisher).tenant
        link.publish(Outgoing(topic, encode(payload), qos, retain, properties, origin))

    @property
    def congested(self) -> bool:
        """Connected but with a long send backlog: publishers should `await writable()`."""
        link = self._link
        return link is not None and link.congested

    async def writable(self) -> None:
        link = self._link
        if link is not None:
            await link.writable()

    def pause(self, ref: str) -> None:
        """A user cannot keep up: stop reading incoming messages until every pauser has resumed."""
        self._pausers.add(ref)
        if self._link is not None:
            self._link.set_reading(False)
        for link in self._takeovers.values():
            link.set_reading(False)

    def resume(self, ref: str) -> None:
        self._pausers.discard(ref)
        if not self._pausers:
            for link in (self._link, *self._takeovers.values()):
                if link is not None:
                    link.set_reading(True)

    # ----- connecting ----------------------------------------------------------------------------------------
    def connect(self) -> None:
        link = self._ensure_link()
        if link is not None:
            link.connect()

    async def disconnect(self) -> None:
        async with self._lock:
            if self._link is not None:
                await self._link.disconnect()

    async def action_connect(self, override: Any = None) -> None:
        """msg.action "connect" (optionally with msg.broker options, `force` to cycle a live connection)."""
        async with self._lock:
            busy = self._link is not None and self._link.state in ("connected", "connecting")
            if busy and isinstance(override, dict) and override:
                if not override.get("force"):
                    raise NodeError("Disconnect from broker before connecting")
            if isinstance(override, dict) and override:
                apply_override(self._conf, self._creds, override)
                old, self._link = self._link, None
                carried = []
                if old is not None:
                    await old.disconnect()
                    carried = old.take_backlog()
                    await old.close()
                link = self._ensure_link(carried)
            else:
                link = self._ensure_link()
            if link is not None and link.state == "disconnected":
                link.connect()

    def _ensure_link(self, carried: list[Outgoing] | None = None) -> MqttConnection | EmbeddedLink | None:
        if self._link is not None:
            return self._link
        try:
            service: Any = self.service(MQTT_BROKER)
        except NodeError:
            service = None
        try:
            conf, creds = self._platform_target(service) if self.platform else (self._conf, self._creds)
            options = build(conf, creds, self._tls_node())
        except NodeError as exc:
            if str(exc) != self._reported:  # once, not on every publish that finds no connection
                self._reported = str(exc)
                self.error(exc)
            self._state("disconnected", None)
            return None
        for text in options.warnings:
            self.warn(text)
        for item in (options.birth, options.close):
            if item is not None:  # heard as this config node's (its tab's tenant; on no tab: the platform's)
                item.origin = self.tenant
        hooks = dict(
            on_message=self._subscriptions.deliver, on_state=self._state, spawn=self.spawn, warn=self.warn
        )
        sessions = self._sessions() if self.platform else None
        if is_embedded(options, service):
            link: MqttConnection | EmbeddedLink = EmbeddedLink(service, options, **hooks)
        elif sessions is not None:  # connect once this worker holds its session's lease; drain dead workers'
            link = MqttConnection(
                options, sleep=self._sleep, gate=lambda: sessions.claim_own(self.id), **hooks
            )
            sessions.offer(self.id, self._take_over)
            sessions.add_intake(self.id, self)  # a deploy holds what arrives while the old revision drains
        else:
            link = MqttConnection(options, sleep=self._sleep, **hooks)
        self._subscriptions.share = (
            f"$share/sofiaflow-{self.id}/" if self.platform and isinstance(link, MqttConnection) else ""
        )
        self._subscriptions.install(link)
        for item in carried or ():
            link.publish(item)
        if self._pausers:
            link.set_reading(False)
        if self._holding and isinstance(link, MqttConnection):
            link.hold_intake(True)
        self._link = link
        return link

    def _platform_target(self, service: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Properties and credentials that reach this platform's broker (mqtt_platform.py)."""
        sessions = self._sessions()
        return platform_target(self._conf, self.setting("platformBroker"), sessions, self.id, service)

    def _sessions(self) -> Any:
        """The cluster's MQTT_SESSIONS service when the platform broker is the external one, else None."""
        if not self.setting("platformBroker"):
            return None
        try:
            return self.service(MQTT_SESSIONS)
        except NodeError:
            return None

    async def _take_over(self, client_id: str) -> Takeover:
        """Connect with a dead worker's `client_id` (its persistent session) and deliver what the broker held
        for it to this node's users, as messages of this node's own connection."""
        conf, creds = self._platform_target(None)
        link = takeover_link(
            conf,
            creds,
            client_id,
            self._subscriptions,
            log=self.log,
            spawn=self.spawn,
            sleep=self._sleep,
            warn=self.warn,
            paused=bool(self._pausers),
            holding=self._holding,
        )
        self._takeovers[client_id] = link
        link.connect()
        return Takeover(self._takeovers, client_id, link)

    def _tls_node(self) -> Any:
        if self.platform:
            return None
        if not self._conf.get("usetls") or not self._conf.get("tls"):
            return None
        node = self.config_node(self._conf["tls"])
        if node is None:
            self.warn(
                f"tls: tls-config node {self._conf['tls']!r} is not running here; "
                "using the system CA store without client certificates"
            )
        return node

    def _sleep(self, seconds: float) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self.call_later(seconds, lambda: fut.done() or fut.set_result(None))
        return fut

    def _state(self, state: str, error: str | None) -> None:
        self.state = state
        label = self._link.options.label if self._link is not None else self._conf.get("broker")
        if state == "connected":
            self._was_connected, self._reported = True, None
            self.log(f"Connected to broker: {label}")
        elif state == "disconnected" and error:
            if self._was_connected:
                self._was_connected = False
                self.log(f"Disconnected from broker: {label}: {error}")
            elif error != self._reported:
                self._reported = error
                self.error(f"Connection failed to broker: {label}: {error}")
        fill, shape, text = STATUS[state]
        for user in tuple(self.users.values()):
            user.status(fill, shape, text)

    # ----- a cluster deploy's drain (runtime/cluster/mqtt_sessions.py, intakes) ------------------------------
    def _connections(self) -> list[MqttConnection]:
        links = [self._link, *self._takeovers.values()]
        return [link for link in links if isinstance(link, MqttConnection)]

    def hold_intake(self, on: bool) -> None:
        """Keep (True) what arrives on this node's connections, or hand it on (False)."""
        self._holding = on
        for link in self._connections():
            link.hold_intake(on)

    @property
    def unfinished(self) -> int:
        """Received QoS 1/2 messages not acknowledged yet, on every connection of this node."""
        return sum(link.unfinished for link in self._connections())

    def forsake(self) -> None:
        """Give up what is in hand unacknowledged and connect again (the broker sends it again)."""
        for link in self._connections():
            if link.unfinished:
                link.forsake()

    async def close(self, removed: bool) -> None:
        link, self._link = self._link, None
        sessions = self._sessions() if self.platform else None
        if sessions is not None:
            sessions.remove_intake(self.id, self)
            await sessions.withdraw(self.id)
        if link is not None:
            await link.close()
        if sessions is not None:
            await sessions.release_own(self.id, forget=removed)


__all__ = ["LOCAL_HOSTS", "ConnectOptions", "MqttBrokerNode", "STATUS"]
