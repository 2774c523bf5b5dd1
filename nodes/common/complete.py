"""complete: fires when a node in its scope has finished handling a message."""

from __future__ import annotations

from sofiaflow.nodes.common.scoped import ScopedListener


class CompleteNode(ScopedListener):
    type = "complete"
    category = "common"
    color = "#c0edc0"
    listens_to = "complete"
    help = "Emits a copy of each message that a node in scope finished, with `msg.complete.source`."

    def accepts(self, source):  # noqa: ANN001, ANN201
        # Node-RED's complete node needs an explicit list of nodes
        return self._ids is not None and super().accepts(source)
