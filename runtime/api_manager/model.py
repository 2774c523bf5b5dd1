"""What a published API is made of, as immutable data: the API (`ApiSpec`), its operations (`EndpointSpec`)
and their parameters (`Parameter`). Built from node configuration by `api_spec` / `endpoint_spec`, which raise
`SpecError` naming the bad property."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sofiaflow.runtime.api_manager.template import QueryTemplate, compile_template
from sofiaflow.runtime.errors import ValidationError

STATES = ("development", "published", "deprecated")
"""development: only the owner and administrators may call it; deprecated: callable, with a Deprecation header."""
OPERATIONS = ("query", "getById", "insert", "update", "delete", "flow")
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
LOCATIONS = ("path", "query", "header", "body")
TYPES = ("string", "integer", "number", "boolean")
RESERVED_QUERY = ("limit", "offset")
"""Query parameters every query operation takes for pagination."""
RIGHT_OF = {"query": "QUERY", "getById": "QUERY", "insert": "INSERT", "update": "INSERT", "delete": "INSERT"}

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
_SEGMENT = re.compile(r"^(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|[A-Za-z0-9_.~-]+)$")
_STATE_ALIASES = {"created": "development"}


class SpecError(ValidationError):
    """A bad API or operation definition; the message names the property."""


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    location: str
    type: str = "string"
    required: bool = False
    description: str = ""


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """One API: `name` and `version` make its URL `/api-manager/server/api/v{version}/{name}`."""

    name: str
    version: int
    description: str = ""
    state: str = "development"
    quota: int = 0
    """Calls per minute allowed per API key; 0: no limit."""
    owner: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"


FlowHandler = Callable[[Any], Awaitable[Any]]
"""For `flow` operations: called with the `ApiCall`, returns the starlette Response the flow gave."""


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One operation of an API: method, path template (`/{id}`, `/byZone`), parameters and what answers."""

    method: str
    path: str
    operation: str
    parameters: tuple[Parameter, ...] = ()
    ontology: str | None = None
    template: QueryTemplate | None = None
    sort: tuple[tuple[str, int], ...] | None = None
    summary: str = ""
    description: str = ""
    regex: re.Pattern[str] = field(default=re.compile("^/$"), compare=False)

    @property
    def path_names(self) -> tuple[str, ...]:
        return tuple(self.regex.groupindex)

    def params_in(self, location: str) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.location == location)


# ----- building from configuration ---------------------------------------------------------------------------------


def api_spec(
    name: Any,
    version: Any,
    description: Any = "",
    state: Any = "development",
    quota: Any = 0,
    owner: Any = "",
) -> ApiSpec:
    """An ApiSpec from configuration values; SpecError naming the bad property."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise SpecError(
            f"property 'name' must be 1-100 letters, digits, '_', '.' or '-' starting with a letter, "
            f"got {name!r}"
        )
    version = _whole(version, "version", 1)
    if not isinstance(state, str) or _STATE_ALIASES.get(state.lower(), state.lower()) not in STATES:
        raise SpecError(f"property 'state' must be one of {', '.join(STATES)}, got {state!r}")
    quota = _whole(quota if quota not in (None, "") else 0, "quota", 0)
    if owner is not None and not isinstance(owner, str):
        raise SpecError(f"property 'owner' must be a user name, got {owner!r}")
    return ApiSpec(
        name,
        version,
        str(description or ""),
        _STATE_ALIASES.get(state.lower(), state.lower()),
        quota,
        owner or None,
    )


def _whole(value: Any, prop: str, minimum: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > 1_000_000_000:
        raise SpecError(f"property {prop!r} must be a whole number >= {minimum}, got {value!r}")
    return value


def parameter(raw: Any, index: int) -> Parameter:
    """One entry of the `parameters` list: {name, in, type, required, description}."""
    where = f"property 'parameters' [{index}]"
    if not isinstance(raw, dict):
        raise SpecError(f"{where} must be an object {{name, in, type, required}}, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not _PARAM_NAME.match(name):
        raise SpecError(f"{where}: 'name' must be letters, digits, '_', '.' or '-', got {name!r}")
    location = raw.get("in", "query")
    if location not in LOCATIONS:
        raise SpecError(f"{where} ({name}): 'in' must be one of {', '.join(LOCATIONS)}, got {location!r}")
    ptype = raw.get("type", "string") or "string"
    if ptype not in TYPES:
        raise SpecError(f"{where} ({name}): 'type' must be one of {', '.join(TYPES)}, got {ptype!r}")
    required = raw.get("required", False)
    if isinstance(required, str):
        required = required.strip().lower() in ("true", "1", "yes")
    if location == "path":
        required = True
    if location == "query" and name in RESERVED_QUERY:
        raise SpecError(f"{where}: query parameters 'limit' and 'offset' are reserved for pagination")
    return Parameter(name, location, ptype, bool(required), str(raw.get("description") or ""))


def compile_path(path: Any) -> re.Pattern[str]:
    """The regex of a path template (`/`, `/byZone`, `/{id}`, `/zone/{zone}/count`)."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise SpecError(f"property 'path' must start with '/', got {path!r}")
    segments = [s for s in path.split("/")[1:]]
    if segments == [""]:
        return re.compile("^/?$")
    out: list[str] = []
    seen: set[str] = set()
    for seg in segments:
        m = _SEGMENT.match(seg)
        if m is None:
            raise SpecError(f"property 'path': segment {seg!r} of {path!r} must be a name or {{param}}")
        if m.group(1):
            if m.group(1) in seen:
                raise SpecError(f"property 'path': parameter {{{m.group(1)}}} appears twice in {path!r}")
            seen.add(m.group(1))
            out.append(f"/(?P<{m.group(1)}>[^/]+)")
        else:
            out.append("/" + re.escape(seg))
    if path.rstrip("/") + "/" == "/openapi.json/":
        raise SpecError("property 'path': /openapi.json is reserved for the API's OpenAPI document")
    return re.compile("^" + "".join(out) + "/?$")


