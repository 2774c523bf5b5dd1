"""tls-config: certificates and verification settings shared by MQTT, HTTP and WebSocket nodes."""

from __future__ import annotations

from sofiaflow.runtime.api import Node, NodeConfig, NRBool


class TlsConfig(NodeConfig):
    cert: str = ""
    key: str = ""
    ca: str = ""
    certname: str = ""
    keyname: str = ""
    caname: str = ""
    servername: str = ""
    verifyservercert: NRBool = True
    alpnprotocol: str = ""


class TlsConfigNode(Node[TlsConfig]):
    type = "tls-config"
    category = "config"
    label = "TLS configuration"
    is_config_node = True
    inputs = 0
    outputs = 0
    Config = TlsConfig
    credentials_spec = {"certdata": "text", "keydata": "text", "cadata": "text", "passphrase": "password"}
    help = (
        "Certificate, key and CA (file paths, or uploaded PEM kept as credentials) and whether to "
        "verify the server's certificate; used by nodes that open TLS connections."
    )
