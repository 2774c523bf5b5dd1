"""Device revocations across workers.

Devices, their tokens and whether they are enabled live in the config DB every worker shares, so a
device revoked or disabled through one worker is refused by every other one at its next authentication.
What a worker holds open for a device (SSAP sessions, connections) is dropped by its `on_revoke`
listeners; this relay tells every other worker of each revocation (a Redis pub/sub channel), which then
calls its own listeners.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.cluster.shared_channel import Channel

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from sofiaflow.runtime.security.devices import DeviceRegistry

CHANNEL = "sofiaflow:device-revocations"


class DeviceRevocations:
    def __init__(self, redis: Redis, devices: DeviceRegistry, worker: str, channel: str = CHANNEL) -> None:
        self.devices = devices
        self.channel = Channel(redis, channel, worker, self._receive)

    async def start(self) -> None:
        await self.channel.start()
        self.devices.relay = self._send

    async def stop(self) -> None:
        if self.devices.relay == self._send:
            self.devices.relay = None
        await self.channel.stop()

    def _send(self, name: str, token_id: str | None) -> None:
        self.channel.send([name, token_id])

    def _receive(self, note: Any) -> None:
        if isinstance(note, list) and len(note) == 2 and isinstance(note[0], str):
            token_id = note[1] if isinstance(note[1], str) else None
            self.devices.notify_revoked(note[0], token_id)
