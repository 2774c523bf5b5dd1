"""api: a config node defining one published API of the API Manager (name, version, description, state, quota).

Its operations are `api-endpoint` nodes that name it in their `api` property. Consumers call them under
`/api-manager/server/api/v{version}/{name}/...` with an API key.
"""

from __future__ import annotations

from pydantic import Field

from sofiaflow.runtime.api import API_MANAGER, Node, NodeConfig, NodeError, NRInt, SpecError, api_spec


class ApiConfig(NodeConfig):
    version: NRInt = Field(1, title="Version", description="Part of the API's path: /api/v<version>/<name>.")
    description: str = Field("", title="Description")
    state: str = Field(
        "development",
        title="State",
        description="development: only its owner and administrators may call it.",
        json_schema_extra={
            "x-choices": [
                ["development", "development"],
                ["published", "published"],
                ["deprecated", "deprecated"],
            ]
        },
    )
    quota: NRInt = Field(0, title="Quota (calls per minute per key)", description="0: no limit.")
    owner: str = Field("", title="Owner", description="The user who owns the API; blank: whoever deploys it.")


class ApiNode(Node[ApiConfig]):
    type = "api"
    category = "config"
    label = "api"
    is_config_node = True
    inputs = 0
    outputs = 0
    Config = ApiConfig
    help = (
        "An API of the API Manager: name, version, description, state (development: only its owner and "
        "administrators may call it; published; deprecated) and quota (calls per minute per API key, 0: none). "
        "Its operations are api-endpoint nodes."
    )

    def setup(self) -> None:
        cfg = self.config
        try:
            self.spec = api_spec(
                cfg.name,
                1 if cfg.version is None else cfg.version,
                cfg.description,
                cfg.state,
                cfg.quota,
                cfg.owner,
            )
        except SpecError as exc:
            raise NodeError(f"api: {exc}") from None
        self._manager = None

    async def start(self) -> None:
        manager = self.service(API_MANAGER)
        try:
            manager.add_api(self.id, self.spec)
        except ValueError as exc:
            self.status("red", "ring", "name and version taken")
            raise NodeError(f"api: {exc}") from None
        self._manager = manager

    async def close(self, removed: bool) -> None:
        if self._manager is not None:
            self._manager.remove_api(self.id)
            self._manager = None
