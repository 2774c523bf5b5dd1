"""partition: "from here on, by key". In a cluster, messages are spread over N partitions by a key and each
partition is processed by one worker at a time, in order; alone, messages pass on in order.

In cluster mode (the PARTITIONS service, runtime/cluster/partitions.py) each message is appended to the Redis
stream of its key's partition; the worker that holds the partition reads it and sends the message on from here,
with `msg._streamId` (`<partition>/<stream entry id>`, unique per partition node: an idempotency key) and
`msg._partition`. The entry is acknowledged once the message and everything it caused downstream is done, so a
worker that dies mid-flow leaves it to the partition's next owner, which delivers it again (at least once).
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import Field

from sofiaflow.runtime.api import PARTITIONS, Msg, Node, NodeConfig, NodeError, NRInt, typed_getter

STRATEGY_CHOICES = [
    ["retry", "retry failed messages (then the dead letters)"],
    ["skip", "skip failed messages"],
    ["stop", "stop the partition"],
]
MAX_BATCH = 500
HELD_BACK = "held back"  # as runtime/cluster/partitions.py answers it: not handed on, an earlier one failed


class PartitionConfig(NodeConfig):
    key: str = Field(
        "topic",
        title="Key",
        description="What messages are partitioned by: a msg property (device), a topic level (0 is the "
        "first) or a JSONata expression.",
    )
    keyType: Literal["msg", "topic", "jsonata"] = Field(
        "msg",
        title="Key type",
        json_schema_extra={
            "x-choices": [
                ["msg", "msg property"],
                ["topic", "topic level"],
                ["jsonata", "JSONata expression"],
            ]
        },
    )
    partitions: NRInt = Field(
        64, title="Partitions", ge=1, le=4096, description="How many partitions keys go to."
    )
    strategy: Literal["retry", "skip", "stop"] = Field(
        "retry",
        title="On failure",
        description="A message fails when an error no catch node takes happens downstream of here.",
        json_schema_extra={"x-choices": STRATEGY_CHOICES},
    )
    maxDeliveries: NRInt = Field(
        5,
        title="Deliveries",
        ge=1,
        description="After this many deliveries a message goes to the dead letters.",
    )
    inflight: NRInt = Field(
        100,
        title="In flight",
        ge=1,
        le=10000,
        description="At most this many messages of a partition at once.",
    )
    retryDelay: NRInt = Field(
        100,
        title="Retry pause (ms)",
        ge=0,
        description="With retry: how long a failed partition waits before its next delivery, doubling with "
        "each delivery (0: at once).",
        json_schema_extra={"x-show-if": {"strategy": "retry"}},
    )
    retryDelayMax: NRInt = Field(
        5000,
        title="Longest pause (ms)",
        ge=0,
        description="With retry: the pause before a delivery grows to at most this.",
        json_schema_extra={"x-show-if": {"strategy": "retry"}},
    )


def _number(config: PartitionConfig, name: str) -> int:
    """A number setting, or its default where the editor stored it empty."""
    value = getattr(config, name)
    return int(PartitionConfig.model_fields[name].default if value is None else value)


class PartitionNode(Node[PartitionConfig]):
    type = "partition"
    category = "function"
    color = "#e2d96e"
    Config = PartitionConfig
    help = (
        "From here on, by key. Each message's key (a msg property, a topic level or a JSONata expression) "
        "picks one of N partitions (a stable hash).\n\n"
        "Alone, messages pass on in order. In a cluster, every partition is processed by one worker at a "
        "time, in order: the message is written to the partition's Redis stream and continues from here on "
        "the worker holding it, with `msg._streamId` (unique per partition node; an idempotency key) and "
        "`msg._partition`. It is acknowledged when everything downstream is done, so a worker that dies "
        "leaves its messages to the next owner (at least once). A message delivered more than *Deliveries* "
        "times goes to the dead letters (`GET /partitions/dead-letters`, replay or delete there).\n\n"
        "On failure (an error no catch node takes): retry (the key's later messages wait for it), skip, or "
        "stop the partition (red status). "
        "With retry, a failed partition pauses before its next delivery: *Retry pause* (ms) after the first, "
        "doubling with each delivery up to *Longest pause* (ms); 0 delivers again at once. The worker's "
        "other partitions flow meanwhile, and the partition's next owner (after a deploy or a worker "
        "leaving) delivers again at once. "
        "`msg.req` and `msg.res` do not cross workers."
    )

    max_batch = 0

    def setup(self) -> None:
        config = self.config
        if not config.key.strip():
            raise NodeError("partition: the key is empty")
        self._level = -1
        if config.keyType == "topic":
            try:
                self._level = int(config.key)
            except ValueError:
                raise NodeError(
                    f"partition: a topic level is a number (0 is the first), not {config.key!r}"
                ) from None
            if self._level < 0:
                raise NodeError(f"partition: a topic level is 0 or more, not {self._level}")
            self._get = None
        else:
            try:
                self._get = typed_getter(self, config.key, config.keyType)
            except Exception as exc:  # noqa: BLE001 - the expression's own error, named
                raise NodeError(f"partition: key {config.key!r}: {exc}") from None
        try:
            self._partitions = self.service(PARTITIONS)
        except NodeError:
            self._partitions = None  # single-process mode: pass messages on
        self._group: Any = None
        if self._partitions is not None:
            self.max_batch = MAX_BATCH

    def key_of(self, msg: Msg) -> Any:
        """The message's key; NodeError naming the key when the message has none."""
        if self._get is None:
            topic = msg.get("topic")
            levels = topic.split("/") if isinstance(topic, str) else []
            if self._level >= len(levels):
                raise NodeError(f"partition: msg.topic {topic!r} has no level {self._level}")
            return levels[self._level]
        value = self._get(msg)
        if value is None or type(value).__name__ == "Undefined":
            raise NodeError(f"partition: the message has no key ({self.config.keyType} {self.config.key})")
        return value

    async def start(self) -> None:
        if self._partitions is None:
            return
        config = self.config
        self._group = self._partitions.group(
            self.z or "global",
            self.id,
            _number(config, "partitions"),
            self._process,
            strategy=config.strategy,
            max_deliveries=_number(config, "maxDeliveries"),
            inflight=_number(config, "inflight"),
            retry_delay=_number(config, "retryDelay") / 1000,
            retry_delay_max=_number(config, "retryDelayMax") / 1000,
            on_stopped=self._stopped,
        )
        await self._group.start()
        self.status("green", "dot", "cluster")

    async def close(self, removed: bool) -> None:
        group, self._group = self._group, None
        if group is not None:
            await group.close()
            if self._partitions is not None:
                self._partitions.forget(group)

    def on_input(self, msg: Msg) -> None:
        """Alone: check the key and pass the message on."""
        self.key_of(msg)
        self.send(msg)

    async def on_batch(self, msgs: list[Msg]) -> list[BaseException | None]:
        """In a cluster: append the batch to the partitions' streams (one pipeline)."""
        group = self._group
        if group is None:
            return [NodeError("partition: not started")] * len(msgs)
        results: list[BaseException | None] = []
        items = []
        for msg in msgs:
            try:
                items.append((self.key_of(msg), msg))
                results.append(None)
            except NodeError as exc:
                results.append(exc)
        try:
            await group.add(items)
        except ValueError as exc:
            return [NodeError(f"partition: {exc}")] * len(msgs)
        return results

    async def _process(self, entries: list[Any]) -> list[BaseException | str | None]:
        """Send one partition's batch on, in order per key: a key's next message goes on once its previous one is
        done downstream (and, unless failures are skipped, did not fail: the rest of that key is held back, to
        come again after it). Answers once every message is done or held back."""
        loop = asyncio.get_running_loop()
        finished = loop.create_future()
        results: list[BaseException | str | None] = [None] * len(entries)
        left = [len(entries)]
        completion = self.completion
        skip = self.config.strategy == "skip"
        chains: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            try:
                key = repr(self.key_of(entry.msg))
            except NodeError:
                key = f"\x00{index}"  # no key (it had one when written): on its own
            chains.setdefault(key, []).append(index)

        def finish(index: int, result: BaseException | str | None) -> None:
            results[index] = result
            left[0] -= 1
            if left[0] == 0 and not finished.done():
                finished.set_result(None)

        def go(chain: list[int], position: int) -> None:
            index = chain[position]
            entry = entries[index]
            msg = entry.msg
            msg["_streamId"] = f"{entry.partition}/{entry.id}"
            msg["_partition"] = entry.partition
            ticket: list[Any] = []

            def done() -> None:
                failed = ticket[0].failed
                finish(index, failed)
                if position + 1 < len(chain):
                    if failed is None or (skip and not ticket[0].abandoned):  # abandoned: a deploy gave up
                        loop.call_soon(go, chain, position + 1)
                    else:
                        for later in chain[position + 1 :]:
                            finish(later, HELD_BACK)

            completion.track(msg, done)
            ticket.append(completion.ticket_of(msg))
            self.send(msg)
            completion.release(msg)

        for chain in chains.values():
            go(chain, 0)
        await finished
        return results

    def _stopped(self, partition: int, error: Any) -> None:
        self.status("red", "ring", f"partition {partition} stopped: {error}")
        self.error(f"partition {partition} stopped: {error}")
