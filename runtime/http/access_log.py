"""The server's access log: one line per HTTP request, with the values of secret-looking query parameters as `***`.

    2026-12-06T22:30:01Z 127.0.0.1:50412 "GET /iot-broker/rest/client/join?token=*** HTTP/1.1" 200 164 0.9

Fields: time (UTC, to the second), client address, request line, status, body bytes sent, milliseconds from the
request to the end of its answer. The line is written when the answer ends (a request whose app failed before
answering is logged with 500, as uvicorn answers it), by `AccessLog`, an ASGI middleware in front of the whole
server. uvicorn's own access log stays off: it goes through `logging` with a formatter per record, about 15 % of
the CPU of a small API call; here a line is one f-string, and the lines of one event loop turn are written with one
write and one flush.

Devices join with `?token=...`, browsers may carry `access_token`, scripts `apikey` or `password`: the target is
rewritten by `redact_target` before it is written. The setting (`SOFIAFLOW_ACCESS_LOG`, `open_access_log`): "on"
(standard output, the default), "off", "stderr" or a file path (appended). uvicorn logs WebSocket handshakes with
their query on its error logger: `redact_uvicorn_log` puts the same redaction there.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import time
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote_from_bytes, unquote_plus

MASK = "***"
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")
_SECRET_WORDS = (
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "apikey",
    "sessionkey",
    "credential",
    "signature",
    "auth",
)
_SECRET_NAMES = frozenset(("key", "code", "sig", "jwt", "pass"))
_OFF = frozenset(("off", "0", "false", "no", "none"))
_ON = frozenset(("on", "1", "true", "yes", "stdout", ""))
_SAFE = "/?&=%:@!$'()*+,;~[]"
"""Characters of a request target written as they are; the others (space, quote, controls, non-ASCII) as %XX."""

log = logging.getLogger("sofiaflow.access")


def is_secret_name(name: str) -> bool:
    """Whether a query parameter's name looks like it carries a secret (`token`, `X-Api-Key`, `sessionKey`...)."""
    plain = unquote_plus(name).lower().replace("-", "").replace("_", "").replace(".", "")
    return plain in _SECRET_NAMES or any(word in plain for word in _SECRET_WORDS) or plain.endswith("key")


_is_secret = functools.lru_cache(maxsize=1024)(is_secret_name)
"""The same answer, remembered: a server sees the same few parameter names again and again."""


def redact_target(target: str) -> str:
    """`/join?token=abc&x=1` -> `/join?token=***&x=1`; text without a query is returned as it is."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    fragment = ""
    if "#" in query:
        query, _, rest = query.partition("#")
        fragment = "#" + rest
    parts = []
    for pair in query.split("&"):
        name, eq, _value = pair.partition("=")
        parts.append(f"{name}={MASK}" if eq and _is_secret(name) else pair)
    return f"{path}?{'&'.join(parts)}{fragment}"


def request_target(scope: dict) -> str:
    """The request's path and query as received, secrets masked, as printable ASCII with no quote or space (what
    is not is percent-encoded: a path cannot forge a second log line)."""
    raw = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string", b"")
    target = raw + b"?" + query if query else raw
    text = target.decode("latin-1")
    if not (text.isascii() and text.isprintable()) or '"' in text or " " in text:
        text = quote_from_bytes(target, safe=_SAFE)
    return redact_target(text) if query else text


def access_line(scope: dict, status: int, size: int, seconds: float, stamp: str) -> str:
    """The log line of one answered request (`stamp`: its time as text)."""
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "-"
    return (
        f'{stamp} {who} "{scope["method"]} {request_target(scope)} HTTP/{scope.get("http_version", "1.1")}" '
        f"{status} {size} {seconds * 1000:.1f}\n"
    )


class AccessLog:
    """ASGI middleware writing `access_line` for each HTTP request to `stream` (see the module docstring). `app` is
    the wrapped app (the attribute NiceGUI follows to find its server)."""

    def __init__(self, app: Any, stream: TextIO) -> None:
        self.app = app
        self._stream = stream
        self._pending: list[str] = []
        self._second = -1
        self._stamp = ""

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        answer = [500, 0]  # status (500: the app failed before answering, uvicorn answers it so), body bytes

        async def logged_send(message: dict) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                answer[1] += len(message.get("body", b""))
            elif kind == "http.response.start":
                answer[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, logged_send)
        finally:
            self._add(access_line(scope, answer[0], answer[1], time.perf_counter() - started, self._now()))

    def _now(self) -> str:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return self._stamp

    def _add(self, line: str) -> None:
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (closing): written right away
                self._pending.append(line)
                self.flush()
                return
        self._pending.append(line)

    def flush(self) -> None:
        """Write the lines not written yet (the event loop does it after each turn; call it at exit too)."""
        if not self._pending:
            return
        lines = "".join(self._pending)
        self._pending.clear()
        try:
            self._stream.write(lines)
            self._stream.flush()
        except (OSError, ValueError) as exc:  # a full disk or a closed stream must not fail the requests
            log.warning("access log lines lost: %s", exc)

    def close(self) -> None:
        """Write the lines not written yet and close the stream if it is a file of its own."""
        self.flush()
        if self._stream not in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            self._stream.close()


def open_access_log(value: str) -> TextIO | None:
    """The stream the setting `value` names: None for "off", standard output for "on", or a file opened for
    appending. ValueError naming the setting and the file when it cannot be opened."""
    word = value.strip().lower()
    if word in _OFF:
        return None
    if word in _ON:
        return sys.stdout
    if word == "stderr":
        return sys.stderr
    path = Path(value.strip()).expanduser()
    try:
        return open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the server's lifetime
    except OSError as exc:
        raise ValueError(
            f"SOFIAFLOW_ACCESS_LOG: cannot open {str(path)!r} for appending: {exc.strerror or exc}"
        ) from exc


class RedactSecrets(logging.Filter):
    """Rewrites every string argument (and a preformatted message) of a log record that may hold a request
    target (uvicorn's WebSocket handshake lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_target(a) if isinstance(a, str) and "?" in a else a for a in record.args
            )
        if isinstance(record.msg, str) and "?" in record.msg and not record.args:
            record.msg = " ".join(redact_target(word) for word in record.msg.split(" "))
        return True


def redact_uvicorn_log(logger_names: tuple[str, ...] = UVICORN_LOGGERS) -> None:
    """Put the filter on uvicorn's loggers (once each; call it after uvicorn has configured logging)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
