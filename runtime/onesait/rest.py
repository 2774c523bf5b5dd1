"""The REST gateway's routes (onesait's `/iot-broker/rest/...`) turned into SSAP request envelopes."""

from __future__ import annotations

import json
from typing import Any

from sofiaflow.runtime.onesait import ssap
from sofiaflow.runtime.onesait.ssap import PROCESSOR, SsapError

ROUTES: list[tuple[str, str, str]] = [  # (method, path under the base, operation); specific paths first
    ("get", "/client/join", "JOIN"),
    ("get", "/client/leave", "LEAVE"),
    ("post", "/ontology/:ontology/query", "QUERY_POST"),
    ("get", "/ontology/:ontology/update", "UPDATE_GET"),
    ("put", "/ontology/:ontology/update", "UPDATE"),
    ("get", "/ontology/:ontology/delete", "DELETE_GET"),
    ("get", "/ontology/:ontology", "QUERY"),
    ("post", "/ontology/:ontology", "INSERT"),
    ("put", "/ontology/:ontology/:id", "UPDATE_BY_ID"),
    ("delete", "/ontology/:ontology/:id", "DELETE_BY_ID"),
    ("post", "/subscribe/:subscription", "SUBSCRIBE"),
    ("post", "/unsubscribe/:subscriptionId", "UNSUBSCRIBE"),
    ("get", "/transaction/start", "START_TRANSACTION"),
    ("get", "/transaction/commit/:transactionId", "COMMIT_TRANSACTION"),
    ("get", "/transaction/rollback/:transactionId", "ROLLBACK_TRANSACTION"),
]


def _flag(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes")


def _query_text(body: Any, query: dict[str, str], what: str) -> str:
    """A query from the body (a JSON string, raw text or {"query": ...}) or the `query` parameter."""
    text = body.get("query") if isinstance(body, dict) else body
    if text in (None, "") and query.get("query"):
        text = query["query"]
    if not isinstance(text, str) or not text.strip():
        raise SsapError(PROCESSOR, f"{what} needs a query")
    return text


def decode_body(raw: bytes) -> Any:
    """The request body: JSON when it parses, else the text (a bare NATIVE query)."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def to_ssap(
    operation: str, params: dict[str, str], query: dict[str, str], headers: dict[str, str], body: Any
) -> dict[str, Any]:
    """The SSAP request a REST call stands for; SsapError(PROCESSOR) when it lacks what it needs."""
    key = headers.get("authorization")
    if key and key.lower().startswith("bearer "):
        key = key[7:]
    ontology = params.get("ontology")
    ids = _flag(query.get("ids", "false"))
    if operation == "JOIN":
        return ssap.request(
            "JOIN",
            {
                "token": query.get("token"),
                "clientPlatform": query.get("clientPlatform"),
                "clientPlatformInstance": query.get("clientPlatformId"),
            },
            key,
        )
    if operation == "LEAVE":
        return ssap.request("LEAVE", {}, key)
    if operation == "QUERY":
        return ssap.request(
            "QUERY",
            {
                "ontology": ontology,
                "query": query.get("query"),
                "queryType": query.get("queryType", "NATIVE"),
            },
            key,
        )
    if operation == "QUERY_POST":
        qtype = (body.get("queryType") if isinstance(body, dict) else None) or query.get(
            "queryType", "NATIVE"
        )
        return ssap.request(
            "QUERY",
            {"ontology": ontology, "query": _query_text(body, query, "a query"), "queryType": qtype},
            key,
        )
    if operation == "INSERT":
        return ssap.request("INSERT", {"ontology": ontology, "data": body}, key)
    if operation in ("UPDATE", "UPDATE_GET"):
        text = _query_text(body if operation == "UPDATE" else None, query, "an update")
        return ssap.request("UPDATE", {"ontology": ontology, "query": text, "ids": ids}, key)
    if operation == "DELETE_GET":
        return ssap.request(
            "DELETE", {"ontology": ontology, "query": _query_text(None, query, "a delete"), "ids": ids}, key
        )
    if operation == "UPDATE_BY_ID":
        return ssap.request("UPDATE_BY_ID", {"ontology": ontology, "id": params.get("id"), "data": body}, key)
    if operation == "DELETE_BY_ID":
        return ssap.request("DELETE_BY_ID", {"ontology": ontology, "id": params.get("id")}, key)
    if operation == "SUBSCRIBE":
        spec = body if isinstance(body, dict) else {}
        return ssap.request(
            "SUBSCRIBE",
            {
                "subscription": params.get("subscription"),
                "ontology": spec.get("ontology") or query.get("ontology") or params.get("subscription"),
                "queryValue": spec.get("queryValue") or query.get("queryValue"),
                "callback": spec.get("callback") or query.get("callback"),
                "clientId": spec.get("clientId") or query.get("clientId"),
            },
            key,
        )
    if operation == "UNSUBSCRIBE":
        return ssap.request("UNSUBSCRIBE", {"subscriptionId": params.get("subscriptionId")}, key)
    if operation.endswith("_TRANSACTION"):
        envelope = ssap.request(operation, {}, key)
        if params.get("transactionId"):
            envelope["transactionId"] = params["transactionId"]
        return envelope
    raise SsapError(PROCESSOR, f"unknown REST operation {operation!r}")
