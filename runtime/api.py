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
from sofiaflow.runtime.core.typedinput import Getter, date_value, parse_number
from sofiaflow.runtime.core.typedinput import getter as typed_getter
from sofiaflow.runtime.errors import NodeError
from sofiaflow.runtime.types import Msg

__all__ = [
    "Getter",
    "JsonataError",
    "Msg",
    "NRBool",
    "NRFloat",
    "NRInt",
    "Node",
    "NodeConfig",
    "NodeError",
    "UNDEFINED",
    "clone_message",
    "clone_value",
    "compile_expression",
    "date_value",
    "dumps_js",
    "encode_debug",
    "evaluate_jsonata",
    "iso_date",
    "js_float",
    "js_number_string",
    "new_message",
    "new_msgid",
    "parse_number",
    "props",
    "typed_getter",
]
