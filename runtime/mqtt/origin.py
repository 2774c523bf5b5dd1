"""The origin tenant of a message on the embedded MQTT broker, and who may hear it (rule: runtime/security/tenant.py).

A message's origin is the tenant it comes from: the owner of the device that published it (None for the
administrators' devices), `ANONYMOUS` for an anonymous client (SSAP over MQTT), the publishing node's tenant for a
flow's in-process publish (None for administrators' and ownerless tabs and for the platform itself).
`ANONYMOUS` is no string, so no user name ever equals it.

Retained messages keep their origin: `RetainedOrigins` remembers the origin of each message a flow retained, tied
to amqtt's stored message (whose class takes no extra attribute), so a later retained message on the same topic,
from a client or a flow, is never given an older origin.
"""

from __future__ import annotations

from typing import Any, Final, final


@final
class AnonymousOrigin:
    """The origin of messages from anonymous MQTT clients: a tenant no user has."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "(anonymous)"


ANONYMOUS: Final = AnonymousOrigin()

Origin = str | AnonymousOrigin | None
"""A user name (a developer's), ANONYMOUS, or None (administrators and the platform)."""


def hears(tenant: str | None, origin: Origin) -> bool:
    """Whether an in-process subscriber of `tenant` (None: an administrator's or ownerless tab, the platform) may
    receive a message of `origin`: a tenant hears its own messages only, no tenant hears everything."""
    return tenant is None or tenant == origin


class RetainedOrigins:
    """The origins of retained messages published in-process (see the module docstring)."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[Any, Origin]] = {}

    def note(self, topic: str, stored: Any, origin: Origin) -> None:
        """`stored` (amqtt's retained message on `topic` now, None when cleared) came from `origin`."""
        if stored is None or origin is None:
            self._kept.pop(topic, None)  # None is also what a message stored without a session has
        else:
            self._kept[topic] = (stored, origin)

    def of(self, topic: str, stored: Any, otherwise: Origin) -> Origin:
        """The origin of `stored`, amqtt's retained message on `topic`: the one noted for it, else `otherwise`
        (what its source session says)."""
        kept = self._kept.get(topic)
        if kept is None:
            return otherwise
        if kept[0] is stored:
            return kept[1]
        del self._kept[topic]  # replaced since: the note is stale
        return otherwise
