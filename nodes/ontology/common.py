"""What the ontology nodes share: the base config, service access, JSON/mustache config fields, and the
in-process change hub that `ontology-subscribe` listens to.

Services: the ontology registry is the runtime service ``"ontologies"`` (runtime/data/ontologies.py) and the data
lives in the real-time DB service ``"rtdb"`` (runtime/rtdb). Both are looked up in `setup()`, so a runtime
without them, or a node naming an unknown ontology, refuses the deploy with a NodeError naming it.

Writes go through the runtime's ``"ontology-data"`` service (runtime/data/ontology_data.py), which validates, adds
`contextData` and publishes each change on the ``"ontology-events"`` hub, so `ontology-subscribe` sees every
write, whoever made it (flows, gateways, the admin API). A bare engine (tests) gets both built on first use
(runtime/flows/service_defaults.py).

Mustache in JSON fields (`query`, `update`, ...): the text is tokenized once at deploy. ``{{payload.x}}``
inserts the value escaped for use *inside a JSON string* (so write ``"{{payload.id}}"`` with the quotes;
numbers, booleans and null render as their JSON text, so ``{"$gt": {{payload.min}}}`` works);
``{{{payload.x}}}`` / ``{{& payload.x}}`` insert the value as JSON (objects, arrays, quoted strings). A
missing value renders as nothing. Sections and partials are refused. The rendered text is then parsed as
JSON. Text without tags is parsed once at deploy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from chevron.tokenizer import ChevronError, tokenize
from pydantic import Field

from sofiaflow.runtime.api import (
    ONTOLOGIES,
    PERMISSIONS,
    RTDB,
    Msg,
    Node,
    NodeConfig,
    NodeError,
    ServiceKey,
    props,
)

log = logging.getLogger("sofiaflow.nodes.ontology")
S = TypeVar("S")
OC = TypeVar("OC", bound="OntologyConfig")

CATEGORY = "ontology"
COLOR = "#9fc5e8"


class OntologyConfig(NodeConfig):
    ontology: str = Field(
        "",
        title="Ontology",
        json_schema_extra={"x-choices": "ontologies"},
        description="The ontology (data model) this node works on",
    )
    property: str = Field(
        "payload", title="Message property", description="The msg property holding the data (msg.payload)."
    )


# ----- the base node --------------------------------------------------------------------------------------------


class OntologyNode(Node[OC]):
    """Base of the ontology nodes: resolves the services and checks the ontology in `setup()`."""

    category = CATEGORY
    color = COLOR
    Config = OntologyConfig
    needs_store = True
    needs_right: str | None = "QUERY"
    """The right on the ontology the flow's owner needs for this node: QUERY, INSERT, or None."""

    def setup(self) -> None:
        name = (self.config.ontology or "").strip()
        if not name:
            raise NodeError("ontology: no ontology chosen")
        self.ontology = name
        try:
            self.registry = self.service(ONTOLOGIES)
        except NodeError as exc:
            raise NodeError(
                f"ontology {name!r}: {exc} (ontology nodes need the runtime's ontology registry)"
            ) from None
        try:
            exists = self.registry.exists(name)
        except Exception as exc:  # noqa: BLE001 - a config DB failure refuses the deploy with its reason
            raise NodeError(f"ontology {name!r}: cannot check the ontology registry: {exc}") from None
        if not exists:
            raise NodeError(f"ontology: no ontology named {name!r}")
        if self.needs_store:
            try:
                self.store = self.service(RTDB)
            except NodeError as exc:
                raise NodeError(f"ontology {name!r}: {exc} (the real-time database)") from None
        if self.needs_right:
            self._check_right(name, self.needs_right)
        prop = self.config.property or "payload"
        try:
            props.parse_path(prop)
        except Exception as exc:  # noqa: BLE001
            raise NodeError(f"property: {prop!r} is not a message property path: {exc}") from None
        self.prop = prop
        self.setup_node()

    def _check_right(self, name: str, needed: str) -> None:
        """The node acts with the rights of its flow's owner: refuse the deploy when the owner lacks `needed`."""
        if self.owner is None:
            return  # no owner: the runtime's own flow
        try:
            permissions = self.service(PERMISSIONS)
        except NodeError:
            return  # a runtime without permissions enforces no rights
        try:
            permissions.check(self.owner, name, needed)
        except PermissionError:
            raise NodeError(
                f"ontology {name!r}: the flow's owner {self.owner!r} has no {needed} right on it "
                "(share the ontology with them, or move the node to a flow of someone who has)"
            ) from None

    def setup_node(self) -> None:
        """Per-type preparation (override)."""

    def optional_service(self, key: ServiceKey[S]) -> S | None:
        """The runtime service under `key`, None when this runtime offers none."""
        try:
            return self.service(key)
        except NodeError:
            return None

    def get_prop(self, msg: Msg) -> Any:
        return props.get_path(msg, self.prop, _MISSING)


