"""MQTT topic names and filters: validity checks and matching, as Node-RED's 10-mqtt.js.

`$share/<group>/<filter>` (shared subscriptions) match like their `<filter>` part. A `Router`
finds the filters a topic matches, caching the answer per topic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SUB_RE = re.compile(r"^(#$|(\+|[^+#]*)(/(\+|[^+#]*))*(/(\+|#|[^+#]*))?$)")
_PUB_BAD = re.compile(r"[+#\b\f\n\r\t\v\0]")
_SHARE = re.compile(r"^\$share/[^#+/]+/(.*)$", re.DOTALL)


def valid_subscription(topic: object) -> bool:
    """A topic filter MQTT accepts in SUBSCRIBE (`+` whole levels, `#` last)."""
    return isinstance(topic, str) and topic != "" and _SUB_RE.match(topic) is not None


def valid_publish(topic: object) -> bool:
    """A topic name one may publish to: not empty, no wildcards or control characters."""
    return isinstance(topic, str) and topic != "" and _PUB_BAD.search(topic) is None


def strip_share(topic_filter: str) -> str:
    """`$share/group/a/b` -> `a/b`; other filters unchanged."""
    if topic_filter.startswith("$share"):
        m = _SHARE.match(topic_filter)
        if m:
            return m.group(1)
    return topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """Whether `topic` matches `topic_filter` (MQTT rules; `$`-topics do not match leading wildcards)."""
    flt = strip_share(topic_filter)
    if flt == topic:
        return True
    if "+" not in flt and "#" not in flt:
        return False
    if topic.startswith("$") and flt[:1] in ("+", "#"):
        return False
    f_parts = flt.split("/")
    t_parts = topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts):
            return False
        if part != "+" and part != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)


class Router:
    """The filters (of a changing set) that match a topic, with a bounded per-topic cache."""

    def __init__(self, cache_size: int = 10_000) -> None:
        self._filters: list[str] = []
        self._cache: dict[str, tuple[str, ...]] = {}
        self._cache_size = cache_size

    def set_filters(self, filters: Iterable[str]) -> None:
        self._filters = list(filters)
        self._cache.clear()

    def route(self, topic: str) -> tuple[str, ...]:
        hit = self._cache.get(topic)
        if hit is None:
            hit = tuple(f for f in self._filters if matches(f, topic))
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[topic] = hit
        return hit
