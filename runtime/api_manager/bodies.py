"""Reading a call's body: at most `MAX_BODY` bytes, JSON when the operation needs it (strict: no NaN, bounded
nesting), text otherwise. Errors carry the HTTP status to answer with."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from sofiaflow.runtime.errors import ValidationError

MAX_BODY = 1024 * 1024
MAX_DEPTH = 64


class BodyError(ValidationError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(value: Any, limit: int) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            raise BodyError(400, "invalid_body", f"the JSON body nests deeper than {limit} levels")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse_json(raw: bytes) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity, at most MAX_DEPTH levels); BodyError 400 otherwise."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_constant)
    except (ValueError, RecursionError) as exc:
        raise BodyError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:200]}") from None
    _depth(value, MAX_DEPTH)
    return value


async def read_body(request: Request, headers: dict[str, str], json_only: bool) -> Any:
    """The body (None when empty). `json_only`: anything but a JSON media type is 415."""
    length = headers.get("content-length")
    if (
        length is not None
        and length.strip().isascii()
        and length.strip().isdigit()
        and int(length) > MAX_BODY
    ):
        raise BodyError(413, "too_large", f"the body is over {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyError(413, "too_large", f"the body is over {MAX_BODY} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return None
    mime = headers.get("content-type", "").partition(";")[0].strip().lower()
    is_json = mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))
    if is_json:
        return parse_json(raw)
    if json_only:
        raise BodyError(
            415, "unsupported_media_type", f"send the body as application/json, not {mime or 'untyped'}"
        )
    return raw.decode("utf-8", "replace")
