"""mqtt out: publishes msg.payload through an `mqtt-broker` config node.

As Node-RED's MQTTOutNode: node settings override the message (`topic`, `qos` "" | 0..2, `retain`
"" | "true" | "false"; blank = take msg.topic / msg.qos / msg.retain). Payloads: dicts and lists
as JSON, numbers and booleans as text, bytes raw, None empty. For MQTT v5 `respTopic`,
`contentType`, `userProps` (JSON), `correl` and `expiry` override the msg fields responseTopic,
contentType, userProperties, correlationData and messageExpiryInterval. A message without a
topic is a (catchable) error; `msg.action` "connect" / "disconnect" drive the connection.
While the broker is connected but behind, the node waits, so its queue holds the flow back.
Unlike Node-RED (issue #2864), QoS 1/2 messages published while disconnected are buffered.
On the runtime's embedded broker a developer's flow cannot publish into a topic of another owner's device: a
(catchable) error, audited (runtime/security/tenant.py).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from sofiaflow.nodes.mqtt.mqtt_fields import Qos, StrBool
from sofiaflow.nodes.mqtt.mqtt_payload import publish_properties, user_properties
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, valid_publish


class MqttOutConfig(NodeConfig):
    topic: str = Field("", title="Topic", description="Leave blank to publish to msg.topic.")
    qos: Qos = Field(
        "",
        title="QoS",
        description="Leave blank to use msg.qos (0 when missing).",
        json_schema_extra={
            "x-choices": [
                ["", "from msg.qos"],
                ["0", "0 - at most once"],
                ["1", "1 - at least once"],
                ["2", "2 - exactly once"],
            ]
        },
    )
    retain: StrBool = Field(
        "",
        title="Retain",
        description="Whether the broker keeps the message for new subscribers; blank: msg.retain.",
        json_schema_extra={"x-choices": [["", "from msg.retain"], ["false", "false"], ["true", "true"]]},
    )
    respTopic: str = Field(
        "",
        title="Response topic",
        description="MQTT v5: where a reply is expected (blank: msg.responseTopic).",
        json_schema_extra={"x-section": "MQTT v5 properties"},
    )
    contentType: str = Field(
        "",
        title="Content type",
        description="MQTT v5: e.g. application/json (blank: msg.contentType).",
        json_schema_extra={"x-section": "MQTT v5 properties"},
    )
    userProps: Any = Field(
        "",
        title="User properties (JSON object)",
        description='MQTT v5 user properties, e.g. {"site": "north"}.',
        json_schema_extra={"x-section": "MQTT v5 properties", "x-widget": "code", "x-language": "json"},
    )
    correl: Any = Field(
        "",
        title="Correlation data",
        description="MQTT v5: matches a reply to its request.",
        json_schema_extra={"x-section": "MQTT v5 properties", "x-widget": "text"},
    )
    expiry: Any = Field(
        "",
        title="Expiry (seconds)",
        description="MQTT v5: the broker drops the message after this long.",
        json_schema_extra={"x-section": "MQTT v5 properties", "x-widget": "text"},
    )
    broker: str = Field(
        "",
        title="Server",
        description="The MQTT broker connection (an mqtt-broker config node).",
        json_schema_extra={"x-config": "mqtt-broker"},
    )


def _msg_qos(value: Any) -> int:
    if not value:
        return 0
    try:
        qos = int(float(value))
    except (TypeError, ValueError):
        return 0
    return qos if qos in (1, 2) else 0


class MqttOutNode(Node[MqttOutConfig]):
    type = "mqtt out"
    category = "network"
    label = "mqtt out"
    color = "#d8bfd8"
    inputs = 1
    outputs = 0
    Config = MqttOutConfig
    help = (
        "Publishes msg.payload to msg.topic (or the node's topic) on the chosen broker; objects as JSON. "
        "Node settings for topic, QoS and retain override the message's."
    )

    def setup(self) -> None:
        conf = self.config
        if not conf.broker:
            raise NodeError("broker: missing broker configuration")
        self.topic = conf.topic or ""
        if self.topic and not valid_publish(self.topic):
            raise NodeError(f"topic: Invalid topic specified: {self.topic!r}")
        self.node_qos: int | None = None
        if conf.qos not in (None, ""):
            try:
                self.node_qos = int(float(conf.qos))
            except (TypeError, ValueError):
                self.node_qos = -1
            if self.node_qos not in (0, 1, 2):
                raise NodeError(f"qos: {conf.qos!r} is not 0, 1 or 2")
        retain = conf.retain
        self.node_retain: bool | None = (
            True if retain is True or retain == "true" else (False if retain == "false" else None)
        )
        overrides: dict[str, Any] = {}
        if conf.respTopic:
            overrides["responseTopic"] = conf.respTopic
        if conf.correl:
            overrides["correlationData"] = conf.correl
        if conf.contentType:
            overrides["contentType"] = conf.contentType
        if conf.expiry not in (None, ""):
            overrides["messageExpiryInterval"] = conf.expiry
        users = conf.userProps
        if isinstance(users, str) and users.strip().startswith("{"):
            try:
                users = json.loads(users)
            except ValueError:
                raise NodeError(f"userProps: not valid JSON: {conf.userProps!r}") from None
        users = user_properties(users)
        if users:
            overrides["userProperties"] = users
        self.v5_overrides = overrides
        self.broker_node: Any = None
        self._publish: Any = None
        self._v5 = False

    async def start(self) -> None:
        broker = self.config_node(self.config.broker)
        if broker is None or not hasattr(broker, "register"):
            self.status("red", "ring", "disconnected")
            raise NodeError(f"broker: missing broker configuration ({self.config.broker!r} is not running)")
        self.broker_node = broker
        self._publish = broker.publish
        self._v5 = broker.v5
        broker.register(self)

    async def on_input(self, msg: Msg) -> None:
        if "action" in msg and msg["action"]:
            await self._action(msg)
            return
        if self._publish is None:
            raise NodeError("missing broker configuration")
        topic = self.topic or msg.get("topic")
        qos = self.node_qos
        if qos is None:
            qos = _msg_qos(msg.get("qos"))
        retain = self.node_retain
        if retain is None:
            value = msg.get("retain")
            retain = value is True or value == "true"
        msg["qos"] = qos
        msg["retain"] = retain
        if self.topic:
            msg["topic"] = topic
        props = None
        if self._v5:
            if self.v5_overrides:
                msg.update(self.v5_overrides)
            props = publish_properties(msg)
            if not topic and msg.get("responseTopic"):
                topic = msg.pop("responseTopic")
                msg["topic"] = topic
        if "payload" not in msg:
            return
        if not topic or topic.__class__ is not str or not valid_publish(topic):
            raise NodeError(
                "Invalid topic specified" if topic else "msg.topic is missing: no topic to publish to"
            )
        try:
            self._publish(topic, msg["payload"], qos, retain, props, publisher=self)
        except ValueError as exc:
            raise NodeError(f"cannot publish to {topic!r}: {exc}") from None
        except PermissionError as exc:  # another owner's device topic on the embedded broker
            raise NodeError(f"cannot publish to {topic!r}: {exc}") from None
        broker = self.broker_node
        if broker.congested:  # wait for the broker to catch up: this node's queue then holds the flow back
            await broker.writable()

    async def _action(self, msg: Msg) -> None:
        action = msg["action"]
        broker = self.broker_node
        if broker is None:
            raise NodeError("missing broker configuration")
        if action == "connect":
            await broker.action_connect(msg.get("broker") if isinstance(msg.get("broker"), dict) else None)
        elif action == "disconnect":
            await broker.disconnect()
        else:
            raise NodeError("Invalid action specified")

    async def close(self, removed: bool) -> None:
        broker, self.broker_node, self._publish = self.broker_node, None, None
        if broker is not None:
            await broker.deregister(self, removed)
