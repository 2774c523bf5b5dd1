"""xml: converts between an XML string and an object, as Node-RED's 70-XML.js (xml2js 0.6).

Parsing (xmltodict over expat; entity declarations refused) gives xml2js's shape: the
root element as the only key, every child element in an array under its name, attributes under
`$` (the node's `attr`), text under `_` (the node's `chr`) when the element also has attributes
or children, and an element with text only as that string. Building is xml2js's Builder: an
object with one key names the root element (else `root`), arrays repeat their element, and the
text starts with the XML declaration.
"""

from __future__ import annotations

import re
from typing import Any
from xml.parsers.expat import ExpatError
from xml.sax.saxutils import escape

import xmltodict
from pydantic import Field

from sofiaflow.nodes.parser._property import MISSING, MsgProperty
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, js_number_string


class XmlConfig(NodeConfig):
    property: str = Field("payload", title="Property", description="The msg property converted.")
    attr: str = Field("", title="Property name for XML attributes", description="Blank: $")
    chr: str = Field("", title="Property name for text content", description="Blank: _")


_PARSE_OPTIONS = {"attrkey", "charkey", "explicitArray", "explicitRoot", "trim", "emptyTag", "async"}
_BUILD_OPTIONS = {"attrkey", "charkey", "rootName", "headless", "renderOpts", "xmldec", "async"}
_DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
_NAME = re.compile(r"^[A-Za-z_:\u00c0-\uffff][-A-Za-z0-9_:.\u00b7\u00c0-\uffff]*$")
_TEXT_ENTITIES = {"\r": "&#xD;"}
_ATTR_ENTITIES = {'"': "&quot;", "\t": "&#x9;", "\n": "&#xA;", "\r": "&#xD;"}


def _check_options(options: dict[str, Any], allowed: set[str], what: str) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise NodeError(
            f"msg.options: {', '.join(unknown)} not supported when {what} (supported: "
            f"{', '.join(sorted(allowed - {'async'}))})"
        )


# ----- XML text -> object --------------------------------------------------------------------------------

_ATTR, _TEXT = "\x01", "\x02"  # xmltodict's markers for attributes and text (cannot occur in XML names)


def parse(text: str, options: dict[str, Any] | None = None) -> Any:
    """XML text to xml2js's object shape; bad XML raises NodeError naming line and column."""
    opts = options or {}
    try:
        raw = xmltodict.parse(
            text, attr_prefix=_ATTR, cdata_key=_TEXT, strip_whitespace=False, force_list=True
        )
    except (ExpatError, ValueError) as exc:
        raise NodeError(f"Invalid XML: {exc}") from None
    ((name, (value,)),) = raw.items()
    value = _Shape(opts).element(value)
    return {name: value} if opts.get("explicitRoot", True) else value


class _Shape:
    def __init__(self, opts: dict[str, Any]) -> None:
        self.attrkey = opts.get("attrkey") or "$"
        self.charkey = opts.get("charkey") or "_"
        self.explicit_array = opts.get("explicitArray", True)
        self.trim = bool(opts.get("trim", False))
        self.empty = opts.get("emptyTag", "")

    def element(self, raw: Any) -> Any:
        if raw is None or isinstance(raw, str):
            text = raw or ""
            if self.empty != "" and not text.strip():
                return self.empty
            return text.strip() if self.trim else text
        text = "".join(raw.get(_TEXT, ()))
        obj: dict[str, Any] = {}
        if text.strip():
            obj[self.charkey] = text.strip() if self.trim else text
        attrs = {k[1:]: v for k, v in raw.items() if k.startswith(_ATTR)}
        if attrs:
            obj[self.attrkey] = attrs
        for key, children in raw.items():
            if key.startswith(_ATTR) or key == _TEXT:
                continue
            values = [self.element(child) for child in children]
            obj[key] = values if self.explicit_array or len(values) > 1 else values[0]
        if not obj:
            return self.empty if self.empty != "" else ("" if self.trim else text)
        return obj


