"""Shared fixtures: test node types registered in a registry beside the built-in ones."""

from __future__ import annotations

import os
import shutil

import pytest

from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError
from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry


class DoubleNode(Node):
    """Test node: doubles msg.payload (raises on non-numbers)."""

    type = "test double"

    def on_input(self, msg: Msg) -> None:
        if not isinstance(msg.get("payload"), (int, float)):
            raise NodeError(f"cannot double {msg.get('payload')!r}")
        msg["payload"] *= 2
        self.send(msg)


class SlowConfig(NodeConfig):
    seconds: float = 0.05


class SlowNode(Node):
    """Test node: an async handler that takes a while."""

    type = "test slow"
    Config = SlowConfig

    async def on_input(self, msg: Msg) -> None:
        import asyncio

        await asyncio.sleep(self.config.seconds)
        self.send(msg)


class TimedNode(Node):
    """Test node: an async handler that waits `seconds` on the runtime's clock (virtual in a FlowTester)."""

    type = "test timed"
    Config = SlowConfig

    async def on_input(self, msg: Msg) -> None:
        import asyncio

        done = asyncio.get_running_loop().create_future()
        self.call_later(self.config.seconds, lambda: done.done() or done.set_result(None))
        await done
        self.send(msg)


class MutateNode(Node):
    """Test node: mutates the payload list in place."""

    type = "test mutate"

    def on_input(self, msg: Msg) -> None:
        msg["payload"].append("mutated")
        self.send(msg)


class CounterConfig(NodeConfig):
    label_: str = ""


class CounterNode(Node):
    """Test node: counts messages on the instance and in node context; emits the count."""

    type = "test counter"
    Config = CounterConfig
    starts = 0
    closes: list = []

    def setup(self) -> None:
        self.seen = 0

    async def start(self) -> None:
        CounterNode.starts += 1

    async def close(self, removed: bool) -> None:
        CounterNode.closes.append((self.id, removed))

    def on_input(self, msg: Msg) -> None:
        self.seen += 1
        self.context.set("total", (self.context.get("total") or 0) + 1)
        msg["payload"] = {"seen": self.seen, "total": self.context.get("total")}
        self.send(msg)


@pytest.fixture
def registry() -> NodeRegistry:
    reg = NodeRegistry()
    for cls in default_registry().types():
        reg.register(cls, default_registry().origin(cls.type))
    for cls in (DoubleNode, SlowNode, TimedNode, MutateNode, CounterNode):
        reg.register(cls, "tests")
    return reg


def require_binary(name: str) -> str:
    """The path of `name`, or skip (fail under SOFIAFLOW_REQUIRE_SERVERS=1) when it is missing."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1":
            pytest.fail(f"{name} is required (SOFIAFLOW_REQUIRE_SERVERS=1) but not installed")
        pytest.skip(f"{name} is not installed")
    return path


# Runtimes made by tests run no embedded MQTT broker unless a test asks for one (settings.mqtt_port).
os.environ.setdefault("SOFIAFLOW_MQTT_PORT", "0")
# ...and start with no flows: the default IoT Broker flow is deployed only where a test asks for it.
os.environ.setdefault("SOFIAFLOW_DEFAULT_FLOWS", "")
