"""`msg.parts`: the sequence marker that split writes and join, sort, batch and switch read.

A message of a sequence carries `parts = {id, index, count, type, ch, ...}`: the sequence's id, its
position, the length once known, and how split cut it (so join can put it back together).
"""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.api import Msg


def sequence_parts(msg: Msg) -> dict[str, Any] | None:
    """`msg.parts` when the message belongs to a sequence (an object with `id` and `index`), else None."""
    parts = msg.get("parts")
    if isinstance(parts, dict) and "id" in parts and "index" in parts:
        return parts
    return None


def unescape(text: str) -> str:
    """Node-RED's handling of a stored separator (`parts.ch`): `\\n`, `\\r`, `\\t`, `\\e`, `\\f`, `\\0` escapes."""
    return (
        text.replace("\\n", "\n")
        .replace("\\r", "\r")
        .replace("\\t", "\t")
        .replace("\\e", "e")
        .replace("\\f", "\f")
        .replace("\\0", "\0")
    )