# ----- object -> XML text --------------------------------------------------------------------------------


def build(value: Any, options: dict[str, Any] | None = None) -> str:
    """An object as xml2js's Builder writes it (not pretty-printed)."""
    opts = options or {}
    attrkey, charkey = opts.get("attrkey") or "$", opts.get("charkey") or "_"
    root_name = opts.get("rootName") or "root"
    if isinstance(value, dict) and len(value) == 1 and root_name == "root":
        ((root_name, value),) = value.items()
    out: list[str] = [] if opts.get("headless") else [_DECLARATION]
    writer = _Writer(attrkey, charkey)
    writer.element(out, root_name, value)
    return "".join(out)


def _text(value: Any) -> str:
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return js_number_string(value)
    return str(value)


class _Writer:
    def __init__(self, attrkey: str, charkey: str) -> None:
        self.attrkey, self.charkey = attrkey, charkey

    def element(self, out: list[str], name: Any, value: Any) -> None:
        name = str(name)
        if not _NAME.match(name):
            raise NodeError(f"Invalid character in name: {name!r} is not an XML element name")
        attrs: list[str] = []
        body: list[str] = []
        self.content(attrs, body, value)
        head = "<" + name + "".join(attrs)
        out.append(f"{head}>{''.join(body)}</{name}>" if body else head + "/>")

    def content(self, attrs: list[str], body: list[str], value: Any) -> None:
        if value is None:
            return
        if not isinstance(value, (dict, list, tuple)):
            text = _text(value)
            if text:
                body.append(escape(text, _TEXT_ENTITIES))
            return
        if isinstance(value, (list, tuple)):
            for item in value:
                if isinstance(item, dict):
                    for key, entry in item.items():
                        self.element(body, key, entry)
            return
        for key, child in value.items():
            if key == self.attrkey and isinstance(child, dict):
                for attr, attr_value in child.items():
                    if not _NAME.match(str(attr)):
                        raise NodeError(f"Invalid character in name: {attr!r} is not an XML attribute name")
                    text = "" if attr_value is None else _text(attr_value)
                    attrs.append(f' {attr}="{escape(text, _ATTR_ENTITIES)}"')
            elif key == self.charkey:
                self.content(attrs, body, child)
            elif isinstance(child, (list, tuple)):
                for entry in child:
                    self.element(body, key, entry)
            else:
                self.element(body, key, child)


class XmlNode(Node[XmlConfig]):
    type = "xml"
    category = "parser"
    color = "#DEBD5C"
    Config = XmlConfig
    help = (
        "Converts `msg.payload` (or another property) between an XML string and an object, in xml2js's "
        "shape. Parsing: `{root: {child: [...]}}`, attributes under `$` (or the **attribute key** set), "
        "text under `_` (or the **text key**) when the element also has attributes or children, each "
        "child element in an array. Building: an object with a single key names the root element, "
        "otherwise the root is `<root>`; `$` holds attributes and `_` text. `msg.options` passes "
        "xml2js options (attrkey, charkey, explicitArray, explicitRoot, trim, emptyTag; rootName, "
        "headless when building); others are refused."
    )

    def setup(self) -> None:
        self._prop = MsgProperty(self.config.property)

    def on_input(self, msg: Msg) -> None:
        value = self._prop.get(msg)
        if value is MISSING:
            self.send(msg)
            return
        options = msg.get("options")
        options = dict(options) if isinstance(options, dict) else {}
        if isinstance(value, str):
            _check_options(options, _PARSE_OPTIONS, "parsing")
            options["attrkey"] = self.config.attr or options.get("attrkey") or "$"
            options["charkey"] = self.config.chr or options.get("charkey") or "_"
            self._prop.set(msg, parse(value, options))
        elif value is None or isinstance(value, (dict, list, tuple)):
            _check_options(options, _BUILD_OPTIONS, "building")
            self._prop.set(msg, build(value, options))
        else:
            self.warn("This node only handles xml strings or js objects.")
            return
        self.send(msg)
