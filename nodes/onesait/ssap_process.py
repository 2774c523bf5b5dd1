"""ssap process: serve the SSAP request in msg.payload (sessions, rights, ontology data) and answer it."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from sofiaflow.nodes.onesait.broker_config import broker_of
from sofiaflow.nodes.onesait.platform_only import refuse_in_tenant_flow
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, new_message, ssap

MAX_IN_FLIGHT = 64
"""Requests served at the same time; more wait for a slot."""


class SsapProcessConfig(NodeConfig):
    broker: str = Field(
        "",
        title="SSAP broker",
        description="The ssap-broker config node holding the sessions.",
        json_schema_extra={"x-config": "ssap-broker"},
    )


class SsapProcessNode(Node[SsapProcessConfig]):
    type = "ssap process"
    category = "onesait"
    color = "#8fbce6"
    inputs = 1
    outputs = 2
    Config = SsapProcessConfig
    help = (
        "Serves the SSAP request in msg.payload (JOIN, LEAVE, INSERT, QUERY NATIVE/SQL, UPDATE, DELETE, "
        "SUBSCRIBE...) with the ssap-broker's sessions and the ontology data; msg.payload becomes the SSAP "
        "answer (output 1). INDICATIONs of subscriptions leave on output 2. Wire both to ssap response."
    )

    auto_done = False

    def setup(self) -> None:
        refuse_in_tenant_flow(self)
        if not self.config.broker:
            raise NodeError("ssap process: property 'broker' (an ssap-broker config node) is required")
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)

    def on_input(self, msg: Msg) -> None:
        # requests are served concurrently (bounded): one slow query must not hold up every client
        self.spawn(self._serve(msg))

    async def _serve(self, msg: Msg) -> None:
        async with self._slots:
            try:
                processor = broker_of(self, self.config.broker).processor
                if processor is None:
                    raise NodeError("ssap process: its ssap-broker is not running")
                info = msg.get("ssap") if isinstance(msg.get("ssap"), dict) else {}
                transport = "mqtt" if info.get("transport") == "mqtt" else "http"
                msg["payload"] = await processor.handle(
                    msg.get("payload"), transport, self._sink(transport, info.get("reply"))
                )
            except Exception as exc:  # noqa: BLE001 - reported to catch nodes like any node error
                # the client still gets its answer at once (not a gateway timeout)
                msg["payload"] = ssap.error(msg.get("payload"), ssap.PROCESSOR, f"the request failed: {exc}")
                self.send([msg, None])
                self.done(msg, exc)
                return
            self.send([msg, None])
            self.done(msg)

    def _sink(self, transport: str, reply: Any):
        def sink(session: Any, subscription: dict[str, Any], envelope: dict[str, Any]) -> None:
            out = new_message(payload=envelope)
            out["ssap"] = {
                "transport": transport,
                "reply": reply,
                "subscription": subscription["id"],
                "callback": subscription.get("callback"),
                "clientId": subscription.get("clientId"),
            }
            self.send([None, out])

        return sink
