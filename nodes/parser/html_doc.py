"""The html node's document side: elements written as cheerio writes them (`.html()`, `.xml()`, text).

Imported on the first message (BeautifulSoup and soupsieve weigh about 10 MB a server with no html node
need not hold).
"""

from __future__ import annotations

from typing import Any

from bs4 import Comment, Doctype, NavigableString, Tag

_VOID = frozenset(
    "area base basefont bgsound br col embed frame hr img input keygen link meta param source track wbr".split()
)
_RAW_TEXT = frozenset("style script xmp iframe noembed noframes plaintext".split())
_NO_TEXT = frozenset(("script", "style"))


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
