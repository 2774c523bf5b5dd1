"""ssap response: send the SSAP answer (or INDICATION) in msg.payload back to the client that asked."""

from __future__ import annotations

from sofiaflow.runtime.api import Msg, Node, NodeError


class SsapResponseNode(Node):
    type = "ssap response"
    category = "onesait"
    color = "#8fbce6"
    inputs = 1
    outputs = 0
    help = (
        "Answers the REST or MQTT request the message came from (msg.ssap.reply) with the SSAP message in "
        "msg.payload; an INDICATION goes to the subscriber (MQTT /topic/subscription, REST callback URL)."
    )

    async def on_input(self, msg: Msg) -> None:
        info = msg.get("ssap")
        reply = info.get("reply") if isinstance(info, dict) else None
        if reply is None or not hasattr(reply, "send"):
            raise NodeError(
                "ssap response: msg.ssap.reply is missing: the message did not come from an ssap gateway node"
            )
        envelope = msg.get("payload")
        if isinstance(envelope, dict) and envelope.get("messageType") == "INDICATION":
            await reply.indicate(envelope, info)
        else:
            reply.send(envelope if isinstance(envelope, dict) else {})
