"""Libraries only some flows need are loaded on first use, not by a server that starts and loads every node type."""

from __future__ import annotations

import subprocess
import sys

LAZY = ("networkx", "sqlglot", "bs4", "soupsieve")


def test_starting_a_server_with_every_node_type_loads_none_of_the_lazy_libraries():
    code = (
        "import sys\n"
        "import sofiaflow.runtime.server\n"
        "from sofiaflow.runtime.flows.registry import default_registry\n"
        "default_registry()\n"
        f"print(sorted(m for m in {LAZY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_the_html_nodes_serializers_are_still_importable_from_its_module():
    from sofiaflow.nodes.parser import html_node

    assert html_node.inner_html.__module__ == "sofiaflow.nodes.parser.html_doc"
