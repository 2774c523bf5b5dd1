"""junction: a pure fan-in/fan-out point."""

from __future__ import annotations

from sofiaflow.runtime.api import Msg, Node


class JunctionNode(Node):
    type = "junction"
    category = "common"
    color = "#d9d9d9"
    help = "Passes every message on unchanged; used to tidy wiring."

    def on_input(self, msg: Msg) -> None:
        self.send(msg)
