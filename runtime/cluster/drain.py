"""A deploy on a worker under load: the old revision finishes what it has in hand before the new one starts.

Every message that comes from outside the worker and is acknowledged only once the flows are done with it (a QoS 1/2
message of the worker's MQTT sessions, a partition stream's entry) must be answered by exactly one revision. So a
deploy (the worker's own, or a revision another worker deployed) runs inside `DeployDrain.hold()`:

1. intake stops: the MQTT sessions keep what they read without handing it to the flows or acknowledging it
   (runtime/cluster/mqtt_sessions.py, intakes), and the partition groups read no more (runtime/cluster/partitions.py);
2. the old revision drains: the deploy waits until no tracked message is left in the flows (runtime/core/completion.py),
   every received MQTT message is acknowledged and every partition batch in hand is acknowledged, at most `deadline`
   seconds (SOFIAFLOW_CLUSTER_DRAIN, 5);
3. the nodes are swapped (the deploy itself);
4. intake resumes: what the sessions kept goes to the new revision's nodes, the partitions are read again.

A message not done by the deadline is given up, never acknowledged: the MQTT connections holding one connect again
(before anything is given up, so no acknowledgement of theirs can go out), so Mosquitto sends their messages again to
the new revision; partition entries stay pending and are delivered again (their delivery count put back); the engine
drops every later delivery of a given-up message, so the old revision sends no output for it. What the old revision
had already sent for such a message before the deadline stays sent: the new revision answers it again (a duplicate of
two revisions; the log says how many messages were given up). Single-process mode never drains: its deploys are as
before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sofiaflow.runtime.core.services import MQTT_SESSIONS, PARTITIONS

if TYPE_CHECKING:
    from sofiaflow.runtime.core.engine import Engine

log = logging.getLogger("sofiaflow.cluster")

POLL = 0.005


@dataclass
class DrainReport:
    """How the last drain went: its seconds, and how many tracked messages it gave up at the deadline."""

    seconds: float = 0.0
    given_up: int = 0


class DeployDrain:
    """`async with drain.hold():` around a deploy on this worker; see the module docstring."""

    def __init__(self, engine: Callable[[], Engine | None], deadline: float = 5.0) -> None:
        if deadline <= 0:
            raise ValueError(f"drain deadline: must be positive seconds, not {deadline!r}")
        self._engine = engine
        self.deadline = deadline
        self.last = DrainReport()

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[DrainReport]:
        engine = self._engine()
        if engine is None:
            yield DrainReport()
            return
        sessions: Any = engine.services.get(MQTT_SESSIONS)
        partitions: Any = engine.services.get(PARTITIONS)
        if sessions is not None:
            sessions.hold(True)
        if partitions is not None:
            partitions.hold(True)
        try:
            report = await self._drain(engine, sessions, partitions)
            self.last = report
            yield report
        finally:
            if partitions is not None:
                partitions.hold(False)
            if sessions is not None:
                sessions.hold(False)

    async def _drain(self, engine: Engine, sessions: Any, partitions: Any) -> DrainReport:
        started = time.monotonic()

        def drained() -> bool:
            return (
                not engine.completion.tickets
                and (sessions is None or sessions.unfinished == 0)
                and (partitions is None or partitions.in_hand == 0)
            )

        deadline = started + self.deadline
        while not drained():
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL)
        else:
            seconds = time.monotonic() - started
            log.info("cluster: deploy drain: the old revision finished what it had in %.3f s", seconds)
            return DrainReport(seconds)
        # the deadline passed: give up what is still in hand, unacknowledged (the MQTT connections first, so
        # that no acknowledgement goes out for a message given up)
        if sessions is not None:
            sessions.forsake()
        given_up = engine.completion.abandon("a deploy's drain time ran out")
        log.warning(
            "cluster: deploy drain: %d message(s) not done within %.1f s given up; they come again to the "
            "new revision",
            given_up,
            self.deadline,
        )
        settle = time.monotonic() + 2.0  # the partitions put back what was given up
        while partitions is not None and partitions.in_hand and time.monotonic() < settle:
            await asyncio.sleep(POLL)
        return DrainReport(time.monotonic() - started, given_up)