_MISSING = object()
MISSING = _MISSING


# ----- JSON / mustache config fields ------------------------------------------------------------------------------


def compile_json_field(
    text: Any, field: str, expect: type | tuple[type, ...] = dict, check: Callable[[Any], Any] | None = None
) -> Callable[[Msg], Any] | None:
    """A function msg -> parsed value for a JSON config field with mustache parameters, None when empty.

    A value already parsed (a dict in the flow JSON) is taken as is. `check` (e.g. a filter validator) runs
    at deploy when the text has no parameters, and on every rendering otherwise."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        value = _checked(text, field, expect, check)
        return lambda msg: value
    try:
        tokens = list(tokenize(text))
    except ChevronError as exc:
        raise NodeError(f"{field}: invalid Mustache template: {' '.join(str(exc).split())}") from None
    parts: list[Any] = []
    for tag, key in tokens:
        if tag == "literal":
            parts.append(key)
        elif tag in ("variable", "no escape"):
            parts.append((tag == "no escape", key.strip()))
        elif tag == "comment":
            continue
        else:
            raise NodeError(
                f"{field}: Mustache {tag} tags are not supported in JSON fields; use {{{{path}}}} "
                "or {{{{{{path}}}}}}"
            )
    if all(isinstance(p, str) for p in parts):
        value = _checked(_parse(text, field), field, expect, check)
        return lambda msg: value

    def render(msg: Msg) -> Any:
        out: list[str] = []
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(_render_value(_lookup(msg, part[1]), part[0]))
        return _checked(_parse("".join(out), field, rendered=True), field, expect, check)

    return render


def _checked(
    value: Any, field: str, expect: type | tuple[type, ...], check: Callable[[Any], Any] | None
) -> Any:
    if not isinstance(value, expect) or isinstance(value, bool):
        names = expect.__name__ if isinstance(expect, type) else " or ".join(t.__name__ for t in expect)
        kind = {"dict": "object", "list": "array"}
        raise NodeError(f"{field}: must be a JSON {kind.get(names, names)}, got {json.dumps(value)[:80]}")
    if check is not None:
        try:
            check(value)
        except Exception as exc:  # noqa: BLE001 - the store's validators raise RtdbError subclasses
            raise NodeError(f"{field}: {exc}") from None
    return value


def _parse(text: str, field: str, rendered: bool = False) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        what = "the rendered text" if rendered else "the text"
        raise NodeError(f"{field}: {what} is not JSON ({exc}): {text[:120]}") from None


def _lookup(msg: Msg, name: str) -> Any:
    if name == ".":
        return msg
    value: Any = msg
    for part in name.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _render_value(value: Any, raw: bool) -> str:
    if value is None:
        return ""
    if raw:
        return json.dumps(value, default=str)
    if isinstance(value, str):
        return json.dumps(value)[1:-1]
    if isinstance(value, (bool, int, float, list, dict)):
        return json.dumps(value, default=str)
    return json.dumps(str(value))[1:-1]


def msg_object(msg: Msg, key: str) -> dict[str, Any] | None:
    """`msg[key]` when it is an object (overrides the config), None when absent; NodeError otherwise."""
    value = msg.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise NodeError(f"msg.{key} must be an object, got {type(value).__name__}")
    return value


def store_error(node: OntologyNode, operation: str, exc: Exception) -> NodeError:
    return NodeError(f"ontology {node.ontology!r}: {operation} failed: {exc}")
