"""status: reports status changes of nodes in its scope."""

from __future__ import annotations

from sofiaflow.nodes.common.scoped import ScopedListener


class StatusNode(ScopedListener):
    type = "status"
    category = "common"
    color = "#94c1d0"
    listens_to = "status"
    help = "Emits `msg.status` {fill, shape, text, source} whenever a node in scope sets its status."
