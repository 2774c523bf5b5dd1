"""The runtime side of a subflow instance: its input forwards into the copied subflow nodes."""

from __future__ import annotations

from typing import Any

from sofiaflow.runtime.core.node import Node


class SubflowInstanceNode(Node):
    """Receives on the instance's input and passes the message to the subflow's entry nodes."""

    type = "subflow"
    category = "internal"
    help = "An instance of a subflow (created by the runtime)."

    def on_input(self, msg: dict[str, Any]) -> None:
        self.send(msg)