def endpoint_spec(config: dict[str, Any]) -> EndpointSpec:
    """An EndpointSpec from an `api-endpoint` node's properties; SpecError naming the bad property."""
    method = str(config.get("method") or "GET").upper()
    if method not in METHODS:
        raise SpecError(
            f"property 'method' must be one of {', '.join(METHODS)}, got {config.get('method')!r}"
        )
    operation = config.get("operation") or "query"
    if operation not in OPERATIONS:
        raise SpecError(f"property 'operation' must be one of {', '.join(OPERATIONS)}, got {operation!r}")
    path = (config.get("path") or "/").strip()
    regex = compile_path(path)
    raw_params = config.get("parameters") or []
    if not isinstance(raw_params, list):
        raise SpecError(f"property 'parameters' must be a list, got {raw_params!r}")
    params = tuple(parameter(p, i) for i, p in enumerate(raw_params))
    keys = [(p.location, p.name.lower() if p.location == "header" else p.name) for p in params]
    if len(set(keys)) != len(keys):
        raise SpecError("property 'parameters': a name appears twice in the same place")
    in_path = {p.name for p in params if p.location == "path"}
    names = set(regex.groupindex)
    if in_path != names:
        missing, extra = sorted(names - in_path), sorted(in_path - names)
        raise SpecError(
            "property 'parameters': path parameters must match the path's {placeholders}: "
            + (f"undeclared {missing} " if missing else "")
            + (f"not in the path {extra}" if extra else "")
        )
    if any(p.location == "body" for p in params) and method == "GET":
        raise SpecError("property 'parameters': GET operations have no body parameters")
    ontology = (config.get("ontology") or "").strip() or None
    if operation != "flow" and ontology is None:
        raise SpecError(f"property 'ontology' is required for operation {operation!r}")
    template = None
    query = config.get("query")
    if operation in ("query", "update", "delete") and query not in (None, ""):
        template = compile_template(query, {p.name: p.type for p in params})
    if operation in ("getById", "update", "delete") and template is None and "id" not in names:
        raise SpecError(
            f"operation {operation!r} needs a path parameter {{id}} (e.g. path '/{{id}}')"
            + (" or a 'query'" if operation != "getById" else "")
        )
    if operation in ("insert", "update") and method == "GET":
        raise SpecError(f"operation {operation!r} needs a method with a body (POST, PUT or PATCH)")
    return EndpointSpec(
        method,
        path,
        operation,
        params,
        ontology if operation != "flow" else None,
        template,
        _sort(config.get("sort")),
        str(config.get("summary") or config.get("name") or ""),
        str(config.get("description") or ""),
        regex,
    )


def _sort(value: Any) -> tuple[tuple[str, int], ...] | None:
    if value in (None, "", {}):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise SpecError(f"property 'sort' is not JSON: {exc}") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and v in (1, -1) for k, v in value.items()):
        raise SpecError(f"property 'sort' must be an object of field: 1 or -1, got {value!r}")
    return tuple(value.items())
