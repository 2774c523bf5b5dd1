"""Reply handles: how an SSAP answer (or a later INDICATION) goes back over the transport a request came in on.

A handle rides in `msg.ssap.reply` from the gateway node through the flow to `ssap response`; copying a
message keeps the same handle, as Node-RED does with `msg.res`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from sofiaflow.runtime.onesait.ssap import AUTHENTICATION, AUTHORIZATION

log = logging.getLogger("sofiaflow.onesait")
HTTP_STATUS = {AUTHENTICATION: 401, AUTHORIZATION: 403}
INDICATION_TIMEOUT = 10.0


class Reply:
    """Base: `send(envelope)` answers once; `indicate(envelope, subscription)` pushes an INDICATION."""

    answered = False

    def __deepcopy__(self, memo: dict) -> Reply:
        return self

    def send(self, envelope: dict[str, Any]) -> None:
        raise NotImplementedError

    async def indicate(self, envelope: dict[str, Any], subscription: dict[str, Any]) -> None:
        raise NotImplementedError


def _json(status: int, value: Any) -> Response:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status, media_type="application/json")


class RestReply(Reply):
    """Answers the waiting HTTP request: 200 with `body.data` (JOIN: `{"sessionKey"}`), or 401/403/400 with
    onesait's `{ok, error, errorCode}`."""

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future

    @property
    def answered(self) -> bool:  # type: ignore[override]
        return self.future.done()

    def send(self, envelope: dict[str, Any]) -> None:
        if self.future.done():
            return
        body = envelope.get("body") if isinstance(envelope, dict) else None
        if not isinstance(body, dict) or "ok" not in body:
            self.future.set_result(
                _json(
                    500,
                    {
                        "ok": False,
                        "error": "the flow answered with no SSAP response",
                        "errorCode": "PROCESSOR",
                    },
                )
            )
            return
        if body["ok"]:
            self.future.set_result(_json(200, body.get("data")))
        else:
            status = HTTP_STATUS.get(body.get("errorCode"), 400)
            self.future.set_result(
                _json(status, {"ok": False, "error": body.get("error"), "errorCode": body.get("errorCode")})
            )

    async def indicate(self, envelope: dict[str, Any], subscription: dict[str, Any]) -> None:
        """POST the INDICATION to the subscription's callback URL (none given: nothing to do)."""
        url = subscription.get("callback")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return
        import httpx

        async with httpx.AsyncClient(timeout=INDICATION_TIMEOUT) as client:
            try:
                await client.post(url, json=envelope)
            except httpx.HTTPError as exc:
                log.warning("indication to %s failed: %s", url, exc)


class MqttReply(Reply):
    """Publishes the answer on `/topic/message/<clientId>` and INDICATIONs on `indication_topic` (onesait's
    `/topic/subscription`, or one with a `{clientId}` placeholder).

    `requester` is the MQTT client id that sent the request, when the broker knows it: INDICATIONs of its
    SUBSCRIBE go to that client alone (a claimed `clientId` in the body only stands in when no client is known).
    On a shared indication topic (no placeholder) they go through `deliver(client_id, topic, payload)` to that
    client's session only (runtime/onesait/indications.py), never to every subscriber of the topic."""

    def __init__(
        self,
        publish: Callable[[str, bytes], Awaitable[None]],
        client_id: Callable[[dict], str | None],
        spawn: Callable[[Awaitable], Any],
        indication_topic: str = "/topic/subscription",
        *,
        requester: str | None = None,
        deliver: Callable[[str, str, bytes], bool] | None = None,
    ) -> None:
        self._publish, self._client_id, self._spawn = publish, client_id, spawn
        self.indication_topic = indication_topic
        self.requester, self._deliver = requester, deliver
        self.answered = False

    def send(self, envelope: dict[str, Any]) -> None:
        if self.answered:
            return
        self.answered = True
        client = self._client_id(envelope)
        if not client:
            log.warning(
                "SSAP answer dropped: no client id to reply to (messageId %r)", envelope.get("messageId")
            )
            return
        self._spawn(self._publish(f"/topic/message/{client}", json.dumps(envelope).encode()))

    async def indicate(self, envelope: dict[str, Any], subscription: dict[str, Any]) -> None:
        topic = self.indication_topic
        client = self.requester or subscription.get("clientId")
        if not client:
            log.warning("INDICATION dropped: no client to send it to on %s", topic)
            return
        payload = json.dumps(envelope).encode()
        if "{clientId}" in topic:
            await self._publish(topic.replace("{clientId}", str(client)), payload)
        elif self._deliver is None:
            log.warning(
                "INDICATION dropped: %s is shared by every client and no private delivery is at hand", topic
            )
        elif not self._deliver(str(client), topic, payload):
            log.info(
                "INDICATION for MQTT client %r dropped: not connected or not subscribed to %s", client, topic
            )
