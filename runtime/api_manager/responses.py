"""JSON answers of the API Manager, encoded once and sent as they are."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    return str(value)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_default)
    return Response(text.encode("utf-8"), status, headers=headers, media_type="application/json")
