"""What the Settings page calls each runtime setting, and one line of help: where it comes from and what it does.

Keyed by the `Settings` field (and the two derived URLs); `SETTING_TEXT[name] = (label, help)`. A setting missing
here is still shown (its name in words, help saying so): tests/test_editor_plain_labels.py lists those.
"""

from __future__ import annotations

SETTING_TEXT: dict[str, tuple[str, str]] = {
    "data_dir": (
        "Data folder",
        "Where flows, credentials, users and the default databases are kept. SOFIAFLOW_DATA_DIR or --data-dir.",
    ),
    "db_url": (
        "Configuration database",
        "SQLAlchemy URL of the database for flows, users, devices and APIs; unset: a SQLite file in the data "
        "folder. SOFIAFLOW_DB_URL.",
    ),
    "host": ("Listen address", "The address the web server binds to. SOFIAFLOW_HOST or --host."),
    "port": (
        "Port",
        "The web server's port (editor, admin API, flows' HTTP endpoints). SOFIAFLOW_PORT or --port.",
    ),
    "admin_password": (
        "Administrator password",
        "The password user admin gets on the first start; unset: one is generated and printed. "
        "SOFIAFLOW_ADMIN_PASSWORD.",
    ),
    "credential_secret": (
        "Credentials key",
        "Encrypts stored node credentials (broker passwords, tokens); unset: a key made once in the data "
        "folder. SOFIAFLOW_CREDENTIAL_SECRET.",
    ),
    "context_default": (
        "Default context store",
        "Where flow and global context is kept unless a prefix says otherwise: memory, persistent (in the "
        "configuration database) or redis (cluster mode). "
        "SOFIAFLOW_CONTEXT_DEFAULT.",
    ),
    "context_prefixes": (
        "Context stores by key prefix",
        "Keys starting with a prefix go to another store, e.g. persist.=persistent. SOFIAFLOW_CONTEXT_PREFIXES.",
    ),
    "context_flush_interval": (
        "Context save interval (seconds)",
        "How often the persistent context store writes changed values to the configuration database.",
    ),
    "node_close_timeout": (
        "Node stop deadline (seconds)",
        "How long a node may take to stop on a deploy before it is left behind, as in Node-RED.",
    ),
    "function_time_limit": (
        "Function time limit (seconds)",
        "How long one message may run in a python function node before it is stopped. "
        "SOFIAFLOW_FUNCTION_TIME_LIMIT.",
    ),
    "function_modules": (
        "Modules for function nodes",
        "Python modules function nodes may import besides the built-in ones, comma-separated. "
        "SOFIAFLOW_FUNCTION_MODULES.",
    ),
    "function_isolation": (
        "Where python functions run",
        "process: in sandbox worker processes (the default); admin-in-process: administrators' flows in the "
        "server; in-process: all in the server (unsafe). SOFIAFLOW_FUNCTION_ISOLATION.",
    ),
    "sandbox_memory_mb": (
        "Sandbox memory (MiB)",
        "Memory each sandbox worker process may use. SOFIAFLOW_SANDBOX_MEMORY_MB.",
    ),
    "exec_enabled": (
        "Exec nodes may run commands",
        "Whether exec nodes run shell commands (only in administrators' and ownerless flows). "
        "SOFIAFLOW_EXEC_ENABLED.",
    ),
    "token_lifetime": (
        "Login lifetime (seconds)",
        "How long an editor login or admin API token stays valid.",
    ),
    "debug_max_length": (
        "Debug message length",
        "Characters of a message the debug sidebar shows before cutting it short.",
    ),
    "http_node_root": (
        "Path of flow HTTP endpoints",
        "The path under which http in nodes serve their URLs. SOFIAFLOW_HTTP_NODE_ROOT.",
    ),
    "http_response_timeout": (
        "HTTP response deadline (seconds)",
        "How long a request to an http in node waits for its http response node. SOFIAFLOW_HTTP_RESPONSE_TIMEOUT.",
    ),
    "access_log": (
        "Access log",
        "One line per HTTP request: on (standard output), off, stderr or a file path. SOFIAFLOW_ACCESS_LOG.",
    ),
    "realtime_url": (
        "Real-time database",
        "Where ontology data is stored: a mongodb://, postgresql:// or sqlite:// URL; unset: a SQLite file in the "
        "data folder. SOFIAFLOW_RTDB_URL.",
    ),
    "redis_url": (
        "Redis for cluster mode",
        "Set: workers share coordination and state through this Redis; unset: one process. SOFIAFLOW_REDIS_URL.",
    ),
    "ontologies_dir": (
        "Ontologies folder",
        "Ontology documents created or updated at start. SOFIAFLOW_ONTOLOGIES_DIR.",
    ),
    "mqtt_host": (
        "Embedded MQTT broker address",
        "The address the built-in broker binds to. SOFIAFLOW_MQTT_HOST.",
    ),
    "mqtt_port": (
        "Embedded MQTT broker port",
        "The built-in broker's port; 0 runs none. SOFIAFLOW_MQTT_PORT or --mqtt-port.",
    ),
    "mqtt_max_packet_size": (
        "Largest MQTT packet (bytes)",
        "A client sending a larger packet to the built-in broker is disconnected. SOFIAFLOW_MQTT_MAX_PACKET_SIZE.",
    ),
    "mqtt_connect_timeout": (
        "MQTT connect deadline (seconds)",
        "How long a new connection to the built-in broker has to say who it is. SOFIAFLOW_MQTT_CONNECT_TIMEOUT.",
    ),
    "mqtt_url": (
        "External MQTT broker",
        "Set: the platform's broker is this one (mqtt:// or mqtts://) and no broker is built in. "
        "SOFIAFLOW_MQTT_URL.",
    ),
    "mqtt_username": (
        "External broker user",
        "The user the platform connects to the external broker as. SOFIAFLOW_MQTT_USERNAME.",
    ),
    "mqtt_password": ("External broker password", "That user's password. SOFIAFLOW_MQTT_PASSWORD."),
    "dynsec_username": (
        "Broker security admin",
        "The admin user of Mosquitto's dynamic security, which registers devices. SOFIAFLOW_DYNSEC_USERNAME.",
    ),
    "dynsec_password": ("Broker security admin password", "That user's password. SOFIAFLOW_DYNSEC_PASSWORD."),
    "default_flows": (
        "Flows on the first start",
        "The flow file deployed when no flows are stored yet; none: nothing. SOFIAFLOW_DEFAULT_FLOWS.",
    ),
    "metrics_public": (
        "Metrics without a login",
        "Whether /metrics answers without a token (for Prometheus on a trusted network). SOFIAFLOW_METRICS_PUBLIC.",
    ),
    "history_dir": (
        "History folder",
        "Where expired ontology data is kept (Parquet); unset: history in the data folder. SOFIAFLOW_HISTORY_DIR.",
    ),
    "history_interval": (
        "History move interval (seconds)",
        "How often expired ontology data moves to history; 0: never. SOFIAFLOW_HISTORY_INTERVAL.",
    ),
    "files_dir": (
        "Files folder",
        "The only folder file, file in and watch nodes may use; unset: files in the data folder. "
        "SOFIAFLOW_FILES_DIR.",
    ),
    "database_url": (
        "Configuration database in use",
        "The configuration database's URL after defaults (from the configuration database setting).",
    ),
    "realtime_database_url": (
        "Real-time database in use",
        "The real-time database's URL after defaults (from the real-time database setting).",
    ),
}
