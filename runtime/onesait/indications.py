"""INDICATIONs to one MQTT client: a message on a shared topic (onesait's `/topic/subscription`) delivered to the
session of one client id only, as if it alone had published there for it.

Every SSAP client subscribes to the same indication topic, so publishing an INDICATION there would hand it to
all of them. `deliver_to_client` sends it to the named client's session alone, when that session is connected,
holds a subscription matching the topic and may receive it (the broker's topic check); in-process subscribers
(flows) do not get it. QoS is the subscription's, at most 1; the send runs as one of the broker's tasks.
"""

from __future__ import annotations

import logging
from typing import Any

from amqtt.contexts import Action

from sofiaflow.runtime.mqtt import topics as mt
from sofiaflow.runtime.mqtt.broker import DeviceTopicPlugin

log = logging.getLogger("sofiaflow.onesait")


def deliver_to_client(broker: Any, client_id: str, topic: str, payload: bytes) -> bool:
    """Send `payload` on `topic` to MQTT client `client_id` only; False when it is not there to receive it."""
    amqtt = getattr(broker, "_broker", None)  # the running amqtt broker (None: stopped)
    entry = amqtt.sessions.get(client_id) if amqtt is not None and client_id else None
    if entry is None:
        return False
    session, handler = entry
    if not session.transitions.is_connected() or not DeviceTopicPlugin.check(session, topic, Action.RECEIVE):
        return False
    levels = mt.levels(topic)
    granted = [
        qos
        for filt, holders in list(amqtt.subscriptions.items())
        if mt.match_levels(mt.levels(filt), levels)
        for holder, qos in holders
        if holder is session
    ]
    if not granted:
        return False
    broker._spawn(_send(handler, client_id, topic, payload, min(max(granted), 1)))
    return True


async def _send(handler: Any, client_id: str, topic: str, payload: bytes, qos: int) -> None:
    try:
        await handler.mqtt_publish(topic, payload, qos, retain=False)
    except Exception as exc:  # noqa: BLE001 - the client went away meanwhile
        log.info("INDICATION to MQTT client %r on %s not delivered: %s", client_id, topic, exc)
