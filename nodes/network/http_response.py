"""http response: answers the request in `msg.res` with `msg.payload`, as Express's `res.send` would.

Status: the node's `statusCode` > `msg.statusCode` > 200. Headers: the node's win, `msg.headers` fill
the missing names. `msg.cookies` sets (`value` or `{value, maxAge (ms), path, domain, ...}`) or clears
(`null` or `{value: null}`) cookies. Objects are sent as JSON, strings as text/html, bytes as
application/octet-stream, numbers as their text.
"""

from __future__ import annotations

import re
import time
from email.utils import formatdate
from typing import Any
from urllib.parse import quote

from pydantic import Field

from sofiaflow.nodes.jsvalues import js_json_stringify, js_string
from sofiaflow.nodes.network.http_in import HttpResponseHandle
from sofiaflow.nodes.network.http_util import headers_hash
from sofiaflow.runtime.api import UNDEFINED, Msg, Node, NodeConfig, NodeError, js_number_string

HASH_HEADER = "x-node-red-request-node"  # set by http request on the response headers it outputs

_INT = re.compile(r"\s*([+-]?\d+)")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")
_NO_BODY = (204, 304)
_SKIPPED = frozenset(("content-length", "transfer-encoding"))
_JSON = b"application/json; charset=utf-8"
_HTML = b"text/html; charset=utf-8"
_BINARY = b"application/octet-stream"
_EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"
_COOKIE_SAFE = "!'()*-._~"  # what encodeURIComponent leaves as is
_SAMESITE = {"strict": "Strict", "lax": "Lax", "none": "None"}


class HttpResponseConfig(NodeConfig):
    statusCode: Any = Field(
        "",
        title="Status code",
        description="e.g. 200 or 404; blank: msg.statusCode (200 when missing).",
        json_schema_extra={"x-widget": "text"},
    )
    headers: Any = Field(
        {},
        title="Headers",
        description="Response headers to set.",
        json_schema_extra={"x-widget": "keyvalue"},
    )


def parse_int(value: Any) -> int | None:
    """JavaScript's parseInt for status codes: 201, "201", "201 Created" -> 201; "", None, "x" -> None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value == value and abs(value) != float("inf") else None
    m = _INT.match(str(value))
    return int(m.group(1)) if m else None


def with_charset(ctype: str) -> str:
    """Express's setCharset(type, "utf-8"): any charset parameter replaced by utf-8."""
    parts = [p.strip() for p in ctype.split(";")]
    params = [p for p in parts[1:] if p and not p.lower().startswith("charset=")]
    return "; ".join([parts[0], *params, "charset=utf-8"])


def _header_value(value: Any) -> str:
    return value if value.__class__ is str else js_string(value)


