"""Connection options of an `mqtt-broker` config node, built from its stored properties.

As Node-RED's MQTTBrokerNode.setOptions: `broker` is a host name or a URL (`mqtt://`, `mqtts://`,
`ws://`, `wss://`); the client id defaults to `nodered` + a random id; birth, close and will
messages come from the `birth*`, `close*`, `will*` properties (v5 extras from `*Msg`); TLS comes
from the referenced `tls-config` node (file paths, or PEM text in its credentials).
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import tempfile
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from sofiaflow.nodes.mqtt.mqtt_payload import encode, publish_properties, user_properties
from sofiaflow.runtime.api import NodeError

LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
_SCHEMES = {
    "mqtt": ("tcp", False),
    "tcp": ("tcp", False),
    "mqtts": ("tcp", True),
    "ssl": ("tcp", True),
    "tls": ("tcp", True),
    "ws": ("websockets", False),
    "wss": ("websockets", True),
}

_OVERRIDABLE = (
    "url",
    "broker",
    "port",
    "clientid",
    "autoConnect",
    "usetls",
    "verifyservercert",
    "compatmode",
    "protocolVersion",
    "keepalive",
    "cleansession",
    "autoUnsubscribe",
    "userProps",
    "userProperties",
    "sessionExpiry",
    "sessionExpiryInterval",
)
"""The properties a "connect" action's msg.broker may change (`url` is `broker`)."""


@dataclass(slots=True)
class Outgoing:
    """One message to publish."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties | None = None
    origin: Any = None
    """The publishing flow's tenant; the embedded broker hands it to in-process subscribers (runtime/security/tenant.py)."""


@dataclass
class ConnectOptions:
    """Everything needed to open (and re-open) the client connection."""

    host: str
    port: int
    transport: str = "tcp"
    ws_path: str = "/"
    use_tls: bool = False
    tls: ssl.SSLContext | None = None
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    keepalive: int = 60
    clean_session: bool = True
    protocol: int = 4
    will: Outgoing | None = None
    properties: Properties | None = None
    birth: Outgoing | None = None
    close: Outgoing | None = None
    url: str = ""
    client_id_set: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """As Node-RED logs the broker: `clientid@url` when a client id is configured, else the URL."""
        return f"{self.client_id}@{self.url}" if self.client_id_set else self.url


def _bool(value: Any) -> bool:
    return value is True or value == "true"


def _qos(value: Any) -> int:
    try:
        qos = int(float(value or 0))
    except (TypeError, ValueError):
        return 0
    return qos if qos in (0, 1, 2) else 0


def _v5_fields(extra: Any) -> dict[str, Any]:
    """Node-RED's birthMsg/closeMsg/willMsg keys (respTopic, correl, expiry, delay, userProps) as msg fields."""
    if not isinstance(extra, dict):
        return {}
    out: dict[str, Any] = {}
    for src, dst in (
        ("contentType", "contentType"),
        ("respTopic", "responseTopic"),
        ("responseTopic", "responseTopic"),
        ("correl", "correlationData"),
        ("correlationData", "correlationData"),
        ("expiry", "messageExpiryInterval"),
        ("messageExpiryInterval", "messageExpiryInterval"),
    ):
        if extra.get(src) not in (None, ""):
            out[dst] = extra[src]
    users = extra.get("userProps", extra.get("userProperties"))
    if isinstance(users, str) and users.strip().startswith("{"):
        try:
            users = json.loads(users)
        except ValueError:
            users = None
    if isinstance(users, dict):
        out["userProperties"] = users
    return out


def message(
    topic: Any, payload: Any, qos: Any, retain: Any, extra: Any, v5: bool, will: bool = False
) -> Outgoing | None:
    """A birth, close or will message; None when its topic is blank."""
    if not topic:
        return None
    props = None
    if v5:
        fields = _v5_fields(extra)
        props = publish_properties(fields)
        if will:
            delay = extra.get("delay") if isinstance(extra, dict) else None
            base = props
            props = Properties(PacketTypes.WILLMESSAGE)
            for name in (
                "ResponseTopic",
                "CorrelationData",
                "ContentType",
                "MessageExpiryInterval",
                "UserProperty",
            ):
                if base is not None and hasattr(base, name):
                    setattr(props, name, getattr(base, name))
            if delay not in (None, ""):
                try:
                    props.WillDelayInterval = int(float(delay))
                except (TypeError, ValueError):
                    pass
    return Outgoing(
        str(topic), encode(payload if payload is not None else ""), _qos(qos), _bool(retain), props
    )


