"""catch: receives errors thrown by nodes in its scope, as Node-RED's."""

from __future__ import annotations

from sofiaflow.nodes.common.scoped import ScopedListener


class CatchNode(ScopedListener):
    type = "catch"
    category = "common"
    color = "#e49191"
    listens_to = "error"
    help = (
        "Catches errors thrown by nodes on the same flow (all, selected nodes, or the group). "
        "The message carries `error.message` and `error.source` {id, type, name, count}."
    )