def _encode(name: str, value: str) -> tuple[bytes, bytes]:
    """(name, value) as raw header bytes; NodeError for what Node.js refuses (bad names, CR/LF/NUL, non-latin-1)."""
    if not _TOKEN.match(name):
        raise NodeError(f"invalid header name {name!r}")
    if _BAD_VALUE.search(value):
        raise NodeError(f"header {name!r}: the value has a line break or NUL character")
    try:
        return name.lower().encode("ascii"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise NodeError(f"header {name!r}: value {value!r} has characters a header cannot carry") from None


class HttpResponseNode(Node[HttpResponseConfig]):
    type = "http response"
    category = "network"
    color = "rgb(231, 231, 174)"
    inputs = 1
    outputs = 0
    Config = HttpResponseConfig
    help = (
        "Answers the request of an http in node with msg.payload (objects as JSON). Status: the node's, "
        "else msg.statusCode, else 200; the node's headers win over msg.headers; msg.cookies sets or clears "
        "cookies."
    )

    def setup(self) -> None:
        cfg = self.config
        raw = str(cfg.statusCode).strip() if cfg.statusCode is not None else ""
        self._status = parse_int(raw) if raw else None
        if raw and (self._status is None or not 100 <= self._status <= 999):
            raise NodeError(
                f"http response: property 'statusCode' must be an HTTP status (100-999), not {raw!r}"
            )
        headers = cfg.headers or {}
        if not isinstance(headers, dict):
            raise NodeError("http response: property 'headers' must be an object of header names to values")
        self._headers: list[tuple[bytes, bytes]] = []
        self._ctype: str | None = None
        for name, value in headers.items():
            if not _TOKEN.match(str(name)):
                raise NodeError(f"http response: property 'headers': {name!r} is not a valid header name")
            lname = name.lower()
            if lname in _SKIPPED:
                continue
            if lname == "content-type":
                self._ctype = _content_type(_header_value(value))
                _encode(lname, self._ctype)
                continue
            for v in value if isinstance(value, list) else (value,):
                self._headers.append(_encode(name, _header_value(v)))
        self._names = frozenset(h[0] for h in self._headers) | ({b"content-type"} if self._ctype else set())

    def on_input(self, msg: Msg) -> None:
        res = msg.get("res")
        if not isinstance(res, HttpResponseHandle):
            self.warn("No response object")  # Node-RED warns (and calls done)
            return
        if res.answered:
            raise NodeError("the response was already sent (or the request timed out)")
        try:
            self._answer(msg, res)
        except NodeError as exc:
            if not res.answered:  # Node-RED leaves the client hanging; we say why
                body = js_json_stringify({"code": "bad_response", "message": str(exc)}).encode()
                res.send(500, [(b"content-type", _JSON), (b"content-length", str(len(body)).encode())], body)
            raise

    def _answer(self, msg: Msg, res: HttpResponseHandle) -> None:
        status = self._status or parse_int(msg.get("statusCode")) or 200
        if not 100 <= status <= 999:
            raise NodeError(f"invalid status code {status} (msg.statusCode)")
        headers = list(self._headers)
        ctype = self._ctype
        extra = msg.get("headers")
        if extra and isinstance(extra, dict) and not _unchanged_response_headers(extra):
            names = self._names
            for name, value in extra.items():
                lname = str(name).lower()
                key = lname.encode("latin-1", "replace")
                if key in names or lname in _SKIPPED or lname == HASH_HEADER:
                    continue
                if lname == "content-type":
                    if ctype is None:
                        ctype = _content_type(_header_value(value))
                        _encode(lname, ctype)  # refuses line breaks
                    continue
                for v in value if isinstance(value, list) else (value,):
                    headers.append(_encode(lname, _header_value(v)))
        cookies = msg.get("cookies")
        if cookies and isinstance(cookies, dict):
            for name, spec in cookies.items():
                if not _TOKEN.match(str(name)):
                    raise NodeError(f"msg.cookies: invalid cookie name {name!r}")
                headers.append(_encode("set-cookie", _cookie(str(name), spec)))
        body, ctype = _body(msg.get("payload", UNDEFINED), ctype, headers)
        if status in _NO_BODY:
            body = b""
        elif ctype is not None:
            headers.append((b"content-type", ctype.encode("latin-1") if ctype.__class__ is str else ctype))
        if status not in _NO_BODY:
            headers.append((b"content-length", str(len(body)).encode()))
        res.send(status, headers, body)


def _unchanged_response_headers(headers: dict) -> bool:
    """msg.headers an `http request` node got back and nobody changed since: Node-RED does not send them on."""
    mark = headers.get(HASH_HEADER)
    if mark is None:
        return False
    return headers_hash({k: v for k, v in headers.items() if k != HASH_HEADER}) == mark


def _content_type(value: str) -> str:
    """What Express's res.set keeps for Content-Type: text/* types get `; charset=utf-8` when they have none."""
    if value.lower().startswith("text/") and "charset=" not in value.lower():
        return value + "; charset=utf-8"
    return value


def _body(payload: Any, ctype: str | None, headers: list) -> tuple[bytes, str | bytes | None]:
    cls = payload.__class__
    if cls is str:
        return payload.encode("utf-8"), (_HTML if ctype is None else with_charset(ctype))
    if cls is bytes or cls is bytearray or cls is memoryview:
        return bytes(payload), (_BINARY if ctype is None else ctype)
    if payload is UNDEFINED:
        return b"", ctype
    if cls is int or cls is float:
        return js_number_string(payload).encode(), (_HTML if ctype is None else with_charset(ctype))
    text = js_json_stringify(payload)
    if ctype is None:
        headers.append((b"x-content-type-options", b"nosniff"))
        return text.encode("utf-8"), _JSON
    return text.encode("utf-8"), with_charset(ctype)


def _cookie(name: str, spec: Any) -> str:
    """A Set-Cookie value as Express's res.cookie / res.clearCookie write it."""
    if spec is None or (isinstance(spec, dict) and "value" in spec and spec["value"] is None):
        opts = dict(spec) if isinstance(spec, dict) else {}
        opts.pop("maxAge", None)
        opts["expires"] = 0
        return _serialize(name, "", opts)
    if isinstance(spec, dict):
        value = spec.get("value", UNDEFINED)
        opts = dict(spec)
    else:
        value, opts = spec, {}
    if isinstance(value, (dict, list)):
        text = "j:" + js_json_stringify(value)
    else:
        text = "undefined" if value is UNDEFINED else js_string(value)
    max_age = opts.get("maxAge")
    if isinstance(max_age, (int, float)) and not isinstance(max_age, bool):
        opts["expires"] = time.time() * 1000 + max_age
        opts["maxAge"] = max_age / 1000
    return _serialize(name, text, opts)


def _serialize(name: str, value: str, opts: dict) -> str:
    """cookie.serialize: name=value; Max-Age; Domain; Path; Expires; HttpOnly; Secure; SameSite."""
    out = [f"{name}={quote(value, safe=_COOKIE_SAFE)}"]
    if isinstance(opts.get("maxAge"), (int, float)):
        out.append(f"Max-Age={int(opts['maxAge'] // 1)}")
    if opts.get("domain"):
        out.append(f"Domain={opts['domain']}")
    out.append(f"Path={opts.get('path') or '/'}")
    expires = opts.get("expires")
    if expires is not None:
        out.append(f"Expires={_date(expires)}")
    if opts.get("httpOnly"):
        out.append("HttpOnly")
    if opts.get("secure"):
        out.append("Secure")
    same = opts.get("sameSite")
    if same is True:
        out.append("SameSite=Strict")
    elif isinstance(same, str) and same.lower() in _SAMESITE:
        out.append(f"SameSite={_SAMESITE[same.lower()]}")
    return "; ".join(out)


def _date(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _EPOCH if value <= 1 else formatdate(value / 1000, usegmt=True)
    if hasattr(value, "timestamp"):
        return formatdate(value.timestamp(), usegmt=True)
    return str(value)
