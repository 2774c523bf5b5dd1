"""The SSAP gateway nodes serve every device of the platform, whoever owns it: only flows acting for the
platform (`node.tenant` is None: administrators' flows and flows with no owner) may hold them."""

from __future__ import annotations

from sofiaflow.runtime.api import Node, NodeError


def refuse_in_tenant_flow(node: Node) -> None:
    """Refuse the deploy (NodeError naming the node type and the flow's owner) when `node` is in a developer's
    flow."""
    if node.tenant is not None:
        raise NodeError(
            f"{node.type}: serves every device of the platform, so only an administrator's flow may hold it; "
            f"this flow belongs to {node.tenant!r}, a developer"
        )
