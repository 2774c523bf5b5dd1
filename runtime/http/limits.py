"""`RequestLimits`: an ASGI middleware refusing oversized request bodies (413) and JSON nested deeper than
`max_depth` in a JSON body or a query parameter (400), before any route sees them.

Deep nesting is refused at the door because what is accepted gets stored and must be answered later: past a
few hundred levels JSON encoders, schema validators and SQL parsers give up.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

MAX_BODY = 5 * 1024 * 1024  # Node-RED's default apiMaxLength (5mb)
MAX_DEPTH = 64
_STRING = re.compile(rb'"[^"]*"')
_BRACKETS = frozenset(b'"[]{}')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)


def json_depth(data: bytes, limit: int) -> int:
    """The bracket nesting depth of JSON text (strings ignored), counted until it passes `limit`."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return 0
    # escapes go first (an escaped backslash is one unit, then an escaped quote), then everything but quotes
    # and brackets, then the strings: what is left is the brackets outside strings (each step in C)
    text = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in _STRING.sub(b"", text):
        if byte == 91 or byte == 123:  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        else:
            depth -= 1
    return deepest


async def _answer(send: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"code": code, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestLimits:
    """See the module docstring."""

    def __init__(self, app: Any, max_body: int = MAX_BODY, max_depth: int = MAX_DEPTH) -> None:
        self.app = app
        self.max_body = max_body
        self.max_depth = max_depth

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if (
            query
            and json_depth(
                query.replace(b"%5B", b"[").replace(b"%7B", b"{").replace(b"%5b", b"[").replace(b"%7b", b"{"),
                self.max_depth,
            )
            > self.max_depth
        ):
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if json_depth(value.encode("utf-8", "replace"), self.max_depth) > self.max_depth:
                    await _answer(
                        send,
                        400,
                        "too_deep",
                        f"query parameter {name!r}: JSON nested deeper than {self.max_depth} levels",
                    )
                    return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"").strip()
        if length.isdigit() and int(length) > self.max_body:
            await _answer(send, 413, "too_large", f"the request body is over {self.max_body} bytes")
            return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS") and not length.strip(b"0"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _answer(send, 413, "too_large", f"the request body is over {self.max_body} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        mime = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        looks_json = mime.endswith(b"json") or body.lstrip()[:1] in (b"[", b"{")
        if looks_json and json_depth(body, self.max_depth) > self.max_depth:
            await _answer(
                send, 400, "too_deep", f"the JSON body is nested deeper than {self.max_depth} levels"
            )
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
