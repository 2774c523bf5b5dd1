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


_ASCII_SPACE = " \t\n\r\f\v"
_DOCUMENT_HELPERS = ("inner_html", "inner_xml", "text_of")


def __getattr__(name: str) -> Any:
    """The serializers live in html_doc, loaded on first use with BeautifulSoup."""
    if name in _DOCUMENT_HELPERS:
        from sofiaflow.nodes.parser import html_doc

        return getattr(html_doc, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        import soupsieve

        try:
            return soupsieve.compile(selector)
        except soupsieve.SelectorSyntaxError as exc:
            raise NodeError(f"tag: invalid CSS selector {selector!r}: {exc.args[0]}") from None

    def _result(self, el: Any) -> Any:
        from sofiaflow.nodes.parser.html_doc import _attrs, inner_html, inner_xml, text_of

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
        from bs4 import BeautifulSoup

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
