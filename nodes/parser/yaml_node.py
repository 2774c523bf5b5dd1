"""yaml: converts between a YAML string and an object, as Node-RED's 70-YAML.js (js-yaml).

Parsing is PyYAML's safe loader only (no Python tags), reading booleans and exponent numbers as
YAML 1.2's core schema (js-yaml's); dumping writes js-yaml's layout: block
style, two-space indents with sequences indented under their key, keys in insertion order,
integral numbers without `.0`.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from typing import Any

import yaml
from pydantic import Field

from sofiaflow.nodes.parser._property import MISSING, MsgProperty
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, js_number_string


class YamlConfig(NodeConfig):
    property: str = Field("payload", title="Property", description="The msg property converted.")


class _JsYamlDumper(yaml.SafeDumper):
    """SafeDumper laid out as js-yaml's dump: sequences indented under their key, quoted scalars on one
    line, and single-line strings longer than the line folded (`>-`) at js-yaml's break points."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)

    def choose_scalar_style(self) -> str:
        event = self.event
        value = event.value
        if (
            event.style is None
            and event.implicit[0]
            and not self.flow_level
            and not self.simple_key_context
            and "\n" not in value
            and not value.startswith(" ")
            and not any(ch in value for ch in _UNICODE_BREAKS)
            and len(value) > _fold_width((self.indent or 0) + 2 if self.indent is not None else 2)
        ):
            return ">"
        return str(super().choose_scalar_style())

    def write_folded(self, text: str) -> None:
        if "\n" in text:
            super().write_folded(text)
            return
        hints = self.determine_block_hints(text)
        self.write_indicator(">" + hints, True)
        for line in fold_line(text, _fold_width(self.indent or 0)):
            self.write_line_break()
            self.write_indent()
            self.stream.write(line)
            self.column += len(line)


def _fold_width(indent: int) -> int:
    return max(40, 80 - indent)


def fold_line(line: str, width: int) -> list[str]:
    """js-yaml's folding of one line: break at the last space before the width is passed (runs of
    spaces are not broken inside, and a word longer than the width stays whole)."""
    out: list[str] = []
    start = curr = 0
    for match in _BREAK.finditer(line):
        nxt = match.start()
        if nxt - start > width:
            end = curr if curr > start else nxt
            out.append(line[start:end])
            start = end + 1
        curr = nxt
    if len(line) - start > width and curr > start:
        out += [line[start:curr], line[curr + 1 :]]
    else:
        out.append(line[start:])
    return out


_BREAK = re.compile(r" (?=[^ ])")


def _represent_float(dumper: yaml.SafeDumper, value: float) -> yaml.Node:
    if math.isnan(value):
        return dumper.represent_scalar("tag:yaml.org,2002:float", ".nan")
    if math.isinf(value):
        return dumper.represent_scalar("tag:yaml.org,2002:float", ".inf" if value > 0 else "-.inf")
    if value.is_integer() and abs(value) < 1e21:
        return dumper.represent_int(int(value))
    return dumper.represent_scalar("tag:yaml.org,2002:float", js_number_string(value))


def _represent_datetime(dumper: yaml.SafeDumper, value: datetime) -> yaml.Node:
    text = value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", text)


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Unicode line breaks would be written raw (and read back as spaces) in any style but double quotes
    style = '"' if any(ch in value for ch in _UNICODE_BREAKS) else None
    if value in _YAML11_BOOLEANS:  # js-yaml quotes YAML 1.1 booleans that PyYAML's resolver leaves plain
        style = "'"
    elif style is None and "\n" in value:
        style = "|"  # js-yaml writes multi-line strings as literal blocks
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_NO_WRAP = 1 << 30  # quoted scalars stay on one line, as js-yaml writes them
_UNICODE_BREAKS = "\x85\u2028\u2029"
_YAML11_BOOLEANS = frozenset(("y", "Y", "n", "N"))
_FLOAT_TAG = "tag:yaml.org,2002:float"
_EXPONENT = re.compile(r"^[-+]?[0-9]+(?:\.[0-9]*)?[eE][-+]?[0-9]+$")  # 1e+21: a float in YAML 1.2, not 1.1
_JsYamlDumper.add_implicit_resolver(_FLOAT_TAG, _EXPONENT, list("-+0123456789"))
_JsYamlDumper.add_representer(str, _represent_str)
_JsYamlDumper.add_representer(float, _represent_float)
_JsYamlDumper.add_representer(datetime, _represent_datetime)
_JsYamlDumper.add_representer(tuple, _JsYamlDumper.represent_list)


class _CoreSchemaLoader(yaml.SafeLoader):
    """SafeLoader reading booleans and exponent floats as YAML 1.2's core schema does (as js-yaml):
    `yes`, `no`, `on`, `off` stay strings, `1e3` is a number."""


_CoreSchemaLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CoreSchemaLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_CoreSchemaLoader.add_implicit_resolver(_FLOAT_TAG, _EXPONENT, list("-+0123456789"))


def load(text: str) -> Any:
    """YAML text to a value (safe tags only); a problem raises NodeError with the parser's words."""
    try:
        return yaml.load(text, Loader=_CoreSchemaLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise NodeError(str(exc)) from None


def dump(value: Any) -> str:
    """A value as js-yaml's `yaml.dump` lays it out."""
    try:
        return yaml.dump(
            value,
            Dumper=_JsYamlDumper,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
            width=_NO_WRAP,
        )
    except yaml.YAMLError as exc:
        raise NodeError("Failed to convert payload") from exc


class YamlNode(Node[YamlConfig]):
    type = "yaml"
    category = "parser"
    color = "#DEBD5C"
    Config = YamlConfig
    help = (
        "Converts `msg.payload` (or another property) between a YAML string and an object. A string is "
        "parsed (safe YAML: plain data, no language-specific tags) and replaced by the object; an object "
        "or array is written as YAML text. Parse errors go to catch nodes; buffers and other types are "
        "dropped with a warning. A message without the property passes on untouched."
    )

    def setup(self) -> None:
        self._prop = MsgProperty(self.config.property)

    def on_input(self, msg: Msg) -> None:
        value = self._prop.get(msg)
        if value is MISSING:
            self.send(msg)
            return
        if isinstance(value, str):
            self._prop.set(msg, load(value))
        elif isinstance(value, (bytes, bytearray)):
            self.warn("Ignored non-object payload")
            return
        elif value is None or isinstance(value, (dict, list, tuple, date)):
            self._prop.set(msg, dump(value))
        else:
            self.warn("Ignored unsupported payload type")
            return
        self.send(msg)
