"""The subscriptions the users of one mqtt-broker config node hold, and the delivery of what arrives to them.

Users subscribe under a `ref` (their id); each topic filter is subscribed once on the connection, at the highest
QoS its users asked for. What arrives goes to every user whose filter matches, as the runtime's `TopicRouter`
(or the v5 subscription identifiers the message names) tells. On the embedded broker a user of a tenant hears only
messages of that origin; on the platform's external broker (`share` set: shared subscriptions) it does not hear
the topics another owner's devices hold.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sofiaflow.nodes.mqtt.mqtt_embedded import PublishedBy
from sofiaflow.nodes.mqtt.mqtt_payload import message_fields
from sofiaflow.runtime.api import TopicRouter


@dataclass(slots=True)
class Subscription:
    topic: str
    qos: int
    options: dict[str, Any]
    callback: Any
    ref: str
    tenant: str | None = None
    """Its user's tenant (runtime/security/tenant.py): on the embedded broker it hears only messages of that origin."""


class BrokerSubscriptions:
    """topic filter -> ref -> Subscription, the router matching topics to filters, and the delivery."""

    def __init__(self, on_error: Callable[[str], None], device_topics: Callable[[], Any]) -> None:
        self.subs: dict[str, dict[str, Subscription]] = {}
        self._router = TopicRouter()
        self._on_error = on_error
        self._device_topics = device_topics
        self.share = ""
        """`$share/<group>/` before every subscription on the platform's external broker, else ""."""

    def add(self, topic: str, options: dict[str, Any], callback: Any, ref: str, tenant: str | None) -> int:
        """Add `ref`'s subscription to `topic`; the QoS the connection should subscribe that filter with."""
        qos = int(options.get("qos", 2))
        self.subs.setdefault(topic, {})[ref] = Subscription(topic, qos, dict(options), callback, ref, tenant)
        self._router.set_filters(self.subs)
        return max(s.qos for s in self.subs[topic].values())

    def remove(self, topic: str, ref: str) -> bool:
        """Remove `ref`'s subscription to `topic`; True when no user holds that filter any more."""
        refs = self.subs.get(topic)
        if not refs or refs.pop(ref, None) is None:
            return False
        if refs:
            return False
        del self.subs[topic]
        self._router.set_filters(self.subs)
        return True

    def install(self, link: Any) -> None:
        """Record every filter (with `share` before it) on a new connection, subscribed once it connects."""
        for topic, refs in self.subs.items():
            sub = next(iter(refs.values()))
            link.subscriptions[self.share + topic] = (max(s.qos for s in refs.values()), sub.options)

    def deliver(self, topic: str, payload: bytes, qos: int, retain: bool, props: Any, filters: Any) -> None:
        """A connection's `on_message`: hand the message to every user whose filter matches."""
        embedded = props.__class__ is PublishedBy  # the embedded broker's: every message carries its origin
        if embedded:
            origin = props.origin
            fields = message_fields(props) if props.PublishingDevice is not None else None
        else:
            origin, fields = None, message_fields(props) if props is not None else None
            if self.share:
                return self._deliver_shared(topic, payload, qos, retain, fields, filters)
        subs = self.subs
        for topic_filter in self._router.route(topic) if filters is None else filters:
            refs = subs.get(topic_filter)
            if refs:
                for sub in tuple(refs.values()):
                    if embedded and sub.tenant is not None and sub.tenant != origin:
                        continue  # of another origin than its user's tenant (flow_tenant.hears)
                    try:
                        sub.callback(topic, payload, qos, retain, fields)
                    except Exception as exc:  # noqa: BLE001 - one user's failure must not stop the others
                        self._on_error(f"MQTT subscription handler error: {exc}")

    def _deliver_shared(
        self, topic: str, payload: bytes, qos: int, retain: bool, fields: Any, filters: Any
    ) -> None:
        """A message of the platform's external broker: users of a tenant do not hear the topics another owner's
        devices hold."""
        share = self.share
        subs = self.subs
        if filters is None:
            filters = self._router.route(topic)
        else:
            filters = tuple(f.removeprefix(share) for f in filters)
        index = None
        for topic_filter in filters:
            refs = subs.get(topic_filter)
            if refs:
                for sub in tuple(refs.values()):
                    if sub.tenant is not None:
                        if index is None:
                            index = self._device_topics()
                        if index is not None and index.foreign_holder(topic, sub.tenant) is not None:
                            continue
                    try:
                        sub.callback(topic, payload, qos, retain, fields)
                    except Exception as exc:  # noqa: BLE001 - one user's failure must not stop the others
                        self._on_error(f"MQTT subscription handler error: {exc}")
