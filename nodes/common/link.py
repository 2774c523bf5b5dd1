"""link in / link out / link call: virtual wires between flows, and link-call subroutines."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, NRFloat


class LinkConfig(NodeConfig):
    links: list[str] = Field(
        [],
        title="Links",
        description="The link nodes this one is connected to.",
        json_schema_extra={"x-widget": "nodes"},
    )
    mode: str = Field(
        "link",
        title="Mode",
        json_schema_extra={
            "x-choices": [
                ["link", "send to all connected link nodes"],
                ["return", "return to the calling link node"],
            ]
        },
    )


class LinkInNode(Node[LinkConfig]):
    type = "link in"
    category = "common"
    color = "#dddddd"
    Config = LinkConfig
    help = "Receives messages from link out / link call nodes on any flow."

    def on_input(self, msg: Msg) -> None:
        self.send(msg)


class LinkOutNode(Node[LinkConfig]):
    type = "link out"
    category = "common"
    color = "#dddddd"
    outputs = 0
    Config = LinkConfig
    help = (
        "Sends to the chosen link in nodes (mode `link`), or answers the link call that sent the "
        "message (mode `return`)."
    )

    def setup(self) -> None:
        self._targets = list(dict.fromkeys(self.config.links))

    def _all_targets(self) -> list[str]:
        # either side of a link is enough: also take link in nodes that list this node
        extra = [
            n.id
            for n in self.peers("link in")
            if self.id in (n.config.links or []) and n.id not in self._targets
        ]
        return self._targets + extra

    def on_input(self, msg: Msg) -> None:
        if self.config.mode == "return":
            stack = msg.get("_linkSource")
            if not stack:
                raise NodeError("link out (return): the message did not come from a link call")
            entry = stack.pop()
            if not stack:
                msg.pop("_linkSource", None)
            caller = self.peer(entry.get("node"))
            if not isinstance(caller, LinkCallNode):
                raise NodeError(
                    "link out (return): the link call that sent the message is gone or out of reach"
                )
            caller.returned(entry.get("id"), msg)
            return
        msg["_event"] = f"node:{self.id}"
        first = True
        from sofiaflow.runtime.api import clone_message

        for target in self._all_targets():
            self.deliver(target, msg if first else clone_message(msg))
            first = False


class LinkCallConfig(NodeConfig):
    linkType: str = Field(
        "static",
        title="Link type",
        json_schema_extra={
            "x-choices": [["static", "fixed target"], ["dynamic", "dynamic target (msg.target)"]]
        },
    )
    links: list[str] = Field(
        [],
        title="Call",
        description="The link in node this node calls.",
        json_schema_extra={"x-widget": "nodes", "x-show-if": {"linkType": "static"}},
    )
    timeout: NRFloat = Field(
        30.0, title="Timeout (seconds)", description="Fail the message when no answer comes back in time."
    )


class LinkCallNode(Node[LinkCallConfig]):
    type = "link call"
    category = "common"
    color = "#dddddd"
    Config = LinkCallConfig
    help = (
        "Calls a flow that starts with a link in node and ends with a link out in `return` mode; "
        "sends on the answer. `linkType: dynamic` takes the target from `msg.target` (name or id)."
    )

    def setup(self) -> None:
        self._waiting: dict[str, Any] = {}
        self._seq = 0

    def on_input(self, msg: Msg) -> None:
        if self.config.linkType == "dynamic":
            target = msg.get("target")
            node = self.peer(target)  # never another tenant's link in
            if node is None or node.type != "link in":
                matches = [n for n in self.peers("link in") if n.name == target]
                if len(matches) != 1:
                    raise NodeError(f"link call: no single link in node named or with id {target!r}")
                node = matches[0]
            target_id = node.id
        else:
            if not self.config.links:
                raise NodeError("link call: no link in node selected")
            target_id = self.config.links[0]
        self._seq += 1
        call_id = f"{self.id}:{self._seq}"
        msg.setdefault("_linkSource", []).append({"id": call_id, "node": self.id})
        timeout = self.config.timeout if self.config.timeout and self.config.timeout > 0 else 30.0
        self._waiting[call_id] = (msg, self.call_later(timeout, lambda: self._timeout(call_id)))
        if not self.deliver(target_id, msg):
            self._waiting.pop(call_id)[1].cancel()
            raise NodeError(f"link call: target {target_id!r} is not running")

    def returned(self, call_id: Any, msg: Msg) -> None:
        entry = self._waiting.pop(call_id, None)
        if entry is None:
            return
        entry[1].cancel()
        self.send(msg)

    def _timeout(self, call_id: str) -> None:
        entry = self._waiting.pop(call_id, None)
        if entry is not None:
            msg = entry[0]
            stack = msg.get("_linkSource") or []
            if stack and stack[-1].get("id") == call_id:
                stack.pop()
            self.error(NodeError("timeout waiting for the linked flow to return"), msg)

    async def close(self, removed: bool) -> None:
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        await asyncio.sleep(0)
