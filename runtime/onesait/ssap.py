"""SSAP message shapes: request envelopes, the `SSAPBodyReturnMessage` answer and onesait's error codes."""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.errors import SofiaflowError

MESSAGE_TYPES = (
    "JOIN",
    "LEAVE",
    "INSERT",
    "UPDATE",
    "UPDATE_BY_ID",
    "DELETE",
    "DELETE_BY_ID",
    "QUERY",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "INDICATION",
    "COMMAND",
    "STATUS",
    "LOG",
    "START_TRANSACTION",
    "COMMIT_TRANSACTION",
    "ROLLBACK_TRANSACTION",
)
AUTHENTICATION = "AUTENTICATION"  # spelled as onesait spells it
AUTHORIZATION = "AUTHORIZATION"
PROCESSOR = "PROCESSOR"
BODY_TYPES = {
    "JOIN": "SSAPBodyJoinMessage",
    "LEAVE": "SSAPBodyLeaveMessage",
    "INSERT": "SSAPBodyInsertMessage",
    "UPDATE": "SSAPBodyUpdateMessage",
    "UPDATE_BY_ID": "SSAPBodyUpdateByIdMessage",
    "DELETE": "SSAPBodyDeleteMessage",
    "DELETE_BY_ID": "SSAPBodyDeleteByIdMessage",
    "QUERY": "SSAPBodyQueryMessage",
    "SUBSCRIBE": "SSAPBodySubscribeMessage",
    "UNSUBSCRIBE": "SSAPBodyUnsubscribeMessage",
    "INDICATION": "SSAPBodyIndicationMessage",
}


class SsapError(SofiaflowError):
    """A refused request: `code` is AUTENTICATION, AUTHORIZATION or PROCESSOR."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def request(
    message_type: str, body: dict[str, Any], session_key: str | None = None, message_id: str | None = None
) -> dict[str, Any]:
    """A REQUEST envelope (what REST requests are turned into, and what MQTT clients send)."""
    body = {"@type": BODY_TYPES.get(message_type, "SSAPBodyMessage"), **body}
    return {
        "messageId": message_id,
        "sessionKey": session_key,
        "direction": "REQUEST",
        "messageType": message_type,
        "body": body,
    }


def check_request(envelope: Any) -> dict[str, Any]:
    """The envelope if it is a well-formed SSAP request; SsapError(PROCESSOR) naming what is wrong."""
    if not isinstance(envelope, dict):
        raise SsapError(PROCESSOR, f"an SSAP message must be a JSON object, got {type(envelope).__name__}")
    kind = envelope.get("messageType")
    if kind not in MESSAGE_TYPES:
        raise SsapError(PROCESSOR, f"messageType {kind!r} is not an SSAP message type")
    if envelope.get("direction", "REQUEST") != "REQUEST":
        raise SsapError(
            PROCESSOR, f"direction {envelope.get('direction')!r}: only REQUEST messages are served"
        )
    if not isinstance(envelope.get("body", {}), dict):
        raise SsapError(PROCESSOR, "body must be a JSON object")
    return envelope


def response(req: dict[str, Any], data: Any, session_key: str | None = None) -> dict[str, Any]:
    """The RESPONSE to `req`, carrying `data`."""
    return _answer(req, "RESPONSE", {"ok": True, "error": None, "errorCode": None, "data": data}, session_key)


def error(req: Any, code: str, message: str) -> dict[str, Any]:
    """The ERROR answer to `req` (onesait's shape: ok false, error, errorCode)."""
    return _answer(
        req if isinstance(req, dict) else {},
        "ERROR",
        {"ok": False, "error": message, "errorCode": code, "data": None},
        None,
    )


def _answer(
    req: dict[str, Any], direction: str, body: dict[str, Any], session_key: str | None
) -> dict[str, Any]:
    out = {
        "messageId": req.get("messageId"),
        "sessionKey": session_key or req.get("sessionKey"),
        "direction": direction,
        "messageType": req.get("messageType"),
        "body": {"@type": "SSAPBodyReturnMessage", **body},
    }
    if req.get("transactionId") is not None:
        out["transactionId"] = req["transactionId"]
    return out


def indication(ontology: str, subscription_id: str, data: Any, session_key: str | None) -> dict[str, Any]:
    """An INDICATION pushed to a subscriber."""
    return {
        "messageId": None,
        "sessionKey": session_key,
        "direction": "REQUEST",
        "messageType": "INDICATION",
        "body": {
            "@type": "SSAPBodyIndicationMessage",
            "ontology": ontology,
            "subscriptionId": subscription_id,
            "data": data,
        },
    }
