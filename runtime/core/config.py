"""Typed node configuration: the pydantic base model and Node-RED-tolerant field types.

Node-RED often stores numbers and booleans as strings (`"port": "1883"`, `"checkall": "true"`),
and empty strings for "not set". The annotated types here accept both forms.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict


def _to_bool(value: Any) -> Any:
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes", "on"):
            return True
        if low in ("false", "0", "no", "off", ""):
            return False
    if value is None:
        return False
    return value


def _to_number_or_none(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            return None
        return text
    return value


NRBool = Annotated[bool, BeforeValidator(_to_bool)]
"""A boolean that also accepts "true"/"false"/""."""

NRInt = Annotated[int | None, BeforeValidator(_to_number_or_none)]
"""An integer that also accepts numeric strings; "" means not set (None)."""

NRFloat = Annotated[float | None, BeforeValidator(_to_number_or_none)]
"""A number that also accepts numeric strings; "" means not set (None)."""


class NodeConfig(BaseModel):
    """Stored properties of a node. Unknown properties are allowed and kept, as in Node-RED."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    id: str
    type: str
    name: str | None = ""
    z: str | None = None
    g: str | None = None
    d: NRBool = False
    wires: list[list[str]] = []
