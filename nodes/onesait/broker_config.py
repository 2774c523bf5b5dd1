"""ssap-broker: the config node an IoT Broker flow shares: digital-client sessions and the SSAP processor."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from sofiaflow.runtime.api import (
    AUDIT,
    DEVICES,
    ONTOLOGY_DATA,
    ONTOLOGY_EVENTS,
    PERMISSIONS,
    REDIS,
    Node,
    NodeConfig,
    NodeError,
    NRInt,
    ServiceKey,
    SessionStore,
    SsapProcessor,
)

DEFAULT_SESSION_TIMEOUT = 1800


class SsapBrokerConfig(NodeConfig):
    sessionTimeout: NRInt = Field(
        DEFAULT_SESSION_TIMEOUT,
        title="Session timeout (seconds)",
        description="A device session without activity for this long ends.",
    )


class SsapBrokerNode(Node[SsapBrokerConfig]):
    type = "ssap-broker"
    category = "config"
    label = "ssap-broker"
    is_config_node = True
    inputs = 0
    outputs = 0
    Config = SsapBrokerConfig
    help = (
        "The onesait IoT Broker's state shared by the ssap nodes using it: digital-client sessions "
        "(sessionTimeout: seconds idle before a session key is refused and the client must JOIN again)."
    )

    def setup(self) -> None:
        timeout = self.config.sessionTimeout
        if timeout is None:
            timeout = DEFAULT_SESSION_TIMEOUT
        if timeout <= 0:
            raise NodeError(
                f"ssap-broker: property 'sessionTimeout' must be a positive number of seconds, "
                f"got {self.config.sessionTimeout!r}"
            )
        # in a cluster (the REDIS service), sessions every worker shares
        self.sessions = SessionStore.create(float(timeout), self.now, self._optional(REDIS), self.id)
        self.processor: SsapProcessor | None = None

    async def start(self) -> None:
        self.processor = SsapProcessor(
            self.service(DEVICES),
            self.service(ONTOLOGY_DATA),
            self.sessions,
            self._optional(ONTOLOGY_EVENTS),
            permissions=self._optional(PERMISSIONS),
            audit=self._optional(AUDIT),
        )

    def _optional(self, key: ServiceKey[Any]) -> Any:
        try:
            return self.service(key)
        except NodeError:
            return None

    async def close(self, removed: bool) -> None:
        if self.processor is not None:
            self.processor.close()
            self.processor = None


def broker_of(node: Node, broker_id: str | None) -> SsapBrokerNode:
    """The running ssap-broker config node `broker_id` refers to; NodeError naming the property otherwise."""
    broker = node.config_node(broker_id)
    if not isinstance(broker, SsapBrokerNode):
        raise NodeError(
            f"{node.type}: property 'broker' must name an ssap-broker config node, got {broker_id!r}"
        )
    return broker
