"""Runtime settings, from arguments and `SOFIAFLOW_*` environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


@dataclass
class Settings:
    data_dir: Path = field(
        default_factory=lambda: Path(os.environ.get("SOFIAFLOW_DATA_DIR", "~/.sofiaflow")).expanduser()
    )
    db_url: str | None = field(default_factory=lambda: os.environ.get("SOFIAFLOW_DB_URL"))
    host: str = field(default_factory=lambda: os.environ.get("SOFIAFLOW_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(os.environ.get("SOFIAFLOW_PORT", "1880")))
    admin_password: str | None = field(default_factory=lambda: os.environ.get("SOFIAFLOW_ADMIN_PASSWORD"))
    credential_secret: str | None = field(
        default_factory=lambda: os.environ.get("SOFIAFLOW_CREDENTIAL_SECRET")
    )
    context_default: str = field(
        default_factory=lambda: os.environ.get("SOFIAFLOW_CONTEXT_DEFAULT", "memory")
    )
    context_prefixes: dict[str, str] = field(
        default_factory=lambda: _parse_prefixes(os.environ.get("SOFIAFLOW_CONTEXT_PREFIXES", ""))
    )
    context_flush_interval: float = 5.0
    node_close_timeout: float = 15.0
    function_time_limit: float = field(
        default_factory=lambda: float(os.environ.get("SOFIAFLOW_FUNCTION_TIME_LIMIT", "1.0"))
    )
    function_modules: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            m.strip() for m in os.environ.get("SOFIAFLOW_FUNCTION_MODULES", "").split(",") if m.strip()
        )
    )
    function_isolation: str = field(
        default_factory=lambda: os.environ.get("SOFIAFLOW_FUNCTION_ISOLATION", "process")
    )
    """functionIsolation: where python functions run: "process" (sandbox worker processes, the default),
    "admin-in-process" (administrators' and ownerless flows in the server process) or "in-process" (all: unsafe)."""
    sandbox_memory_mb: int = field(
        default_factory=lambda: int(os.environ.get("SOFIAFLOW_SANDBOX_MEMORY_MB", "512"))
    )
    """sandboxMemoryMB: memory (RLIMIT_DATA: heap and private mappings) of each sandbox worker process (MiB)."""
    exec_enabled: bool = field(
        default_factory=lambda: (
            os.environ.get("SOFIAFLOW_EXEC_ENABLED", "").strip().lower() in ("1", "true", "yes", "on")
        )
    )
    """execEnabled: exec nodes may run shell commands (only in administrators' and ownerless flows)."""
    token_lifetime: int = 7 * 24 * 3600
    debug_max_length: int = 1000
    http_node_root: str = field(default_factory=lambda: os.environ.get("SOFIAFLOW_HTTP_NODE_ROOT", "/"))
    http_response_timeout: float = field(
        default_factory=lambda: float(os.environ.get("SOFIAFLOW_HTTP_RESPONSE_TIMEOUT", "120"))
    )
    access_log: str = field(default_factory=lambda: os.environ.get("SOFIAFLOW_ACCESS_LOG", "on"))
    """accessLog: one line per HTTP request (time, client, request line with secret query values masked, status,
    bytes, milliseconds): "on" (standard output, the default), "off", "stderr" or a file path (appended)."""
    realtime_url: str | None = field(default_factory=lambda: os.environ.get("SOFIAFLOW_RTDB_URL"))
    redis_url: str | None = field(default_factory=lambda: os.environ.get("SOFIAFLOW_REDIS_URL") or None)
    """redisUrl: Redis for cluster mode (coordination, shared state, the `redis` context store), e.g.
    redis://127.0.0.1:6379/0; unset: a single process, nothing shared."""
    """Real-time DB of ontology data: mongodb://, postgresql:// or sqlite:// (default: a file in the data dir)."""
    ontologies_dir: Path | None = field(default_factory=lambda: _ontologies_dir())
    """Ontology documents loaded (created or updated) at start."""
    mqtt_host: str = field(default_factory=lambda: os.environ.get("SOFIAFLOW_MQTT_HOST", "127.0.0.1"))
    mqtt_port: int = field(default_factory=lambda: int(os.environ.get("SOFIAFLOW_MQTT_PORT", "1883")))
    """Port of the embedded MQTT broker; 0 runs none (flows then use an external broker)."""
    mqtt_max_packet_size: int = field(
        default_factory=lambda: int(os.environ.get("SOFIAFLOW_MQTT_MAX_PACKET_SIZE", str(1024 * 1024)))
    )
    """mqttMaxPacketSize: bytes of the largest MQTT packet the embedded broker takes (larger: disconnected)."""
    mqtt_connect_timeout: float = field(
        default_factory=lambda: float(os.environ.get("SOFIAFLOW_MQTT_CONNECT_TIMEOUT", "10"))
    )
    """mqttConnectTimeout: seconds a new connection to the embedded broker has to send CONNECT."""
    mqtt_url: str | None = field(default_factory=lambda: os.environ.get("SOFIAFLOW_MQTT_URL") or None)
    """mqttUrl: the platform's external MQTT broker (cluster mode: the cluster's Mosquitto), mqtt://host:port or
    mqtts://host:port. Set, the runtime runs no embedded broker: devices are Mosquitto dynamic-security clients
    (runtime/cluster/dynsec.py) and `platform` mqtt-broker nodes connect here."""
    mqtt_username: str | None = field(
        default_factory=lambda: os.environ.get("SOFIAFLOW_MQTT_USERNAME") or None
    )
    """mqttUsername: the runtime's own client on the external broker (`platform` mqtt-broker nodes)."""
    mqtt_password: str | None = field(default_factory=lambda: os.environ.get("SOFIAFLOW_MQTT_PASSWORD"))
    """mqttPassword: that client's password."""
    dynsec_username: str | None = field(
        default_factory=lambda: os.environ.get("SOFIAFLOW_DYNSEC_USERNAME") or None
    )
    """dynsecUsername: the admin client of Mosquitto's dynamic-security plugin (`$CONTROL/dynamic-security/v1`)."""
    dynsec_password: str | None = field(default_factory=lambda: os.environ.get("SOFIAFLOW_DYNSEC_PASSWORD"))
    """dynsecPassword: that admin client's password."""
    default_flows: Path | None = field(default_factory=lambda: _default_flows())
    """Flow file deployed on the first start (no flows stored yet): SOFIAFLOW_DEFAULT_FLOWS, by default the
    bundled IoT Broker flow; "" or "none" deploys nothing."""
    metrics_public: bool = field(
        default_factory=lambda: (
            os.environ.get("SOFIAFLOW_METRICS_PUBLIC", "").strip().lower() in ("1", "true", "yes", "on")
        )
    )
    """Serve `/metrics` without a bearer token (for Prometheus scrapers on a trusted network)."""
    history_dir: Path | None = field(default_factory=lambda: _optional_path("SOFIAFLOW_HISTORY_DIR"))
    """Folder of the historical store (Parquet); default: `history` in the data dir."""
    history_interval: float = field(
        default_factory=lambda: float(os.environ.get("SOFIAFLOW_HISTORY_INTERVAL", "3600"))
    )
    """Seconds between moves of expired instances to history; 0: never scheduled."""
    files_dir: Path | None = field(default_factory=lambda: _optional_path("SOFIAFLOW_FILES_DIR"))
    """filesDir: the only folder the file, file in and watch nodes may use; default: `files` in the data dir."""

    def node_settings(self) -> dict:
        """The settings nodes may read with `Node.setting(name)`."""
        return {
            "functionTimeLimit": self.function_time_limit,
            "functionExtraModules": self.function_modules,
            "functionIsolation": self.function_isolation,
            "sandboxMemoryMB": self.sandbox_memory_mb,
            "debugMaxLength": self.debug_max_length,
            "execEnabled": self.exec_enabled,
            "filesDir": str(self.files_path),
            "platformBroker": self.platform_broker(),
        }

    def platform_broker(self) -> dict | None:
        """Where `platform` mqtt-broker nodes connect: the external broker (SOFIAFLOW_MQTT_URL) with the runtime's
        own credentials, or None: the embedded broker (the MQTT_BROKER service)."""
        if not self.mqtt_url:
            return None
        return {"url": self.mqtt_url, "username": self.mqtt_username, "password": self.mqtt_password}

    @property
    def realtime_database_url(self) -> str:
        return self.realtime_url or f"sqlite:///{self.data_dir / 'realtime.db'}"

    @property
    def files_path(self) -> Path:
        return self.files_dir or self.data_dir / "files"

    @property
    def history_path(self) -> Path:
        return self.history_dir or self.data_dir / "history"

    @property
    def database_url(self) -> str:
        """The config DB URL: the setting, or a SQLite file in the data dir."""
        return self.db_url or f"sqlite:///{self.data_dir / 'sofiaflow.db'}"


def _optional_path(variable: str) -> Path | None:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else None


def _default_flows() -> Path | None:
    configured = os.environ.get("SOFIAFLOW_DEFAULT_FLOWS")
    if configured is not None:
        return Path(configured).expanduser() if configured.strip().lower() not in ("", "none") else None
    bundled = Path(str(resources.files("sofiaflow.flows").joinpath("iot-broker.json")))
    return bundled if bundled.is_file() else None


def _ontologies_dir() -> Path | None:
    configured = os.environ.get("SOFIAFLOW_ONTOLOGIES_DIR")
    if configured is not None:
        return Path(configured).expanduser() if configured else None
    bundled = Path(str(resources.files("sofiaflow.ontologies")))
    return bundled if bundled.is_dir() else None


def _parse_prefixes(text: str) -> dict[str, str]:
    """`persist.=persistent,cache.=memory` -> {"persist.": "persistent", "cache.": "memory"}."""
    out: dict[str, str] = {}
    for item in text.split(","):
        if "=" in item:
            prefix, store = item.split("=", 1)
            out[prefix.strip()] = store.strip()
    return out
