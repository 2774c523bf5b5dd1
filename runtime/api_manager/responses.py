"""JSON answers of the API Manager, encoded once and sent as they are.

msgspec encodes them (about ten times faster than the standard library's encoder, a large share of a query's
cost): JSON values give the same JSON. Values JSON has no type for never come out of the SQL real-time DB (it
stores JSON) and only reach an answer from documents other programs wrote into MongoDB: those follow msgspec
(dates in ISO 8601, bytes in base64, sets as arrays); anything else is its `str()`. Not-a-number floats are
`null` (the standard library wrote `NaN`, which JSON does not have)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from starlette.responses import Response


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


_encoder = msgspec.json.Encoder(enc_hook=_default)


def encode(body: Any) -> bytes:
    """`body` as compact UTF-8 JSON (see the module docstring)."""
    try:
        return _encoder.encode(body)
    except (TypeError, ValueError, OverflowError, UnicodeEncodeError, msgspec.MsgspecError):
        # what msgspec refuses (lone surrogates, ints over 64 bits...): the standard library, as before
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_default)
        return text.encode("utf-8")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(body), status, headers=headers, media_type="application/json")
