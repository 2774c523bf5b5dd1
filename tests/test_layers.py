"""The layers, read from the source (AST, no imports): nodes see only `sofiaflow.runtime.api`, touch no private
attribute of runtime objects and use typed service keys; the runtime imports neither nodes nor the editor; the
editor imports only the runtime modules listed here."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_API = "sofiaflow.runtime.api"

THIRD_PARTY_PRIVATES = {
    # (module, attribute): reason. Private attributes of libraries, not of the runtime; pyproject pins the series.
    ("nodes/mqtt/mqtt_client.py", "_out_packet"): "paho-mqtt's queue of unsent packets",
    ("nodes/mqtt/mqtt_client.py", "_sock"): "paho-mqtt's socket",
    ("nodes/mqtt/mqtt_client.py", "_loop_rc_handle"): "paho-mqtt's loop result handler",
    ("nodes/function/js_sandbox.py", "_exit"): "os._exit: a wedged V8 worker ends at once (standard library)",
    ("nodes/function/js_isolate.py", "_ctx"): "mini-racer's context (evaluation without its thread hop)",
    ("nodes/function/js_isolate.py", "_python_to_value_handle"): "mini-racer's context (as above)",
    ("nodes/function/js_isolate.py", "_dll"): "mini-racer's library handle (as above)",
    (
        "nodes/function/js_isolate.py",
        "_non_cancelable_mr_task_results_queue",
    ): "mini-racer's results (as above)",
    ("nodes/function/js_isolate.py", "_value_handle_to_python"): "mini-racer's context (as above)",
}

EDITOR_MAY_IMPORT = {
    # The facade, its errors and service keys, and the public models and errors of what the control panel shows.
    "sofiaflow.runtime.runtime",
    "sofiaflow.runtime.errors",
    "sofiaflow.runtime.core.services",
    "sofiaflow.runtime.core.metrics",
    "sofiaflow.runtime.cluster.dead_letters",
    "sofiaflow.runtime.data.alarms",
    "sofiaflow.runtime.data.ontologies",
    "sofiaflow.runtime.data.rtdb",
    "sofiaflow.runtime.data.schema",
    "sofiaflow.runtime.flows.import_report",
    "sofiaflow.runtime.security.auth",
    "sofiaflow.runtime.security.devices",
    "sofiaflow.runtime.security.permissions",
}


def _modules(folder: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(encoding="utf-8"), str(path))


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, module) for every absolute import; `from a import b` yields `a.b` as well as `a`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            if node.module in ("sofiaflow", "sofiaflow.runtime"):
                for alias in node.names:
                    yield node.lineno, f"{node.module}.{alias.name}"


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _runtime_imports_of_nodes(path: str, tree: ast.Module) -> list[str]:
    allowed = {"sofiaflow.runtime", RUNTIME_API}
    return [
        f"{path}:{line}: imports {module}"
        for line, module in _imports(tree)
        if _within(module, "sofiaflow.runtime") and module not in allowed
    ]


def _private_touches(path: str, tree: ast.Module) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or not node.attr.startswith("_") or node.attr.startswith("__"):
            continue
        owner = node.value
        if node.attr == "_engine":  # not even a node's own: what a node needs of the engine, Node offers
            found.append(f"{path}:{node.lineno}: touches {ast.unparse(node)}")
            continue
        if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
            continue
        if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "super":
            continue
        if (path, node.attr) in THIRD_PARTY_PRIVATES:
            continue
        found.append(f"{path}:{node.lineno}: touches {ast.unparse(node)}")
    return found


def _string_service_lookups(path: str, tree: ast.Module) -> list[str]:
    return [
        f"{path}:{node.lineno}: {ast.unparse(node)} (use a ServiceKey from {RUNTIME_API})"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "service"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ]


def _node_offences() -> list[str]:
    found = []
    for path, tree in _modules("nodes"):
        found += _runtime_imports_of_nodes(path, tree)
        found += _private_touches(path, tree)
        found += _string_service_lookups(path, tree)
    return found


def test_nodes_use_only_the_runtime_api():
    assert _node_offences() == []


def test_the_runtime_imports_neither_nodes_nor_the_editor():
    found = [
        f"{path}:{line}: imports {module}"
        for path, tree in _modules("runtime")
        for line, module in _imports(tree)
        if _within(module, "sofiaflow.nodes") or _within(module, "sofiaflow.editor")
    ]
    assert found == []


def test_only_tests_use_the_test_harness():
    found = [
        f"{path}:{line}: imports {module}"
        for folder in ("nodes", "editor")
        for path, tree in _modules(folder)
        for line, module in _imports(tree)
        if _within(module, "sofiaflow.runtime.testing")
    ]
    assert found == []


def test_the_editor_imports_only_the_listed_runtime_modules():
    found = [
        f"{path}:{line}: imports {module}"
        for path, tree in _modules("editor")
        for line, module in _imports(tree)
        if _within(module, "sofiaflow.runtime")
        and module != "sofiaflow.runtime"
        and not any(_within(module, allowed) for allowed in EDITOR_MAY_IMPORT)
    ]
    assert found == []


def test_the_checks_see_offences():
    """The checks themselves: each finds what it is for in a made-up module."""
    bad = ast.parse(
        "from sofiaflow.runtime.core.engine import Engine\n"
        "from sofiaflow.runtime import settings\n"
        "x = node._engine.services\n"
        "self.service('http')\n"
    )
    assert len(_runtime_imports_of_nodes("m.py", bad)) == 2  # the engine module, settings
    assert [o.split(": ", 1)[1] for o in _private_touches("m.py", bad)] == ["touches node._engine"]
    assert len(_string_service_lookups("m.py", bad)) == 1
    good = ast.parse(
        "from sofiaflow.runtime.api import Node\nself._x = super()._y\nself.service(HTTP_ROUTES)\n"
    )
    assert _runtime_imports_of_nodes("m.py", good) + _private_touches("m.py", good) == []
    assert _string_service_lookups("m.py", good) == []


def test_the_api_loads_only_what_a_node_takes():
    """The sandbox workers take a few names from the api; that must not load the whole runtime into them."""
    script = (
        "import sys\n"
        "from sofiaflow.runtime.api import NodeError, clone_message\n"
        "heavy = [m for m in ('sofiaflow.runtime.core.engine', 'sqlalchemy', 'pydantic') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"
