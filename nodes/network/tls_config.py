"""tls-config: certificates and verification settings shared by MQTT, HTTP and WebSocket nodes."""

from __future__ import annotations

from pydantic import Field

from sofiaflow.runtime.api import Node, NodeConfig, NRBool


class TlsConfig(NodeConfig):
    cert: str = Field("", title="Certificate file", description="Path of the PEM certificate on the server.")
    key: str = Field("", title="Private key file", description="Path of the PEM private key.")
    ca: str = Field(
        "", title="CA certificate file", description="Path of the certificate authority's PEM file."
    )
    certname: str = Field("", title="Uploaded certificate", json_schema_extra={"x-widget": "hidden"})
    keyname: str = Field("", title="Uploaded key", json_schema_extra={"x-widget": "hidden"})
    caname: str = Field("", title="Uploaded CA", json_schema_extra={"x-widget": "hidden"})
    servername: str = Field("", title="Server name", description="For SNI: the host name expected.")
    verifyservercert: NRBool = Field(True, title="Verify server certificate")
    alpnprotocol: str = Field("", title="ALPN protocol")


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
