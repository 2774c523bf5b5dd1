"""Which device holds a topic: every device's topic filters (`{device}` expanded) and owner, for the check that a
developer's flow publishes into no topic of another owner's device (runtime/security/tenant.py).

The filters are read from the DeviceRegistry again whenever its `generation` has moved (a device created,
changed or deleted), so a check right after a change sees it. Answers are kept per (tenant, topic) until then,
at most MAX_ANSWERS of them, so a flow publishing to the same topics costs one dictionary lookup per message.
Matching is the broker's own (runtime/mqtt/topics.py).
"""

from __future__ import annotations

import weakref
from typing import Any

from sofiaflow.runtime.mqtt import topics as mt
from sofiaflow.runtime.security.devices import expanded_filters

MAX_ANSWERS = 10_000

Holder = tuple[str, str, str | None]
"""(device name, its filter matching the topic, its owner: None for the administrators')."""


class DeviceTopicIndex:
    """Every device's filters and owner (see the module docstring)."""

    def __init__(self, registry: Any) -> None:
        self._registry = registry
        self._generation: int | None = None
        self._filters: tuple[tuple[tuple[str, ...], str, str, str | None], ...] = ()
        self._answers: dict[tuple[str, str], Holder | None] = {}

    def foreign_holder(self, topic: str, tenant: str) -> Holder | None:
        """The first device not owned by `tenant` with a filter matching topic name `topic`, None when none."""
        self._refresh()
        key = (tenant, topic)
        try:
            return self._answers[key]
        except KeyError:
            pass
        levels = mt.levels(topic)
        found = next(
            (
                (device, filt, owner)
                for filt_levels, filt, device, owner in self._filters
                if owner != tenant and mt.match_levels(filt_levels, levels)
            ),
            None,
        )
        if len(self._answers) >= MAX_ANSWERS:
            self._answers.clear()
        self._answers[key] = found
        return found

    def _refresh(self) -> None:
        generation = getattr(self._registry, "generation", None)
        if generation is not None and generation == self._generation:
            return
        rows = self._registry.topic_owners()
        self._filters = tuple(
            (mt.levels(filt), filt, name, owner)
            for name, topics, owner in rows
            for filt in expanded_filters(name, topics)
        )
        self._answers = {}
        self._generation = generation


_indexes: weakref.WeakKeyDictionary[Any, DeviceTopicIndex] = weakref.WeakKeyDictionary()


def index_of(registry: Any) -> DeviceTopicIndex:
    """The (one) index of a DeviceRegistry."""
    index = _indexes.get(registry)
    if index is None:
        index = _indexes[registry] = DeviceTopicIndex(registry)
    return index
