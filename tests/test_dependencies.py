"""Every third-party module the package imports is a declared dependency, and what is installed fits the ranges.

The imports are read from the sources (every `import x` / `from x import ...`, also inside functions), mapped to
the distributions that provide them, and compared with `[project] dependencies` in pyproject.toml.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("runtime", "nodes", "editor", "package")


def imported_top_names(folder: Path) -> dict[str, set[str]]:
    """Top-level names of absolute imports in the .py files under `folder`: name -> files importing it."""
    names: dict[str, set[str]] = {}
    for file in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"), str(file))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                names.setdefault(module.split(".")[0], set()).add(str(file.relative_to(REPO)))
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Imported top-level names that are neither the standard library nor sofiaflow itself."""
    found: dict[str, set[str]] = {}
    for folder in SOURCE_FOLDERS:
        for name, files in imported_top_names(REPO / folder).items():
            if name in sys.stdlib_module_names or name in ("__future__", "sofiaflow"):
                continue
            found.setdefault(name, set()).update(files)
    return found


def declared_requirements() -> list[Requirement]:
    with open(REPO / "pyproject.toml", "rb") as file:
        project = tomllib.load(file)["project"]
    return [Requirement(text) for text in project["dependencies"]]


def test_the_scan_finds_what_the_package_imports():
    found = third_party_imports()
    assert "runtime/mqtt/broker.py" in found["amqtt"]
    assert "nodes/mqtt/mqtt_client.py" in found["paho"]  # `import paho.mqtt.client as paho`
    assert "json" not in found and "sofiaflow" not in found


def test_every_imported_module_comes_from_a_declared_distribution():
    providers = metadata.packages_distributions()
    declared = {canonicalize_name(req.name) for req in declared_requirements()}
    undeclared = {}
    for name, files in sorted(third_party_imports().items()):
        distributions = {canonicalize_name(dist) for dist in providers.get(name, [])}
        if not distributions:
            undeclared[name] = f"no installed distribution provides it (imported in {sorted(files)})"
        elif not distributions & declared:
            undeclared[name] = f"from {sorted(distributions)}, imported in {sorted(files)}"
    assert not undeclared, f"add these to [project] dependencies in pyproject.toml: {undeclared}"


def test_installed_versions_are_inside_the_declared_ranges():
    """The ranges name the versions the tests run against: a pin that excludes them is wrong."""
    outside = {}
    for req in declared_requirements():
        installed = metadata.version(req.name)
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            outside[req.name] = f"{installed} is installed, pyproject.toml says {req.specifier}"
    assert not outside, outside
