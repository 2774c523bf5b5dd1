"""A small in-process event bus: debug output, node status, logs, deploy notifications.

Topics follow Node-RED's `/comms`: `debug`, `status/<nodeId>`, `notification/runtime-deploy`,
`notification/runtime-state`, `log`. Subscribers are plain callables `(topic, data)`; a topic
pattern ending in `#` matches every topic with that prefix.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sofiaflow.events")

Listener = Callable[[str, Any], None]


class EventBus:
    """Publish/subscribe by topic, keeping the last few events of each kind for late readers."""

    def __init__(self, history: int = 200) -> None:
        self._subs: list[tuple[str, Listener]] = []
        self.recent: deque[tuple[str, Any]] = deque(maxlen=history)

    def subscribe(self, pattern: str, listener: Listener) -> Callable[[], None]:
        """Call `listener` for matching topics; returns a function that unsubscribes."""
        entry = (pattern, listener)
        self._subs.append(entry)

        def unsubscribe() -> None:
            if entry in self._subs:
                self._subs.remove(entry)

        return unsubscribe

    def publish(self, topic: str, data: Any) -> None:
        self.recent.append((topic, data))
        for pattern, listener in list(self._subs):
            if pattern == topic or (pattern.endswith("#") and topic.startswith(pattern[:-1])):
                try:
                    listener(topic, data)
                except Exception:  # a broken listener must not break the publisher
                    log.exception("event listener for %s failed", pattern)
