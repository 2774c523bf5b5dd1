"""The server's access log without secrets: values of secret-looking query parameters become `***`.

Devices join with `?token=...`, browsers may carry `access_token`, scripts `apikey` or `password`:
uvicorn logs the whole request target, so a filter on its access logger rewrites each record first.
"""

from __future__ import annotations

import logging
from urllib.parse import unquote_plus

ACCESS_LOGGER = "uvicorn.access"
MASK = "***"
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


def is_secret_name(name: str) -> bool:
    """Whether a query parameter's name looks like it carries a secret (`token`, `X-Api-Key`, `sessionKey`...)."""
    plain = unquote_plus(name).lower().replace("-", "").replace("_", "").replace(".", "")
    return plain in _SECRET_NAMES or any(word in plain for word in _SECRET_WORDS) or plain.endswith("key")


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
        parts.append(f"{name}={MASK}" if eq and is_secret_name(name) else pair)
    return f"{path}?{'&'.join(parts)}{fragment}"


class RedactSecrets(logging.Filter):
    """Rewrites every string argument (and a preformatted message) of an access log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_target(a) if isinstance(a, str) and "?" in a else a for a in record.args
            )
        if isinstance(record.msg, str) and "?" in record.msg and not record.args:
            record.msg = " ".join(redact_target(word) for word in record.msg.split(" "))
        return True


def redact_access_log(logger_name: str = ACCESS_LOGGER) -> None:
    """Put the filter on the access logger (once; call it after uvicorn has configured logging)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
