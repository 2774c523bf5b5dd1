"""http proxy: a proxy for `http request` nodes, with hosts that bypass it."""

from __future__ import annotations

from pydantic import Field

from sofiaflow.runtime.api import Node, NodeConfig


class HttpProxyConfig(NodeConfig):
    url: str = Field("", title="URL", description="e.g. http://proxy.example.com:3128")
    noproxy: list[str] = Field(
        [],
        title="Ignore hosts",
        description="Hosts reached directly, not through the proxy.",
        json_schema_extra={"x-widget": "strings"},
    )


class HttpProxyNode(Node[HttpProxyConfig]):
    type = "http proxy"
    category = "config"
    label = "HTTP proxy"
    is_config_node = True
    inputs = 0
    outputs = 0
    Config = HttpProxyConfig
    credentials_spec = {"username": "text", "password": "password"}
    help = "The proxy URL (http://host:port) and the hosts to reach directly; credentials for proxy auth."
