"""Stored MQTT properties checked as Node-RED's form would check them, kept in the type they were stored in.

`Qos`: 0, 1, 2 (or "0", "1", "2"; "" when not set); anything else ("high") is refused at deploy with the
property named. `StrBool`: Node-RED's retain flags, true/false or "true"/"false" ("" when not set).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

QOS_CHOICES = [["0", "0 - at most once"], ["1", "1 - at least once"], ["2", "2 - exactly once"]]


def _check_qos(value: Any) -> Any:
    if value is None or value == "":
        return value
    if isinstance(value, bool) or str(value).strip() not in ("0", "1", "2"):
        raise ValueError(f"QoS must be 0, 1 or 2, not {value!r}")
    return value


def _check_flag(value: Any) -> Any:
    if value is None or value == "" or isinstance(value, bool) or value in ("true", "false"):
        return value
    raise ValueError(f"must be true or false, not {value!r}")


Qos = Annotated[
    Any,
    BeforeValidator(_check_qos),
    WithJsonSchema({"enum": [0, 1, 2], "x-choices": QOS_CHOICES}),
]
"""A QoS as stored (2 or "2"); the form offers 0, 1, 2."""

StrBool = Annotated[Any, BeforeValidator(_check_flag), WithJsonSchema({"type": "boolean"})]
"""A flag Node-RED stores as "true"/"false" (kept so), or a boolean."""