def parse_target(broker: str, port: Any, use_tls: bool) -> tuple[str, str, int, str, bool, str]:
    """(transport, host, port, ws_path, tls, url) from the `broker` and `port` properties."""
    broker = (broker or "").strip()
    if "://" in broker:
        parts = urlsplit(broker)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            raise NodeError(f"broker: unsupported URL scheme {scheme!r} (use mqtt, mqtts, ws or wss)")
        transport, tls = _SCHEMES[scheme]
        default_port = {
            ("tcp", False): 1883,
            ("tcp", True): 8883,
            ("websockets", False): 80,
            ("websockets", True): 443,
        }[(transport, tls)]
        try:
            url_port = parts.port
        except ValueError:
            raise NodeError(f"broker: bad port in {broker!r}") from None
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return transport, parts.hostname or "localhost", url_port or default_port, path, tls, broker
    try:
        number = int(float(port)) if port not in (None, "") else 1883
    except (TypeError, ValueError):
        raise NodeError(f"port: {port!r} is not a number") from None
    if not 0 < number < 65536:
        raise NodeError(f"port: {number} is out of range")
    host = broker or "localhost"
    shown = f"[{host}]" if ":" in host else host
    return "tcp", host, number, "/", use_tls, f"{'mqtts' if use_tls else 'mqtt'}://{shown}:{number}"


