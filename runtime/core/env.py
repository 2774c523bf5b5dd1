"""Environment variables of tabs, subflows, groups and the global config, and `${VAR}` substitution."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from sofiaflow.runtime.core import jsonata_expr
from sofiaflow.runtime.core.typedinput import parse_number

_WHOLE = re.compile(r"^\$\{([^}]+)\}$|^\$\(([^)]+)\)$")


def evaluate_env(
    entries: list[dict], parent: Callable[[str], Any], creds: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Evaluate a Node-RED `env` list ([{name, value, type}]) into a dict; later names see earlier ones."""
    out: dict[str, Any] = {}

    def lookup(name: str) -> Any:
        return out[name] if name in out else parent(name)

    for entry in entries or []:
        if not isinstance(entry, dict) or not entry.get("name"):
            continue
        name, value, kind = entry["name"], entry.get("value"), entry.get("type", "str")
        try:
            if kind == "num":
                out[name] = parse_number(value)
            elif kind == "bool":
                out[name] = value is True or str(value).lower() == "true"
            elif kind == "json":
                out[name] = json.loads(value) if isinstance(value, str) else value
            elif kind == "env":
                out[name] = substitute_template(str(value), lookup)
            elif kind == "date":
                out[name] = int(time.time() * 1000)
            elif kind == "jsonata":
                out[name] = jsonata_expr.evaluate(str(value), None)
            elif kind == "cred":
                out[name] = (creds or {}).get(name, value)
            else:
                out[name] = value
        except Exception:  # a bad env entry resolves to its raw text, as Node-RED does
            out[name] = value
    return out


def substitute_template(text: str, lookup: Callable[[str], Any]) -> Any:
    """`NAME` or `${A}-${B}`: the value of NAME, or the template with each variable filled in."""
    if "${" not in text:
        return lookup(text)
    return re.sub(
        r"\$\{([^}]+)\}", lambda m: "" if lookup(m.group(1)) is None else str(lookup(m.group(1))), text
    )


def whole_env_ref(value: Any) -> str | None:
    """The variable a property names when its whole value is `${VAR}` or `$(VAR)`, else None."""
    if isinstance(value, str) and value.startswith("$"):
        m = _WHOLE.match(value)
        if m:
            return m.group(1) or m.group(2)
    return None


def substitute_properties(value: Any, lookup: Callable[[str], Any]) -> Any:
    """Replace every string property that is exactly `${VAR}` (or `$(VAR)`), recursively. A variable that is
    not set (None) leaves the property as written, as Node-RED's `mapEnvVarProperties` does."""
    if isinstance(value, str):
        if value.startswith("$"):
            m = _WHOLE.match(value)
            if m:
                resolved = lookup(m.group(1) or m.group(2))
                return value if resolved is None else resolved
        return value
    if isinstance(value, dict):
        return {
            k: (v if k in ("id", "type", "z", "wires") else substitute_properties(v, lookup))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [substitute_properties(v, lookup) for v in value]
    return value
