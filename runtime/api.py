"""What node modules may import from the runtime. Nothing else of `runtime` is part of the contract.

Names load on first use (PEP 562): a module that takes only `NodeError` or `clone_message` from here (the sandbox
worker's side of the function nodes, which must stay light) loads only the module that defines it, not the whole
runtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        ALARMS,
        API_MANAGER,
        AUDIT,
        DEVICES,
        FIRING_SLOTS,
        HISTORY,
        HTTP_ROUTES,
        MQTT_BROKER,
        MQTT_SESSIONS,
        ONTOLOGIES,
        ONTOLOGY_DATA,
        ONTOLOGY_EVENTS,
        PARTITIONS,
        PERMISSIONS,
        REDIS,
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
    from sofiaflow.runtime.sandbox import (
        SandboxCrashed,
        SandboxError,
        SandboxPool,
        SandboxTimeout,
        SandboxWorker,
    )
    from sofiaflow.runtime.security.device_topics import index_of as device_topic_index
    from sofiaflow.runtime.security.permissions import covers as right_covers
    from sofiaflow.runtime.security.tenant import publish_refusal
    from sofiaflow.runtime.types import Msg

_WHERE: dict[str, tuple[str, str]] = {
    "ALARMS": ("sofiaflow.runtime.core.services", "ALARMS"),
    "API_MANAGER": ("sofiaflow.runtime.core.services", "API_MANAGER"),
    "AUDIT": ("sofiaflow.runtime.core.services", "AUDIT"),
    "ApiCall": ("sofiaflow.runtime.api_manager", "ApiCall"),
    "DEVICES": ("sofiaflow.runtime.core.services", "DEVICES"),
    "FIRING_SLOTS": ("sofiaflow.runtime.core.services", "FIRING_SLOTS"),
    "Getter": ("sofiaflow.runtime.core.typedinput", "Getter"),
    "HISTORY": ("sofiaflow.runtime.core.services", "HISTORY"),
    "HTTP_ROUTES": ("sofiaflow.runtime.core.services", "HTTP_ROUTES"),
    "InstanceValidationError": ("sofiaflow.runtime.data.ontology_data", "InstanceValidationError"),
    "JsonataError": ("sofiaflow.runtime.core.jsonata_expr", "JsonataError"),
    "MAX_ROUTE_KEY_LENGTH": ("sofiaflow.runtime.flows.route_overlap", "MAX_KEY_LENGTH"),
    "MQTT_BROKER": ("sofiaflow.runtime.core.services", "MQTT_BROKER"),
    "MQTT_SESSIONS": ("sofiaflow.runtime.core.services", "MQTT_SESSIONS"),
    "MqttReply": ("sofiaflow.runtime.onesait.replies", "MqttReply"),
    "Msg": ("sofiaflow.runtime.types", "Msg"),
    "NRBool": ("sofiaflow.runtime.core.config", "NRBool"),
    "NRFloat": ("sofiaflow.runtime.core.config", "NRFloat"),
    "NRInt": ("sofiaflow.runtime.core.config", "NRInt"),
    "Node": ("sofiaflow.runtime.core.node", "Node"),
    "NodeConfig": ("sofiaflow.runtime.core.config", "NodeConfig"),
    "NodeError": ("sofiaflow.runtime.errors", "NodeError"),
    "ONTOLOGIES": ("sofiaflow.runtime.core.services", "ONTOLOGIES"),
    "ONTOLOGY_DATA": ("sofiaflow.runtime.core.services", "ONTOLOGY_DATA"),
    "ONTOLOGY_EVENTS": ("sofiaflow.runtime.core.services", "ONTOLOGY_EVENTS"),
    "OrderedAcks": ("sofiaflow.runtime.mqtt.acks", "OrderedAcks"),
    "PARTITIONS": ("sofiaflow.runtime.core.services", "PARTITIONS"),
    "PERMISSIONS": ("sofiaflow.runtime.core.services", "PERMISSIONS"),
    "REDIS": ("sofiaflow.runtime.core.services", "REDIS"),
    "RTDB": ("sofiaflow.runtime.core.services", "RTDB"),
    "Receipt": ("sofiaflow.runtime.mqtt.acks", "Receipt"),
    "RestReply": ("sofiaflow.runtime.onesait.replies", "RestReply"),
    "RtdbError": ("sofiaflow.runtime.data.rtdb", "RtdbError"),
    "SANDBOX": ("sofiaflow.runtime.core.services", "SANDBOX"),
    "SSAP_REST_ROUTES": ("sofiaflow.runtime.onesait.rest", "ROUTES"),
    "SandboxCrashed": ("sofiaflow.runtime.sandbox", "SandboxCrashed"),
    "SandboxError": ("sofiaflow.runtime.sandbox", "SandboxError"),
    "SandboxPool": ("sofiaflow.runtime.sandbox", "SandboxPool"),
    "SandboxTimeout": ("sofiaflow.runtime.sandbox", "SandboxTimeout"),
    "SandboxWorker": ("sofiaflow.runtime.sandbox", "SandboxWorker"),
    "ServiceKey": ("sofiaflow.runtime.core.services", "ServiceKey"),
    "ServiceUnavailable": ("sofiaflow.runtime.errors", "ServiceUnavailable"),
    "SessionStore": ("sofiaflow.runtime.onesait.sessions", "SessionStore"),
    "SofiaflowError": ("sofiaflow.runtime.errors", "SofiaflowError"),
    "SpecError": ("sofiaflow.runtime.api_manager", "SpecError"),
    "SsapError": ("sofiaflow.runtime.onesait.ssap", "SsapError"),
    "SsapProcessor": ("sofiaflow.runtime.onesait.processor", "SsapProcessor"),
    "TopicRouter": ("sofiaflow.runtime.mqtt.topics", "TopicRouter"),
    "UNDEFINED": ("sofiaflow.runtime.core.encoding", "UNDEFINED"),
    "ValidationError": ("sofiaflow.runtime.errors", "ValidationError"),
    "WRITE_SOURCES": ("sofiaflow.runtime.data.ontologies", "SOURCES"),
    "Writer": ("sofiaflow.runtime.data.ontology_data", "Writer"),
    "api_spec": ("sofiaflow.runtime.api_manager", "api_spec"),
    "check_update": ("sofiaflow.runtime.data.rtdb.base", "check_update"),
    "clone_message": ("sofiaflow.runtime.core.message", "clone_message"),
    "clone_value": ("sofiaflow.runtime.core.message", "clone_value"),
    "compile_expression": ("sofiaflow.runtime.core.jsonata_expr", "compile_expression"),
    "context_data": ("sofiaflow.runtime.data.ontologies", "context_data"),
    "current_receipt": ("sofiaflow.runtime.mqtt.acks", "current_receipt"),
    "date_value": ("sofiaflow.runtime.core.typedinput", "date_value"),
    "decode_ssap_body": ("sofiaflow.runtime.onesait.rest", "decode_body"),
    "deliver_to_client": ("sofiaflow.runtime.onesait.indications", "deliver_to_client"),
    "device_topic_index": ("sofiaflow.runtime.security.device_topics", "index_of"),
    "dumps_js": ("sofiaflow.runtime.core.encoding", "dumps_js"),
    "encode_debug": ("sofiaflow.runtime.core.encoding", "encode_debug"),
    "endpoint_spec": ("sofiaflow.runtime.api_manager", "endpoint_spec"),
    "evaluate_jsonata": ("sofiaflow.runtime.core.jsonata_expr", "evaluate"),
    "filter_matches": ("sofiaflow.runtime.data.rtdb", "matches"),
    "handing_over": ("sofiaflow.runtime.mqtt.acks", "handing_over"),
    "iso_date": ("sofiaflow.runtime.core.encoding", "iso_date"),
    "js_float": ("sofiaflow.runtime.core.encoding", "js_float"),
    "js_number_string": ("sofiaflow.runtime.core.encoding", "js_number_string"),
    "new_message": ("sofiaflow.runtime.core.message", "new_message"),
    "new_msgid": ("sofiaflow.runtime.core.message", "new_msgid"),
    "parse_filter": ("sofiaflow.runtime.data.rtdb", "parse_filter"),
    "parse_number": ("sofiaflow.runtime.core.typedinput", "parse_number"),
    "props": ("sofiaflow.runtime.core", "props"),
    "publish_refusal": ("sofiaflow.runtime.security.tenant", "publish_refusal"),
    "right_covers": ("sofiaflow.runtime.security.permissions", "covers"),
    "route_claim_key": ("sofiaflow.runtime.flows.route_overlap", "claim_key"),
    "select_history": ("sofiaflow.runtime.data.history.query", "select"),
    "ssap": ("sofiaflow.runtime.onesait", "ssap"),
    "strip_share": ("sofiaflow.runtime.mqtt.topics", "strip_share"),
    "subscription_matches": ("sofiaflow.runtime.mqtt.topics", "subscription_matches"),
    "to_ssap": ("sofiaflow.runtime.onesait.rest", "to_ssap"),
    "typed_getter": ("sofiaflow.runtime.core.typedinput", "getter"),
    "valid_publish": ("sofiaflow.runtime.mqtt.topics", "valid_publish"),
    "valid_subscription": ("sofiaflow.runtime.mqtt.topics", "valid_subscription"),
}
"""Each public name: (the module defining it, its name there; a submodule when that is its name)."""


def __getattr__(name: str) -> Any:
    try:
        module, attr = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    owner = importlib.import_module(module)
    value = getattr(owner, attr) if hasattr(owner, attr) else importlib.import_module(f"{module}.{attr}")
    globals()[name] = value  # next time, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "ALARMS",
    "API_MANAGER",
    "AUDIT",
    "ApiCall",
    "DEVICES",
    "FIRING_SLOTS",
    "Getter",
    "HISTORY",
    "HTTP_ROUTES",
    "InstanceValidationError",
    "JsonataError",
    "MAX_ROUTE_KEY_LENGTH",
    "MQTT_BROKER",
    "MQTT_SESSIONS",
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
    "PARTITIONS",
    "PERMISSIONS",
    "REDIS",
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
    "device_topic_index",
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
