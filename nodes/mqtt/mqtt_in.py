"""mqtt in: subscribes through an `mqtt-broker` config node and emits each message received.

As Node-RED's MQTTInNode: `topic` may hold `+` / `#` wildcards (and `$share/<group>/...`), `qos`
"0".."2" (default 2), `datatype` auto-detect | auto | utf8 | buffer | json | base64, and for MQTT
v5 the subscription options `nl`, `rap`, `rh`. Emits `{topic, payload, qos, retain}` plus the v5
fields present (responseTopic, correlationData, contentType, userProperties, ...).
With `inputs: 1` the subscriptions are dynamic: `msg.action` subscribe | unsubscribe | connect |
disconnect | getSubscriptions, `msg.topic` a filter, a list, or `{topic, qos, ...}` objects.

Received messages are sent on with `send_wait` (backpressure): while more than PAUSE_AT wait, the
broker connection stops taking messages in (see MqttConnection.set_reading); QoS 0 messages beyond
MAX_QUEUED are dropped (counted, with a warning), QoS 1/2 ones are paced by the broker.

A QoS 1/2 message is acknowledged to its broker (PUBACK / PUBREC) only once the flow is done with it: the
message and everything it caused, an error to catch included (runtime/core/completion.py,
runtime/mqtt/acks.py). One still in the flow when the process dies is sent again by the broker or device.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from pydantic import Field

from sofiaflow.nodes.mqtt.mqtt_fields import Qos, StrBool
from sofiaflow.nodes.mqtt.mqtt_payload import DATATYPES, PayloadError, decode
from sofiaflow.runtime.api import (
    Msg,
    Node,
    NodeConfig,
    NodeError,
    NRInt,
    current_receipt,
    new_msgid,
    valid_subscription,
)

PAUSE_AT = 1000  # received messages waiting for the flow: above this, hold back QoS 1/2 acknowledgements
RESUME_AT = 250
MAX_QUEUED = 10_000  # above this, QoS 0 messages (which the broker does not pace) are dropped
ACTIONS = ("connect", "disconnect", "subscribe", "unsubscribe", "getSubscriptions")
SUBACK_WAIT = 10.0


DATATYPE_CHOICES = [
    ["auto-detect", "auto-detect (parsed JSON object, string or buffer)"],
    ["auto", "auto-detect (string or buffer)"],
    ["buffer", "a Buffer"],
    ["utf8", "a String"],
    ["json", "a parsed JSON object"],
    ["base64", "a Base64 encoded string"],
]


class MqttInConfig(NodeConfig):
    broker: str = Field(
        "",
        title="Server",
        description="The MQTT broker connection (an mqtt-broker config node).",
        json_schema_extra={"x-config": "mqtt-broker"},
    )
    inputs: NRInt = Field(
        0,
        title="Action",
        description="Subscribe to one topic, or subscribe and unsubscribe on messages sent to this node.",
        json_schema_extra={"x-choices": [["0", "subscribe to single topic"], ["1", "dynamic subscription"]]},
    )
    topic: str = Field(
        "",
        title="Topic",
        description="The topic to subscribe to; + matches one level, # all the remaining ones (sensors/+/temp).",
        json_schema_extra={"x-show-if": {"inputs": 0}},
    )
    qos: Qos = Field("2", title="QoS", json_schema_extra={"x-show-if": {"inputs": 0}})
    datatype: str = Field(
        "auto-detect",
        title="Output",
        description="What msg.payload holds for each message received.",
        json_schema_extra={"x-choices": DATATYPE_CHOICES},
    )
    nl: StrBool = Field(
        False,
        title="Do not receive messages published by this client",
        json_schema_extra={"x-section": "MQTT v5 options", "x-show-if": {"inputs": 0}},
    )
    rap: StrBool = Field(
        True,
        title="Keep retain flag of original publish",
        json_schema_extra={"x-section": "MQTT v5 options", "x-show-if": {"inputs": 0}},
    )
    rh: Any = Field(
        0,
        title="Retained message handling",
        description="Whether the broker sends its retained messages when subscribing (MQTT v5 brokers).",
        json_schema_extra={
            "x-section": "MQTT v5 options",
            "x-show-if": {"inputs": 0},
            "enum": [0, 1, 2],
            "x-choices": [
                ["0", "send retained messages"],
                ["1", "only send for new subscriptions"],
                ["2", "do not send"],
            ],
        },
    )


def _qos(value: Any, default: int = 2) -> int:
    try:
        qos = int(float(value))
    except (TypeError, ValueError):
        return default
    return qos if qos in (0, 1, 2) else default


def _flag(value: Any) -> bool | None:
    if value is True or value == "true":
        return True
    if value is False or value == "false":
        return False
    return None


def v5_options(spec: dict[str, Any], qos: int) -> dict[str, Any]:
    """Subscription options as Node-RED passes them for v5: qos, rh 0..2, nl, rap."""
    options: dict[str, Any] = {"qos": qos}
    rh = _qos(spec.get("rh", 0), 0)
    options["rh"] = rh
    nl = _flag(spec.get("nl"))
    if nl is not None:
        options["nl"] = nl
    rap = _flag(spec.get("rap", True))
    options["rap"] = True if rap is None else rap
    return options


class MqttInNode(Node[MqttInConfig]):
    type = "mqtt in"
    category = "network"
    label = "mqtt in"
    color = "#d8bfd8"
    inputs = 0
    outputs = 1
    is_source = True
    Config = MqttInConfig
    help = (
        "Subscribes to an MQTT topic (wildcards + and #) on the chosen broker and sends each message; "
        "the payload is parsed JSON, a string or bytes (auto-detect), or the chosen type. With one input, "
        "msg.action subscribe/unsubscribe/connect/disconnect/getSubscriptions changes subscriptions at run time."
    )

    @classmethod
    def output_count(cls, config: NodeConfig) -> int:
        return 1

    def setup(self) -> None:
        conf = self.config
        self.dynamic = conf.inputs == 1
        self.inputs = 1 if self.dynamic else 0
        self.topic = conf.topic or ""
        self.qos = _qos(conf.qos)
        self.datatype = conf.datatype or "utf8"
        if self.datatype not in DATATYPES:
            raise NodeError(f"datatype: {self.datatype!r} is not one of {', '.join(DATATYPES)}")
        if not conf.broker:
            raise NodeError("broker: missing broker configuration")
        if not self.dynamic:
            if not self.topic:
                raise NodeError("topic: topic not defined")
            if not valid_subscription(self.topic):
                raise NodeError(f"topic: Invalid topic specified: {self.topic!r}")
        self.dynamic_subs: dict[str, dict[str, Any]] = {}
        self.broker_node: Any = None
        self._queue: deque[Msg] = deque()
        self._wakeup: asyncio.Future | None = None
        self._paused = False
        self.dropped = 0

    async def start(self) -> None:
        broker = self.config_node(self.config.broker)
        if broker is None or not hasattr(broker, "register"):
            self.status("red", "ring", "disconnected")
            raise NodeError(f"broker: missing broker configuration ({self.config.broker!r} is not running)")
        self.broker_node = broker
        self._local = broker.local_topic
        self.spawn(self._forward())
        broker.register(self)
        if not self.dynamic:
            conf = self.config
            options = v5_options(conf.model_dump(), self.qos) if broker.v5 else {"qos": self.qos}
            broker.subscribe(self.topic, options, self._handler_for(self.datatype), self.id)

    async def _forward(self) -> None:
        """Send received messages on, waiting while the runtime is over capacity (backpressure)."""
        queue, send_wait = self._queue, self.send_wait
        completion = self.completion
        loop = asyncio.get_running_loop()
        while True:
            while queue:
                msg = queue.popleft()
                await send_wait(msg)
                if completion.tickets:
                    completion.release(msg)  # sent on: the flow holds it now
                if self._paused and len(queue) <= RESUME_AT:
                    self._paused = False
                    if self.broker_node is not None:
                        self.broker_node.resume(self.id)
            self._wakeup = loop.create_future()
            await self._wakeup
            self._wakeup = None

    def _handler_for(self, datatype: str) -> Any:
        queue = self._queue
        local = self._local
        completion = self.completion

        def on_message(topic: str, payload: bytes, qos: int, retain: bool, fields: dict | None) -> None:
            try:
                value = decode(payload, datatype, fields)
            except PayloadError as exc:
                self.error(
                    NodeError(str(exc)),
                    {"payload": payload, "topic": topic, "qos": qos, "retain": retain, "_msgid": new_msgid()},
                )
                return
            if qos == 0 and len(queue) >= MAX_QUEUED:
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    self.warn(f"the flow is not keeping up: {self.dropped} QoS 0 message(s) dropped")
                return
            msg = {"topic": topic, "payload": value, "qos": qos, "retain": retain, "_msgid": new_msgid()}
            if fields:
                msg.update(fields)
                if "userProperties" in fields:  # one dict per message: flows may change it
                    msg["userProperties"] = dict(fields["userProperties"])
            if local:
                msg["_topic"] = topic
            receipt = current_receipt() if qos else None
            if receipt is not None:  # the broker acknowledges it once the flow is done with it
                completion.track(msg, receipt.hold())
            queue.append(msg)
            wakeup = self._wakeup
            if wakeup is not None and not wakeup.done():
                wakeup.set_result(None)
            elif len(queue) >= PAUSE_AT and not self._paused and self.broker_node is not None:
                self._paused = True
                self.broker_node.pause(self.id)

        return on_message

    # ----- dynamic subscriptions -----------------------------------------------------------------------------
    async def on_input(self, msg: Msg) -> None:
        broker = self.broker_node
        if broker is None:
            raise NodeError("missing broker configuration")
        action = msg.get("action")
        if action not in ACTIONS:
            raise NodeError("Invalid action specified")
        if action == "connect":
            await broker.action_connect(msg.get("broker") if isinstance(msg.get("broker"), dict) else None)
        elif action == "disconnect":
            await broker.disconnect()
        elif action == "getSubscriptions":
            msg["topic"] = "subscriptions"
            msg["payload"] = list(self.dynamic_subs.values())
            self.send(msg)
        else:
            await self._change_subscriptions(broker, action, msg)

    async def _change_subscriptions(self, broker: Any, action: str, msg: Msg) -> None:
        topic = msg.get("topic")
        if action == "unsubscribe" and topic is True:
            entries = list(self.dynamic_subs.values())
        elif isinstance(topic, list):
            entries = topic
        elif isinstance(topic, (str, dict)):
            entries = [topic]
        else:
            raise NodeError("msg.topic is missing or invalid")
        subs = []
        for entry in entries:
            sub = (
                {"topic": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else {}
            )
            if not sub.get("topic") or not valid_subscription(sub["topic"]):
                raise NodeError("Invalid topic specified")
            subs.append(sub)
        if action == "unsubscribe":
            for sub in subs:
                broker.unsubscribe(sub["topic"], self.id, True)
                self.dynamic_subs.pop(sub["topic"], None)
        else:
            waits = []
            for sub in subs:
                if sub["topic"] in self.dynamic_subs:
                    broker.unsubscribe(sub["topic"], self.id, True)
                    del self.dynamic_subs[sub["topic"]]
                qos = _qos(sub.get("qos", 2))
                sub["qos"] = qos
                options = {"qos": qos}
                if broker.v5:
                    options = v5_options(sub, qos)
                    sub.update({k: options[k] for k in ("rh", "rap", "nl") if k in options})
                datatype = sub.get("datatype") or self.datatype
                if datatype not in DATATYPES:
                    raise NodeError(f"datatype: {datatype!r} is not one of {', '.join(DATATYPES)}")
                pending = broker.subscribe(sub["topic"], options, self._handler_for(datatype), self.id)
                if pending is not None:
                    waits.append(pending)
                self.dynamic_subs[sub["topic"]] = sub
            if waits:  # Node-RED does not wait; waiting for the SUBACKs makes "done" mean "subscribed"
                await asyncio.wait(waits, timeout=SUBACK_WAIT)
        msg["subscriptions"] = list(self.dynamic_subs.values())

    async def close(self, removed: bool) -> None:
        completion = self.completion
        while (
            self._queue
        ):  # not sent on: dropped with the node (as Node-RED), acknowledged so no device stalls
            completion.release(self._queue.popleft())
        broker, self.broker_node = self.broker_node, None
        if broker is None:
            return
        topics = list(self.dynamic_subs) if self.dynamic else [self.topic]
        for topic in topics:
            broker.unsubscribe(topic, self.id, removed)
        self.dynamic_subs = {}
        await broker.deregister(self, removed)
