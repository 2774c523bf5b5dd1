"""What node modules may import from the runtime. Nothing else of `runtime` is part of the contract."""

from __future__ import annotations

from sofiaflow.runtime.api_manager import ApiCall, SpecError, api_spec, endpoint_spec
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
from sofiaflow.runtime.errors import NodeError, ServiceUnavailable, SofiaflowError, ValidationError
from sofiaflow.runtime.flows.route_overlap import MAX_KEY_LENGTH as MAX_ROUTE_KEY_LENGTH
from sofiaflow.runtime.flows.route_overlap import claim_key as route_claim_key
from sofiaflow.runtime.mqtt.acks import OrderedAcks, Receipt, current_receipt, handing_over
from sofiaflow.runtime.mqtt.topics import (
    TopicRouter,
    strip_share,
    subscription_matches,
    valid_publish,
    valid_subscription,
)
from sofiaflow.runtime.onesait import ssap
from sofiaflow.runtime.onesait.indications import deliver_to_client
from sofiaflow.runtime.onesait.processor import SsapProcessor
from sofiaflow.runtime.onesait.replies import MqttReply, RestReply
from sofiaflow.runtime.onesait.rest import ROUTES as SSAP_REST_ROUTES
from sofiaflow.runtime.onesait.rest import decode_body as decode_ssap_body
from sofiaflow.runtime.onesait.rest import to_ssap
from sofiaflow.runtime.onesait.sessions import SessionStore
from sofiaflow.runtime.onesait.ssap import SsapError
from sofiaflow.runtime.sandbox import SandboxCrashed, SandboxError, SandboxPool, SandboxTimeout, SandboxWorker
from sofiaflow.runtime.security.permissions import covers as right_covers
from sofiaflow.runtime.security.tenant import publish_refusal
from sofiaflow.runtime.types import Msg

__all__ = [
    "API_MANAGER",
    "AUDIT",
    "ApiCall",
    "DEVICES",
    "Getter",
    "HISTORY",
    "HTTP_ROUTES",
    "InstanceValidationError",
    "JsonataError",
    "MAX_ROUTE_KEY_LENGTH",
    "MQTT_BROKER",
    "MqttReply",
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
    "OrderedAcks",
    "PERMISSIONS",
    "RTDB",
    "Receipt",
    "RestReply",
    "RtdbError",
    "SANDBOX",
    "SSAP_REST_ROUTES",
    "SandboxCrashed",
    "SandboxError",
    "SandboxPool",
    "SandboxTimeout",
    "SandboxWorker",
    "ServiceKey",
    "ServiceUnavailable",
    "SessionStore",
    "SofiaflowError",
    "SpecError",
    "SsapError",
    "SsapProcessor",
    "TopicRouter",
    "UNDEFINED",
    "ValidationError",
    "WRITE_SOURCES",
    "Writer",
    "api_spec",
    "check_update",
    "clone_message",
    "clone_value",
    "compile_expression",
    "context_data",
    "current_receipt",
    "date_value",
    "decode_ssap_body",
    "deliver_to_client",
    "dumps_js",
    "encode_debug",
    "endpoint_spec",
    "evaluate_jsonata",
    "filter_matches",
    "handing_over",
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
    "route_claim_key",
    "select_history",
    "ssap",
    "strip_share",
    "subscription_matches",
    "to_ssap",
    "typed_getter",
    "valid_publish",
    "valid_subscription",
]
