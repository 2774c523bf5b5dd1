"""A message as it is stored on a partition's Redis stream (and in the dead letters): one field "m" holding JSON,
bytes kept as `{"$bytes": <base64>}`, the properties that cannot cross workers dropped."""

from __future__ import annotations

import base64
import json
from typing import Any

DROPPED_KEYS = frozenset(("req", "res"))
"""Message properties that cannot cross workers (an HTTP request's live objects): not written to the stream."""


def stream_key(flow: str, node: str, partition: int) -> str:
    """The Redis stream of partition `partition` of partition node `node` of `flow`."""
    return f"part:{flow}:{node}:{partition}"


def _encode_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    raise TypeError(type(value).__name__)


def _decode_hook(obj: dict[str, Any]) -> Any:
    if len(obj) == 1 and "$bytes" in obj and isinstance(obj["$bytes"], str):
        return base64.b64decode(obj["$bytes"])
    return obj


def encode_message(msg: dict[str, Any]) -> str:
    """The JSON a message is stored as (bytes kept; `req`/`res` dropped); ValueError naming what cannot be."""
    body = {k: v for k, v in msg.items() if k not in DROPPED_KEYS}
    try:
        return json.dumps(body, default=_encode_default, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the message cannot be written to a partition stream: {exc} is not JSON") from None


def decode_message(text: str | bytes) -> dict[str, Any]:
    return json.loads(text, object_hook=_decode_hook)


def as_text(value: Any) -> str:
    """A Redis reply value (bytes or not) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def message_field(fields: dict[Any, Any]) -> Any:
    """The "m" field of an entry's field mapping (keys text or bytes)."""
    return fields["m"] if "m" in fields else fields[b"m"]


def flat_message_field(flat: list[Any]) -> Any:
    """The "m" field of an entry as a script returns it (a flat field/value list)."""
    for k in range(0, len(flat) - 1, 2):
        if as_text(flat[k]) == "m":
            return flat[k + 1]
    raise ValueError("a partition stream entry without its message")
