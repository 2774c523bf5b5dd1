"""http proxy: a proxy for `http request` nodes, with hosts that bypass it."""

from __future__ import annotations

from sofiaflow.runtime.api import Node, NodeConfig


class HttpProxyConfig(NodeConfig):
    url: str = ""
    noproxy: list[str] = []


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
