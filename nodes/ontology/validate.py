"""ontology-validate: checks a message against an ontology's JSON Schema; valid on output 1, invalid on 2."""

from __future__ import annotations

from typing import Any

from sofiaflow.nodes.ontology.common import MISSING, OntologyConfig, OntologyNode
from sofiaflow.runtime.api import Msg, NodeError


class OntologyValidateNode(OntologyNode[OntologyConfig]):
    type = "ontology-validate"
    needs_right = None
    label = "validate"
    outputs = 2
    needs_store = False
    help = (
        "Validates `msg.payload` (an object, or an array of objects) against the chosen ontology's schema. "
        "Valid messages leave on output 1; invalid ones on output 2 with `msg.errors` (path, message, "
        "validator; `index` for array items)."
    )

    def setup_node(self) -> None:
        try:
            self.registry.validator(self.ontology)  # compile (and cache) the schema at deploy
        except Exception as exc:  # noqa: BLE001 - a stored schema that no longer compiles refuses the deploy
            raise NodeError(f"ontology {self.ontology!r}: its schema cannot be used: {exc}") from None

    def on_input(self, msg: Msg) -> None:
        value = self.get_prop(msg)
        if value is MISSING:
            raise NodeError(f"msg.{self.prop} has no value to validate")
        errors = self.check(value)
        if errors:
            msg["errors"] = errors
            self.send([None, msg])
            return
        msg.pop("errors", None)
        self.send([msg, None])

    def check(self, value: Any) -> list[dict[str, Any]]:
        validate = self.registry.validate
        if isinstance(value, list):
            errors: list[dict[str, Any]] = []
            for index, item in enumerate(value):
                errors.extend({**e, "index": index} for e in validate(self.ontology, item))
            return errors
        return validate(self.ontology, value)
