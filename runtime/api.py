"""What node modules may import from the runtime. Nothing else of `runtime` is part of the contract."""

from __future__ import annotations

from sofiaflow.runtime.core import props
from sofiaflow.runtime.core.config import NodeConfig, NRBool, NRFloat, NRInt
from sofiaflow.runtime.core.encoding import (
    UNDEFINED,
    dumps_js,
    encode_debug,
    iso_date,
    js_float,
    js_number_string,
)
from sofiaflow.runtime.core.jsonata_expr import JsonataError, compile_expression
from sofiaflow.runtime.core.jsonata_expr import evaluate as evaluate_jsonata
from sofiaflow.runtime.core.message import clone_message, clone_value, new_message, new_msgid
from sofiaflow.runtime.core.node import Node
from sofiaflow.runtime.core.services import (
    API_MANAGER,
    AUDIT,
    DEVICES,
    HISTORY,
    HTTP_ROUTES,
    MQTT_BROKER,
    ONTOLOGIES,
    ONTOLOGY_DATA,
    ONTOLOGY_EVENTS,
    PERMISSIONS,
    RTDB,
    SANDBOX,
    ServiceKey,
)
from sofiaflow.runtime.core.typedinput import Getter, date_value, parse_number
from sofiaflow.runtime.core.typedinput import getter as typed_getter
from sofiaflow.runtime.data.history.query import select as select_history
from sofiaflow.runtime.data.ontologies import SOURCES as WRITE_SOURCES
from sofiaflow.runtime.data.ontologies import context_data
from sofiaflow.runtime.data.ontology_data import InstanceValidationError, Writer
from sofiaflow.runtime.data.rtdb import RtdbError, parse_filter
from sofiaflow.runtime.data.rtdb import matches as filter_matches
from sofiaflow.runtime.data.rtdb.base import check_update
from sofiaflow.runtime.errors import NodeError
from sofiaflow.runtime.sandbox import SandboxCrashed, SandboxError, SandboxPool, SandboxTimeout, SandboxWorker
from sofiaflow.runtime.security.permissions import covers as right_covers
from sofiaflow.runtime.security.tenant import publish_refusal
from sofiaflow.runtime.types import Msg

__all__ = [
    "API_MANAGER",
    "AUDIT",
    "DEVICES",
    "Getter",
    "HISTORY",
    "HTTP_ROUTES",
    "InstanceValidationError",
    "JsonataError",
    "MQTT_BROKER",
    "Msg",
    "NRBool",
    "NRFloat",
    "NRInt",
    "Node",
    "NodeConfig",
    "NodeError",
    "ONTOLOGIES",
    "ONTOLOGY_DATA",
    "ONTOLOGY_EVENTS",
    "PERMISSIONS",
    "RTDB",
    "RtdbError",
    "SANDBOX",
    "SandboxCrashed",
    "SandboxError",
    "SandboxPool",
    "SandboxTimeout",
    "SandboxWorker",
    "ServiceKey",
    "UNDEFINED",
    "WRITE_SOURCES",
    "Writer",
    "check_update",
    "clone_message",
    "clone_value",
    "compile_expression",
    "context_data",
    "date_value",
    "dumps_js",
    "encode_debug",
    "evaluate_jsonata",
    "filter_matches",
    "iso_date",
    "js_float",
    "js_number_string",
    "new_message",
    "new_msgid",
    "parse_filter",
    "parse_number",
    "props",
    "publish_refusal",
    "right_covers",
    "select_history",
    "typed_getter",
]
