"""Text encodings by Node-RED's names (iconv-lite's): "none" is UTF-8; the rest map to Python codecs."""

from __future__ import annotations

import base64
import codecs

from sofiaflow.runtime.api import NodeError

_ALIASES = {
    "none": "utf-8",
    "utf8": "utf-8",
    "ucs2": "utf-16-le",
    "utf16le": "utf-16-le",
    "binary": "latin-1",
    "iso88591": "latin-1",
}
_SPECIAL = ("base64", "hex")


def codec(name: str | None, where: str) -> str:
    """The Python codec (or "base64"/"hex") for a Node-RED encoding name; NodeError naming `where` if unknown."""
    key = (name or "none").strip().lower()
    if key in _SPECIAL:
        return key
    key = _ALIASES.get(key, key)
    for candidate in (key, key.replace("win", "cp", 1) if key.startswith("win") else key):
        try:
            return codecs.lookup(candidate).name
        except LookupError:
            continue
    raise NodeError(f"{where}: unknown encoding {name!r}")


def encode(text: str, name: str) -> bytes:
    if name == "base64":
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    if name == "hex":
        return bytes.fromhex(text[: len(text) // 2 * 2])
    return text.encode(name, errors="replace")


def decode(data: bytes, name: str) -> str:
    if name == "base64":
        return base64.b64encode(data).decode("ascii")
    if name == "hex":
        return data.hex()
    return data.decode(name, errors="replace")
