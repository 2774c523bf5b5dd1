"""The icon drawn on each node and palette entry: a Material icon name (the font NiceGUI serves itself).

`node_icon(type, category, hint)`: the node class's own `icon` hint when it sets one, else this table by
type, else by category, else a generic cog. The names are Material Icons ligatures.
"""

from __future__ import annotations

DEFAULT_ICON = "settings"

BY_TYPE: dict[str, str] = {
    # common
    "inject": "arrow_forward",
    "debug": "bug_report",
    "complete": "done_all",
    "catch": "report_problem",
    "status": "info",
    "comment": "chat_bubble_outline",
    "junction": "fiber_manual_record",
    "subflow": "account_tree",
    "link in": "login",
    "link out": "logout",
    "link call": "call_split",
    # function
    "function": "code",
    "python function": "code",
    "change": "shuffle",
    "switch": "call_split",
    "template": "data_object",
    "delay": "schedule",
    "trigger": "timer",
    "exec": "terminal",
    "range": "straighten",
    "rbe": "filter_alt",
    "partition": "vertical_split",
    # network
    "mqtt in": "settings_input_antenna",
    "mqtt out": "settings_input_antenna",
    "mqtt-broker": "settings_input_antenna",
    "http in": "public",
    "http request": "public",
    "http response": "public",
    "http proxy": "public",
    "tls-config": "lock",
    "websocket in": "swap_horiz",
    "websocket out": "swap_horiz",
    "websocket-client": "swap_horiz",
    "websocket-listener": "swap_horiz",
    "tcp in": "lan",
    "tcp out": "lan",
    "tcp request": "lan",
    "udp in": "lan",
    "udp out": "lan",
    "api-endpoint": "power",
    "api": "power",
    # sequence
    "split": "call_split",
    "join": "merge_type",
    "sort": "sort",
    "batch": "view_module",
    # parser
    "csv": "table_chart",
    "html": "html",
    "json": "data_object",
    "xml": "code",
    "yaml": "description",
    # storage
    "file": "insert_drive_file",
    "file in": "insert_drive_file",
    "watch": "visibility",
    # cep
    "cep-query": "insights",
    "window": "insights",
    "pattern": "timeline",
    "absence": "notifications_off",
    "alarm": "notifications",
    # ontology
    "ontology-insert": "storage",
    "ontology-query": "storage",
    "ontology-update": "storage",
    "ontology-delete": "storage",
    "ontology-subscribe": "storage",
    "ontology-validate": "fact_check",
    "history-query": "history",
    # onesait
    "ssap-broker": "hub",
    "ssap-mqtt in": "hub",
    "ssap-rest in": "hub",
    "ssap process": "hub",
    "ssap response": "hub",
}

BY_CATEGORY: dict[str, str] = {
    "common": "widgets",
    "function": "functions",
    "network": "lan",
    "sequence": "format_list_numbered",
    "parser": "transform",
    "storage": "save",
    "ontology": "storage",
    "cep": "insights",
    "onesait": "hub",
    "config": "tune",
    "cluster": "dns",
    "subflow": "account_tree",
}


def node_icon(node_type: str, category: str = "", hint: str | None = None) -> str:
    """The Material icon name for a node of `node_type` in palette `category` (`hint`: the class's own)."""
    if hint:
        return hint
    if node_type.startswith("subflow:"):
        return BY_CATEGORY["subflow"]
    return BY_TYPE.get(node_type) or BY_CATEGORY.get(category) or DEFAULT_ICON
