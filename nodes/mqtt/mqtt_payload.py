"""MQTT payloads and MQTT v5 properties, converted as Node-RED's 10-mqtt.js does.

Outgoing (`encode`): bytes raw, strings UTF-8, None empty, dicts and lists as JSON, numbers and
booleans as JavaScript's `String()` writes them. Incoming (`decode`): the `mqtt in` output types
`auto-detect` (string if UTF-8, then parsed JSON if valid), `auto` (string or bytes), `utf8`,
`buffer`, `json` (error if invalid) and `base64`; for MQTT v5 a content type or a UTF-8 format
indicator is honoured first. v5 message properties map to the msg fields Node-RED uses.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sofiaflow.nodes.jsvalues import js_json_stringify, js_number_string
from sofiaflow.runtime.api import UNDEFINED, ValidationError

DATATYPES = ("auto-detect", "auto", "utf8", "buffer", "json", "base64")

_KNOWN_MEDIA_TYPES = {
    "text/css": "string",
    "text/html": "string",
    "text/plain": "string",
    "application/xml": "string",
    "application/json": "json",
    **{
        t: "buffer"
        for t in (
            "application/octet-stream",
            "application/pdf",
            "application/x-gtar",
            "application/x-gzip",
            "application/x-tar",
            "application/zip",
            "audio/aac",
            "audio/ac3",
            "audio/basic",
            "audio/mp4",
            "audio/ogg",
            "image/bmp",
            "image/gif",
            "image/jpeg",
            "image/tiff",
            "image/png",
        )
    },
}

INVALID_JSON_PARSE = "Failed to parse JSON string"
INVALID_JSON_STRING = "Invalid JSON string"


class PayloadError(ValidationError):
    """A payload the chosen output type cannot take (Node-RED reports it with the message)."""


def _reject(name: str) -> Any:
    raise ValueError(name)


_JSON = json.JSONDecoder(parse_constant=_reject)  # JSON.parse refuses NaN and Infinity
_parse_json = _JSON.decode


def encode(value: Any) -> bytes:
    """msg.payload as the bytes Node-RED's broker node publishes."""
    cls = value.__class__
    if cls is bytes:
        return value
    if cls is str:
        return value.encode("utf-8", "surrogatepass")
    if value is None or value is UNDEFINED:
        return b""
    if cls is bytearray or cls is memoryview:
        return bytes(value)
    if cls is bool:
        return b"true" if value else b"false"
    if cls is int or cls is float:
        return js_number_string(value).encode()
    if isinstance(value, str):
        return str(value).encode("utf-8", "surrogatepass")
    return js_json_stringify(value).encode("utf-8", "surrogatepass")


def _text(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode(payload: bytes, datatype: str, fields: dict[str, Any] | None = None) -> Any:
    """The msg.payload `mqtt in` emits for `payload` (raises PayloadError for bad JSON)."""
    if datatype == "buffer":
        return payload
    if datatype == "base64":
        return base64.b64encode(payload).decode("ascii")
    if datatype == "utf8":
        return payload.decode("utf-8", "replace")
    v5_utf8 = bool(fields) and fields.get("payloadFormatIndicator") is True
    if datatype == "json":
        text = payload.decode("utf-8", "replace") if v5_utf8 else _text(payload)
        if text is None:
            raise PayloadError(INVALID_JSON_STRING)
        try:
            return _parse_json(text)
        except ValueError:
            raise PayloadError(INVALID_JSON_PARSE) from None
    detect = datatype == "auto-detect"  # anything else behaves as "auto" (legacy), as in Node-RED
    content_type = fields.get("contentType") if fields else None
    if v5_utf8 or content_type:
        kind = _KNOWN_MEDIA_TYPES.get(str(content_type).lower())
        if kind == "string":
            return payload.decode("utf-8", "replace")
        if kind == "buffer":
            return payload
        if kind == "json":
            text = payload.decode("utf-8", "replace")
            try:
                obj = _parse_json(text)
            except ValueError:
                raise PayloadError(INVALID_JSON_PARSE) from None
            return obj if detect else text
        text = payload.decode("utf-8", "replace") if v5_utf8 else _text(payload)
    else:
        text = _text(payload)
    if text is None:
        return payload
    if detect and text:
        first = text[0]
        if first in '{["-0123456789tfn \t\r\n':  # cheap pre-check: only these can start JSON
            try:
                return _parse_json(text)
            except ValueError:
                pass
    return text


# ----- MQTT v5 properties ----------------------------------------------------------------------------------------


def user_properties(value: Any) -> dict[str, str] | None:
    """Node-RED's setUserProperties: string values kept, others as JSON; None when nothing is left."""
    if not isinstance(value, dict) or not value:
        return None
    out: dict[str, str] = {}
    for key, val in value.items():
        if isinstance(val, str):
            out[str(key)] = val
        elif val is not None and val is not UNDEFINED:
            try:
                out[str(key)] = js_json_stringify(val)
            except Exception:  # noqa: BLE001 - Node-RED silently drops what cannot be stringified
                continue
    return out or None


def _int(value: Any, low: int | None = None) -> int | None:
    try:
        number = int(float(value)) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or (low is not None and number < low):
        return None
    return number


def publish_properties(msg: dict[str, Any]) -> Properties | None:
    """paho PUBLISH properties from msg.responseTopic, correlationData, contentType, ... (v5 only)."""
    props = Properties(PacketTypes.PUBLISH)
    found = False
    value = msg.get("responseTopic")
    if value and isinstance(value, str):
        props.ResponseTopic, found = value, True
    value = msg.get("correlationData")
    if value:
        props.CorrelationData = value if isinstance(value, bytes) else encode(value)
        found = True
    value = msg.get("contentType")
    if value and isinstance(value, str):
        props.ContentType, found = value, True
    if "messageExpiryInterval" in msg:
        number = _int(msg["messageExpiryInterval"], 0)
        if number is not None:
            props.MessageExpiryInterval, found = number, True
    users = user_properties(msg.get("userProperties"))
    if users:
        props.UserProperty, found = list(users.items()), True
    pfi = msg.get("payloadFormatIndicator")
    if pfi is True or pfi == "true":
        props.PayloadFormatIndicator, found = 1, True
    return props if found else None


def message_fields(props: Any) -> dict[str, Any]:
    """msg fields from the v5 properties of a received PUBLISH (empty when there are none)."""
    if props is None:
        return {}
    out: dict[str, Any] = {}
    if getattr(props, "ResponseTopic", None):
        out["responseTopic"] = props.ResponseTopic
    if getattr(props, "CorrelationData", None) is not None:
        out["correlationData"] = bytes(props.CorrelationData)
    if getattr(props, "ContentType", None):
        out["contentType"] = props.ContentType
    if hasattr(props, "MessageExpiryInterval"):
        out["messageExpiryInterval"] = props.MessageExpiryInterval
    if hasattr(props, "PayloadFormatIndicator"):
        out["payloadFormatIndicator"] = props.PayloadFormatIndicator == 1
    users = getattr(props, "UserProperty", None)
    if users:
        out["userProperties"] = {k: v for k, v in users}
    device = getattr(props, "PublishingDevice", None)  # the embedded broker's in-process path only
    if device:
        out["device"] = device
    return out
