"""ssap-mqtt in: SSAP over the embedded MQTT broker, on the topics onesait clients use.

Requests arrive on `/queue/message` and, as onesait's Python client sends them, on `/topic/message/<clientId>`;
answers go to `/topic/message/<clientId>`, INDICATIONs to `/topic/subscription`. Clients connect without
MQTT credentials (the JOIN authenticates): while this node runs, the embedded broker admits anonymous
clients to these topics only.

Answers and INDICATIONs go to the MQTT client that sent the request (its client id, as the broker saw it), not
to an id the request's body names. On the shared `/topic/subscription` every client subscribes to, each
INDICATION reaches its subscriber's session alone (runtime/onesait/indications.py).

`mqtt` (an mqtt-broker config node, normally one with `platform` on) is the way when there is no embedded broker:
in cluster mode the requests come through the cluster's Mosquitto (each to one worker: the platform node shares its
subscriptions). There a client is a registered device (name and token; no anonymous clients): it sends requests on
`/queue/message` or `/topic/message/<its name>` and gets answers on `/topic/message/<its name>`, INDICATIONs on
`<indicationTopic>/<its name>` (a shared topic cannot be delivered privately by another broker), as Mosquitto's
dynamic security lets each device only those of its own name (runtime/cluster/dynsec.py).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from sofiaflow.nodes.onesait.broker_config import broker_of
from sofiaflow.nodes.onesait.platform_only import refuse_in_tenant_flow
from sofiaflow.runtime.api import (
    MQTT_BROKER,
    MqttReply,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    deliver_to_client,
    new_msgid,
)

MAX_PAYLOAD = 4 * 1024 * 1024
_BAD_ID_CHARS = set("+#/")


class SsapMqttInConfig(NodeConfig):
    broker: str = Field(
        "",
        title="SSAP broker",
        description="The ssap-broker config node holding the sessions.",
        json_schema_extra={"x-config": "ssap-broker"},
    )
    topic: str = Field(
        "/queue/message", title="Request topic", description="Where devices send their SSAP messages."
    )
    indicationTopic: str = Field(
        "/topic/subscription", title="Indication topic", description="Where subscription indications go out."
    )
    anonymous: bool = Field(True, title="Allow anonymous devices")
    mqtt: str = Field(
        "",
        title="MQTT broker (without the embedded one)",
        description="Where requests come from when the runtime runs no embedded broker (cluster mode): an "
        "mqtt-broker config node, normally this platform's broker.",
        json_schema_extra={"x-config": "mqtt-broker"},
    )


class SsapMqttInNode(Node[SsapMqttInConfig]):
    type = "ssap-mqtt in"
    category = "onesait"
    color = "#8fbce6"
    inputs = 0
    outputs = 1
    is_source = True
    Config = SsapMqttInConfig
    help = (
        "Takes SSAP requests from MQTT clients of the embedded broker (topic, default /queue/message, and "
        "/topic/message/<clientId>); answers go to /topic/message/<clientId>, INDICATIONs to indicationTopic "
        "(default /topic/subscription, as onesait, each delivered to its subscriber only; or a topic with "
        "{clientId}). With anonymous on, clients connect without credentials, limited to the SSAP topics. "
        "mqtt: an mqtt-broker config node (this platform's broker) used when there is no embedded broker, as in "
        "cluster mode; there INDICATIONs go to <indicationTopic>/<clientId>."
    )

    @classmethod
    def claims(cls, config: NodeConfig) -> list[str]:
        return ["mqtt-embedded:ssap"]

    def setup(self) -> None:
        refuse_in_tenant_flow(self)
        if not self.config.broker:
            raise NodeError("ssap-mqtt in: property 'broker' (an ssap-broker config node) is required")
        topic = (self.config.topic or "").strip()
        if not topic or "+" in topic or "#" in topic:
            raise NodeError(
                f"ssap-mqtt in: property 'topic' must be a topic name without wildcards, got "
                f"{self.config.topic!r}"
            )
        self._topic = topic
        self._indications = (self.config.indicationTopic or "").strip() or "/topic/subscription"
        probe = self._indications.replace("{clientId}", "c")
        if "+" in probe or "#" in probe or "{" in probe or "}" in probe:
            raise NodeError(
                f"ssap-mqtt in: property 'indicationTopic' must be a topic name (the only placeholder "
                f"is {{clientId}}), got {self.config.indicationTopic!r}"
            )
        self._stops: list[Any] = []
        self._mqtt: Any = None
        self._external: tuple[Any, str] | None = None

    async def start(self) -> None:
        try:
            mqtt = self.service(MQTT_BROKER)
        except NodeError:
            if self.config.mqtt:
                self._start_external()
                return
            self.status("red", "ring", "no embedded MQTT broker")
            self.warn(
                "ssap-mqtt in: the runtime runs no embedded MQTT broker (mqtt port 0); SSAP over MQTT is off"
            )
            return
        self._mqtt = mqtt
        self._stops = [
            mqtt.subscribe(self._topic, self._incoming),
            mqtt.subscribe("/topic/message/+", self._incoming),
        ]
        if self.config.anonymous:
            mqtt.anonymous_topics = self._anonymous_topics
        self.status("green", "dot", f"{self._topic} on port {mqtt.port}")

    def _start_external(self) -> None:
        """Requests through the mqtt-broker config node `mqtt` (see the module docstring)."""
        broker = self.config_node(self.config.mqtt)
        if broker is None or not hasattr(broker, "subscribe"):
            raise NodeError(f"ssap-mqtt in: property 'mqtt': no mqtt-broker config node {self.config.mqtt!r}")
        indications = self._indications
        if "{clientId}" not in indications:
            indications = indications.rstrip("/") + "/{clientId}"
        self._external = (broker, indications)
        broker.register(self)
        for topic in (self._topic, "/topic/message/+"):
            broker.subscribe(topic, {"qos": 1}, self._incoming_external, self.id)
        self._stops = [lambda: [broker.unsubscribe(t, self.id) for t in (self._topic, "/topic/message/+")]]

    def _incoming_external(
        self, topic: str, payload: bytes, qos: int, retain: bool, _fields: Any = None
    ) -> None:
        if retain or len(payload) > MAX_PAYLOAD:
            return
        try:
            envelope = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.warn(f"SSAP message on {topic} dropped: not JSON")
            return
        if not isinstance(envelope, dict) or envelope.get("direction", "REQUEST") != "REQUEST":
            return
        # on /topic/message/<name> only device <name> may publish (the broker's ACLs): that is who asked
        requester = topic.rsplit("/", 1)[-1] if topic.startswith("/topic/message/") else None
        if self._external is None:
            return
        broker, indications = self._external

        async def publish(to: str, body: bytes) -> None:
            broker.publish(to, body, qos=1)

        reply = MqttReply(
            publish,
            lambda answer: self._client_id(envelope, requester),
            self.spawn,
            indications,
            requester=requester,
        )
        self.send(
            {
                "_msgid": new_msgid(),
                "payload": envelope,
                "topic": topic,
                "ssap": {"transport": "mqtt", "reply": reply, "clientId": requester},
            }
        )

    async def close(self, removed: bool) -> None:
        for stop in self._stops:
            stop()
        self._stops = []
        if self._mqtt is not None and getattr(self._mqtt, "anonymous_topics", None) == self._anonymous_topics:
            self._mqtt.anonymous_topics = None
        self._mqtt = None
        external, self._external = self._external, None
        if external is not None:
            await external[0].deregister(self, removed)

    def _anonymous_topics(self, client_id: str) -> tuple[list[str], list[str]] | None:
        """What an anonymous client may do, no more: (publish) requests on the request topic and its own
        `/topic/message/<clientId>`; (subscribe) its answers there and the indication topic."""
        if not client_id or _BAD_ID_CHARS & set(client_id) or "{" in client_id or "}" in client_id:
            return None
        own = f"/topic/message/{client_id}"
        return [self._topic, own], [own, self._indications.replace("{clientId}", client_id)]

    def _incoming(self, topic: str, payload: bytes, qos: int, retain: bool) -> None:
        if retain or self._mqtt is None:
            return
        if len(payload) > MAX_PAYLOAD:
            self.warn(f"SSAP message on {topic} dropped: larger than {MAX_PAYLOAD} bytes")
            return
        try:
            envelope = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            self.warn(f"SSAP message on {topic} dropped: not JSON")
            return
        if not isinstance(envelope, dict) or envelope.get("direction", "REQUEST") != "REQUEST":
            return  # our own answers on /topic/message/<clientId>, or junk
        # who asked: the MQTT client that published it (the broker knows it), else the client id of its topic
        topic_client = topic.rsplit("/", 1)[-1] if topic.startswith("/topic/message/") else None
        requester = getattr(self._mqtt, "sender_client", None) or topic_client
        mqtt = self._mqtt
        reply = MqttReply(
            mqtt.publish,
            lambda answer: self._client_id(envelope, requester),
            self.spawn,
            self._indications,
            requester=requester,
            deliver=lambda client, to, payload: deliver_to_client(mqtt, client, to, payload),
        )
        msg: Msg = {
            "_msgid": new_msgid(),
            "payload": envelope,
            "topic": topic,
            "ssap": {"transport": "mqtt", "reply": reply, "clientId": requester},
        }
        self.send(msg)

    def _client_id(self, envelope: dict[str, Any], requester: str | None) -> str | None:
        """Where the answer goes: the client that sent the request, else the JOIN's instance, else the
        session's (requests published in-process, by flows)."""
        if requester:
            return requester
        body = envelope.get("body") if isinstance(envelope.get("body"), dict) else {}
        instance = body.get("clientPlatformInstance") or body.get("device") or body.get("clientId")
        if instance:
            return str(instance)
        try:
            sessions = broker_of(self, self.config.broker).sessions
        except NodeError:
            return None
        session = (
            sessions.peek(envelope.get("sessionKey")) if isinstance(envelope.get("sessionKey"), str) else None
        )
        return session.instance if session is not None else None
