"""Shared fixtures: test node types registered in a registry beside the built-in ones."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

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


# ----- parallel runs: `python -m pytest -n 2` (pytest-xdist; pyproject's addopts choose --dist loadgroup) -----
TESTS = Path(__file__).resolve().parent
SERIAL_GROUP = "serial"
SERIAL_FILES = (
    "test_cluster_*.py",
    "test_partition_*.py",
    "*_cluster.py",
    "test_mqtt_ack_after_processing.py",
    "*_browser.py",
    "test_editor_accessibility.py",
    "test_editor_forms_all_types.py",
    "test_editor_pages.py",
    "test_editor_scenario.py",
)
"""Files whose tests kill servers with SIGKILL, hold leases or start a cluster of servers, and the files that drive
Chromium (their waits and frame times are the first to suffer from a busy neighbour): one worker runs them one
after another (the other worker runs the rest meanwhile). A module can join them with
`pytestmark = pytest.mark.xdist_group("serial")`."""
EARLY_FILES = (
    "test_wheel_install.py",
    "*_browser.py",
    "test_editor_scenario.py",
    "test_editor_accessibility.py",
)
"""Long files, handed out first in a parallel run so that none of them is left alone at its end."""


def xdist_group(item: pytest.Item) -> str:
    """The group `item` runs in: the serial group, a folder with its own conftest (tests/differential: its session
    fixtures start Node-RED and sofiaflow once), or its file (its module fixtures start servers once)."""
    path = Path(item.path).resolve().relative_to(TESTS)
    if any(fnmatch(path.name, pattern) for pattern in SERIAL_FILES):
        return SERIAL_GROUP
    if len(path.parts) > 1:
        return path.parts[0]
    return path.as_posix()


def _rank(item: pytest.Item) -> int:
    """The order parallel workers are handed groups in: the serial group, then long groups, then the rest."""
    mark = item.get_closest_marker("xdist_group")
    if mark is not None and SERIAL_GROUP in (*mark.args, mark.kwargs.get("name")):
        return 0
    path = Path(item.path).resolve().relative_to(TESTS)
    return 1 if len(path.parts) > 1 or any(fnmatch(path.name, p) for p in EARLY_FILES) else 2


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> Iterator[None]:
    """Each test without an xdist_group mark gets one (before pytest-xdist names the groups, so each group runs
    whole on one worker); on a parallel worker the groups are then ordered (a stable sort: each file's tests keep
    their order), which --no-loadscope-reorder keeps."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
    result = yield
    if hasattr(config, "workerinput"):
        items.sort(key=_rank)
    return result
