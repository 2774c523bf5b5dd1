"""html: extracts elements by CSS selector, as Node-RED's 70-HTML.js (cheerio).

The document is parsed as browsers do (html5lib, the WHATWG algorithm, as cheerio's parse5) and
selected with soupsieve. Per element, `ret` gives its inner HTML written as XML (`html`, the way
cheerio's `.xml()` writes it: `<br/>`, entities for `&<>"'` and non-ASCII characters), its text
(`text`: script and style contents left out), its attributes (`attr`), or the attributes plus the
inner HTML under `chr` (`compl`). `as` sends one message with an array, or one message per element
with `msg.parts` like split.
"""

from __future__ import annotations

from typing import Any, Literal

import soupsieve
from bs4 import BeautifulSoup, Comment, Doctype, NavigableString, Tag
from pydantic import Field

from sofiaflow.nodes.parser._property import MISSING, MsgProperty
from sofiaflow.runtime.api import Msg, Node, NodeConfig, NodeError, clone_message


class HtmlConfig(NodeConfig):
    property: str = Field("payload", title="Property", description="The msg property holding the HTML.")
    outproperty: str = Field("", title="Output property", description="Blank: the same as the input.")
    tag: str = Field("", title="Selector", description="A CSS selector, e.g. h1 or .price")
    ret: Literal["html", "text", "attr", "compl"] = Field(
        "html",
        title="Output",
        json_schema_extra={
            "x-choices": [
                ["html", "the html content of the elements"],
                ["text", "only the text content of the elements"],
                ["attr", "an object of any attributes of the elements"],
                ["compl", "the html content of the elements, with their tags"],
            ]
        },
    )
    as_: Literal["single", "multi"] = Field(
        "single",
        alias="as",
        title="As",
        json_schema_extra={
            "x-choices": [
                ["single", "single message containing an array"],
                ["multi", "multiple messages, one for each element"],
            ]
        },
    )
    chr: str = Field("_", title="Child property key", json_schema_extra={"x-widget": "hidden"})


_VOID = frozenset(
    "area base basefont bgsound br col embed frame hr img input keygen link meta param source track wbr".split()
)
_RAW_TEXT = frozenset("style script xmp iframe noembed noframes plaintext".split())
_NO_TEXT = frozenset(("script", "style"))
_ASCII_SPACE = " \t\n\r\f\v"


def _xml_escape(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == '"':
            out.append("&quot;")
        elif ch == "'":
            out.append("&apos;")
        elif code >= 0x80:
            out.append(f"&#x{code:X};")
        else:
            out.append(ch)
    return "".join(out)


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("\u00a0", "&nbsp;").replace("<", "&lt;").replace(">", "&gt;")


def _html_attr(text: str) -> str:
    return text.replace("&", "&amp;").replace("\u00a0", "&nbsp;").replace('"', "&quot;")


def _attrs(tag: Tag) -> dict[str, str]:
    return {k: " ".join(v) if isinstance(v, list) else str(v) for k, v in tag.attrs.items()}


def inner_html(tag: Tag) -> str:
    """The element's children serialized as parse5 writes HTML (cheerio's `.html()`)."""
    out: list[str] = []
    for child in tag.children:
        _write_html(out, child, tag.name in _RAW_TEXT)
    return "".join(out)


def _write_html(out: list[str], node: Any, raw: bool) -> None:
    if isinstance(node, Tag):
        out.append(
            "<" + node.name + "".join(f' {k}="{_html_attr(v)}"' for k, v in _attrs(node).items()) + ">"
        )
        if node.name in _VOID:
            return
        for child in node.children:
            _write_html(out, child, node.name in _RAW_TEXT)
        out.append(f"</{node.name}>")
    elif isinstance(node, Comment):
        out.append(f"<!--{node}-->")
    elif isinstance(node, Doctype):
        out.append(f"<!DOCTYPE {node}>")
    elif isinstance(node, NavigableString):
        out.append(str(node) if raw else _html_text(str(node)))


def inner_xml(tag: Tag) -> str:
    """The element's children serialized as cheerio's `.xml()` writes them."""
    out: list[str] = []
    for child in tag.children:
        _write_xml(out, child)
    return "".join(out)


def _write_xml(out: list[str], node: Any) -> None:
    if isinstance(node, Tag):
        head = "<" + node.name + "".join(f' {k}="{_xml_escape(v)}"' for k, v in _attrs(node).items())
        if not node.contents:
            out.append(head + "/>")
            return
        out.append(head + ">")
        for child in node.children:
            _write_xml(out, child)
        out.append(f"</{node.name}>")
    elif isinstance(node, Comment):
        out.append(f"<!--{node}-->")
    elif isinstance(node, Doctype):
        out.append(f"<!DOCTYPE {node}>")
    elif isinstance(node, NavigableString):
        out.append(_xml_escape(str(node)))


def text_of(tag: Tag) -> str:
    """The element's text, leaving out comments and the contents of script and style elements."""
    out: list[str] = []

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Tag):
                if child.name not in _NO_TEXT:
                    walk(child)
            elif isinstance(child, NavigableString) and not isinstance(child, (Comment, Doctype)):
                out.append(str(child))

    walk(tag)
    return "".join(out)


