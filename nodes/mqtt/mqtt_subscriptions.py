"""The subscriptions of one MQTT connection: what to (re)subscribe, with which options.

Each filter has a QoS and Node-RED's options (`nl`, `rap`, `rh` for MQTT v5) and, for v5, a
subscription identifier, so a received message names the filters it matched and overlapping
filters do not deliver it twice (as Node-RED does with subscriptionIdentifier).
"""

from __future__ import annotations

from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions


class SubscriptionTable(dict[str, tuple[int, dict[str, Any]]]):
    """filter -> (qos, options), plus v5 subscription identifiers."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: dict[str, int] = {}
        self._by_id: dict[int, str] = {}
        self._next_id = 1

    def __setitem__(self, topic_filter: str, value: tuple[int, dict[str, Any]]) -> None:
        super().__setitem__(topic_filter, value)
        if topic_filter not in self._ids:
            self._ids[topic_filter] = self._next_id
            self._by_id[self._next_id] = topic_filter
            self._next_id += 1

    def pop(self, topic_filter: str, default: Any = None) -> Any:  # type: ignore[override]
        self._by_id.pop(self._ids.pop(topic_filter, 0), None)
        return super().pop(topic_filter, default)

    def subscribe_args(self, topic_filter: str, v5: bool, ids_available: bool) -> dict[str, Any]:
        """Keyword arguments for aiomqtt's `subscribe` (qos, or v5 options and properties)."""
        qos, opts = self.get(topic_filter, (0, {}))
        if not v5:
            return {"qos": qos}
        options = SubscribeOptions(
            qos=qos,
            noLocal=bool(opts.get("nl")),
            retainAsPublished=bool(opts.get("rap", False)),
            retainHandling=int(opts.get("rh") or 0),
        )
        props = None
        if ids_available:
            props = Properties(PacketTypes.SUBSCRIBE)
            props.SubscriptionIdentifier = self._ids[topic_filter]
        return {"options": options, "properties": props}

    def matched(self, props: Any) -> tuple[str, ...] | None:
        """The filters a v5 message matched (from its subscription identifiers), or None if it does not say."""
        ids = getattr(props, "SubscriptionIdentifier", None) if props is not None else None
        if not ids:
            return None
        by_id = self._by_id
        return tuple(by_id[i] for i in ids if i in by_id)