def tls_context(tls_node: Any, verify_legacy: bool) -> ssl.SSLContext:
    """An SSL context from a `tls-config` node (or the system CAs; `verifyservercert` when there is none)."""
    if tls_node is None:
        ctx = ssl.create_default_context()
        if not verify_legacy:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx
    conf = tls_node.config.model_dump() if hasattr(tls_node, "config") else dict(tls_node)
    creds = getattr(tls_node, "credentials", None) or {}
    ca, cadata = conf.get("ca") or "", creds.get("cadata") or ""
    try:
        ctx = ssl.create_default_context(cafile=ca or None, cadata=cadata or None)
        cert, key = conf.get("cert") or "", conf.get("key") or ""
        passphrase = creds.get("passphrase") or None
        if cert:
            ctx.load_cert_chain(cert, key or None, password=passphrase)
        elif creds.get("certdata"):
            _load_chain_from_text(ctx, creds["certdata"], creds.get("keydata") or "", passphrase)
    except (OSError, ssl.SSLError) as exc:
        raise NodeError(f"tls-config {getattr(tls_node, 'id', '')}: {exc}") from None
    verify = conf.get("verifyservercert", True)
    if not (verify is True or verify == "true"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if conf.get("alpnprotocol"):
        ctx.set_alpn_protocols([conf["alpnprotocol"]])
    return ctx


def _load_chain_from_text(ctx: ssl.SSLContext, cert: str, key: str, passphrase: str | None) -> None:
    """ssl loads certificate chains from files only: write the PEM text to private temporary files."""
    paths = []
    try:
        for text in (cert, key):
            fd, path = tempfile.mkstemp(suffix=".pem")
            paths.append(path)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
        ctx.load_cert_chain(paths[0], paths[1] if key else None, password=passphrase)
    finally:
        for path in paths:
            os.unlink(path)


def build(conf: dict[str, Any], credentials: dict[str, Any], tls_node: Any = None) -> ConnectOptions:
    """ConnectOptions from the stored properties (`conf`) and credentials (`user`, `password`)."""
    version = conf.get("protocolVersion") or 4
    if _bool(conf.get("compatmode")):
        version = 3
    try:
        version = int(version)
    except (TypeError, ValueError):
        version = 0
    if version not in (3, 4, 5):
        raise NodeError(f"protocolVersion: {conf.get('protocolVersion')!r} is not 3, 4 or 5")
    transport, host, port, path, use_tls, url = parse_target(
        conf.get("broker") or "", conf.get("port"), _bool(conf.get("usetls"))
    )
    keepalive = conf.get("keepalive")
    try:
        keepalive = int(float(keepalive)) if keepalive not in (None, "") else 60
    except (TypeError, ValueError):
        raise NodeError(f"keepalive: {keepalive!r} is not a number") from None
    warnings = []
    clean = conf.get("cleansession", True) is not False and conf.get("cleansession") != "false"
    client_id = (conf.get("clientid") or "").strip()
    if not clean and not client_id:
        clean = True
        warnings.append("No client ID set, using clean session")
    v5 = version == 5
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.RequestResponseInformation = 1
        props.RequestProblemInformation = 1
        users = conf.get("userProps") if "userProps" in conf else conf.get("userProperties")
        if isinstance(users, str) and users.strip().startswith("{"):
            try:
                users = json.loads(users)
            except ValueError:
                users = None
        users = user_properties(users)
        if users:
            props.UserProperty = list(users.items())
        expiry = conf.get("sessionExpiry", conf.get("sessionExpiryInterval"))
        if expiry not in (None, "", 0, "0"):
            try:
                props.SessionExpiryInterval = int(float(expiry))
            except (TypeError, ValueError):
                pass
    tls = tls_context(tls_node, _bool(conf.get("verifyservercert"))) if use_tls else None
    return ConnectOptions(
        host=host,
        port=port,
        transport=transport,
        ws_path=path,
        use_tls=use_tls,
        tls=tls,
        client_id=client_id or "nodered" + secrets.token_hex(8),
        username=(credentials.get("user") or None),
        password=(credentials.get("password") or None),
        keepalive=keepalive,
        clean_session=clean,
        protocol=version,
        will=message(
            conf.get("willTopic"),
            conf.get("willPayload"),
            conf.get("willQos"),
            conf.get("willRetain"),
            conf.get("willMsg"),
            v5,
            will=True,
        ),
        birth=message(
            conf.get("birthTopic"),
            conf.get("birthPayload"),
            conf.get("birthQos"),
            conf.get("birthRetain"),
            conf.get("birthMsg"),
            v5,
        ),
        close=message(
            conf.get("closeTopic"),
            conf.get("closePayload"),
            conf.get("closeQos"),
            conf.get("closeRetain"),
            conf.get("closeMsg"),
            v5,
        ),
        properties=props,
        url=url,
        client_id_set=bool(client_id),
        warnings=warnings,
    )


def is_embedded(opts: ConnectOptions, service: Any) -> bool:
    """Whether `opts` points at the runtime's embedded broker (plain TCP on a local address and its port)."""
    if service is None or opts.transport != "tcp" or opts.use_tls:
        return False
    try:
        port = int(service.port)
    except (AttributeError, TypeError, ValueError):
        return False
    return opts.host.strip("[]") in LOCAL_HOSTS and opts.port == port


def apply_override(conf: dict[str, Any], creds: dict[str, Any], opts: dict[str, Any]) -> None:
    """Apply a "connect" action's msg.broker to stored properties `conf` and credentials `creds` (as Node-RED:
    a birth, close or will given replaces the whole message; username and password are credentials)."""
    for key in _OVERRIDABLE:
        if key in opts:
            conf["broker" if key == "url" else key] = opts[key]
    for kind in ("birth", "close", "will"):
        if kind in opts:
            spec = opts[kind] if isinstance(opts[kind], dict) else {}
            for field_name in ("topic", "payload", "qos", "retain"):
                conf[f"{kind}{field_name.capitalize()}"] = spec.get(
                    field_name, "" if field_name != "qos" else 0
                )
            conf[f"{kind}Msg"] = spec.get("properties") or {}
    for key, cred in (("username", "user"), ("password", "password")):
        if key in opts:
            creds[cred] = opts[key]