class HtmlNode(Node[HtmlConfig]):
    type = "html"
    category = "parser"
    color = "#DEBD5C"
    Config = HtmlConfig
    help = (
        "Extracts elements from the HTML document in `msg.payload` (or another property) with a CSS "
        "selector (`tag`; `msg.select` when the node has none). For each element it returns its inner "
        "HTML (`html`), its text (`text`), its attributes as an object (`attr`), or the attributes plus "
        "the inner HTML under the `chr` key (`compl`). `as: single` sends one message with the array of "
        "results (empty when nothing matched); `as: multi` sends one message per element, with "
        "`msg.parts` so a join node can put them back together. The result goes to `outproperty` "
        "(default: the input property)."
    )

    def setup(self) -> None:
        cfg = self.config
        self._prop = MsgProperty(cfg.property)
        self._out = MsgProperty(cfg.outproperty or cfg.property, "outproperty")
        if cfg.tag:
            self._compile(cfg.tag)

    @staticmethod
    def _compile(selector: str) -> Any:
        try:
            return soupsieve.compile(selector)
        except soupsieve.SelectorSyntaxError as exc:
            raise NodeError(f"tag: invalid CSS selector {selector!r}: {exc.args[0]}") from None

    def _result(self, el: Tag) -> Any:
        ret = self.config.ret
        if ret == "html":
            return inner_xml(el).strip(_ASCII_SPACE)
        if ret == "text":
            return text_of(el)
        if ret == "attr":
            return _attrs(el)
        return {self.config.chr: inner_html(el).strip(), **_attrs(el)}

    def on_input(self, msg: Msg) -> None:
        value = self._prop.get(msg)
        if value is MISSING:
            self.send(msg)
            return
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8", "replace")
        if not isinstance(value, str):
            raise NodeError(f"{self._prop.expr}: expected an HTML string, not {type(value).__name__}")
        selector = self.config.tag or msg.get("select") or ""
        if not isinstance(selector, str):
            raise NodeError("msg.select: the CSS selector must be a string")
        found = (
            self._compile(selector).select(BeautifulSoup(value, "html5lib", multi_valued_attributes=None))
            if selector
            else []
        )
        if self.config.as_ == "single":
            self._out.set(msg, [self._result(el) for el in found])
            self.send(msg)
            return
        for index, el in enumerate(found):
            result = self._result(el)
            if result == "" or result is None:
                continue
            out = clone_message(msg)
            self._out.set(out, result)
            out["parts"] = {
                "id": msg["_msgid"],
                "index": index,
                "count": len(found),
                "type": "string",
                "ch": "",
            }
            self.send(out)
