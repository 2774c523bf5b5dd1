"""Node types come from the `sofiaflow.nodes` entry point group, for built-ins and third parties alike."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry


def test_core_nodes_register_through_entry_points():
    reg = default_registry()
    for name in ("catch", "status", "complete", "link in", "link out", "link call", "junction", "comment"):
        assert name in reg, name
        assert reg.origin(name) == "sofiaflow"


def test_palette_description_has_a_schema_per_type():
    entries = {e["type"]: e for e in default_registry().describe()}
    assert "subflow" not in entries or entries["subflow"]["category"] == "internal"
    catch = entries["catch"]
    assert catch["category"] == "common" and catch["inputs"] == 0 and catch["outputs"] == 1
    assert "scope" in catch["schema"]["properties"]


def test_a_pip_installed_package_adds_a_node_type(tmp_path: Path):
    """Build and install a real third-party package into a target dir, then load the registry from it."""
    pkg = tmp_path / "src"
    (pkg / "sofiaflow_hello").mkdir(parents=True)
    (pkg / "sofiaflow_hello" / "__init__.py").write_text(
        textwrap.dedent("""
        from sofiaflow.runtime.api import Node, NodeConfig

        class HelloConfig(NodeConfig):
            greeting: str = "hello"

        class HelloNode(Node):
            type = "hello"
            category = "examples"
            Config = HelloConfig

            def on_input(self, msg):
                msg["payload"] = f"{self.config.greeting} {msg.get('payload')}"
                self.send(msg)
    """)
    )
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "sofiaflow-hello"
        version = "1.0"

        [project.entry-points."sofiaflow.nodes"]
        hello = "sofiaflow_hello:HelloNode"
    """)
    )
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(pkg),
        ],
        check=True,
        timeout=180,
    )
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(target)!r})
        from sofiaflow.runtime.flows.registry import NodeRegistry
        from sofiaflow.runtime.testing import FlowTester
        reg = NodeRegistry(); reg.load_entry_points()
        assert reg.origin("hello") == "sofiaflow-hello", reg.origin("hello")
        flows = [{{"id": "t", "type": "tab"}},
                 {{"id": "h", "type": "hello", "z": "t", "x": 1, "y": 1, "greeting": "hola", "wires": [[]]}}]
        async def main():
            async with FlowTester(flows, reg) as t:
                t.inject("h", {{"payload": "mundo"}})
                await t.idle()
                print(t.payloads("h")[0])
        asyncio.run(main())
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hola mundo"


def test_a_broken_plugin_is_reported_not_fatal(monkeypatch):
    from importlib import metadata

    class _EP:
        name, value, dist = "broken", "no_such_module:Node", None

        def load(self):
            raise ImportError("no module named no_such_module")

    monkeypatch.setattr("sofiaflow.runtime.flows.registry.entry_points", lambda group: [_EP()])
    reg = NodeRegistry()
    reg.load_entry_points()
    assert reg.load_errors == ["broken (no_such_module:Node): no module named no_such_module"]
    assert metadata  # the real entry point machinery is exercised by the test above
