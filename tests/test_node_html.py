"""html node: CSS selector extraction, as Node-RED's 70-HTML.js (cheerio)."""

from __future__ import annotations

from html import escape

import soupsieve
from bs4 import BeautifulSoup
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.parser.html_node import inner_html, text_of
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
PAGE = (
    "<html><head><title>T</title></head><body>"
    '<ul id="list"><li class="a  b" data-n="1">Héllo <b>w&amp;"r\'ld</b><br>x &lt; y</li>'
    '<li data-n="2"><img src="a&b.png" alt=\'q"\'><!-- c --></li><li></li></ul>'
    "<p>t<script>var a=1<2;</script></p></body></html>"
)


def flow(**cfg):
    h = {
        "id": "h",
        "type": "html",
        "z": "t1",
        "wires": [["o"]],
        "property": "payload",
        "outproperty": "payload",
        "tag": "li",
        "ret": "html",
        "as": "single",
        "chr": "_",
    }
    return [
        TAB,
        {**h, **cfg},
        {"id": "o", "type": "junction", "z": "t1", "wires": [[]]},
        {"id": "c", "type": "catch", "z": "t1", "wires": [["e"]], "scope": None, "uncaught": False},
        {"id": "e", "type": "junction", "z": "t1", "wires": [[]]},
    ]


async def run(registry, msgs, **cfg):
    async with FlowTester(flow(**cfg), registry) as t:
        for m in msgs:
            t.inject("h", m)
        await t.idle()
        return t.outputs("o")[0], t.outputs("e")[0]


async def test_html_mode_writes_inner_html_as_cheerio_xml(registry):
    # the strings cheerio 1.0.0-rc.10 (Node-RED 4.1) gives for this page
    out, err = await run(registry, [{"payload": PAGE}])
    assert err == []
    assert out[0]["payload"] == [
        "H&#xE9;llo <b>w&amp;&quot;r&apos;ld</b><br/>x &lt; y",
        '<img src="a&amp;b.png" alt="q&quot;"/><!-- c -->',
        "",
    ]


async def test_text_attr_and_compl(registry):
    out, _ = await run(registry, [{"payload": PAGE}], ret="text", tag="li, p")
    assert out[0]["payload"] == ["Héllo w&\"r'ldx < y", "", "", "t"]
    out, _ = await run(registry, [{"payload": PAGE}], ret="attr")
    assert out[0]["payload"] == [{"class": "a  b", "data-n": "1"}, {"data-n": "2"}, {}]
    out, _ = await run(registry, [{"payload": PAGE}], ret="compl", chr="inner", tag="#list > li[data-n='2']")
    assert out[0]["payload"] == [{"inner": '<img src="a&amp;b.png" alt="q&quot;"><!-- c -->', "data-n": "2"}]


async def test_multi_sends_one_message_per_element_with_parts(registry):
    out, _ = await run(registry, [{"payload": PAGE, "_msgid": "m1"}], ret="text", **{"as": "multi"})
    # the empty third element is counted but not sent, as in Node-RED
    assert [(m["payload"], m["parts"]) for m in out] == [
        ("Héllo w&\"r'ldx < y", {"id": "m1", "index": 0, "count": 3, "type": "string", "ch": ""}),
    ]
    out, _ = await run(registry, [{"payload": PAGE, "_msgid": "m1"}], ret="attr", **{"as": "multi"})
    assert [m["parts"]["index"] for m in out] == [0, 1, 2]


async def test_msg_select_outproperty_and_no_selector(registry):
    out, _ = await run(
        registry,
        [{"payload": PAGE, "select": "title"}, {"payload": PAGE}, {"topic": "none"}],
        tag="",
        ret="text",
        outproperty="found",
    )
    assert out[0]["found"] == ["T"]
    assert out[1]["found"] == []
    assert out[2] == {"topic": "none", "_msgid": out[2]["_msgid"]}


async def test_bad_selector_refuses_deploy_and_bad_input_goes_to_catch(registry):
    out, err = await run(registry, [{"payload": 5}, {"payload": PAGE, "select": "li["}], tag="")
    assert out == []
    assert err[0]["error"]["message"] == "payload: expected an HTML string, not int"
    assert err[1]["error"]["message"].startswith("tag: invalid CSS selector 'li['")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10), max_size=5)
)
def test_every_item_text_and_markup_comes_back_in_order(items):
    page = "<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"
    found = soupsieve.select("li", BeautifulSoup(page, "html5lib"))
    assert [text_of(el) for el in found] == items
    assert [inner_html(el) for el in found] == [
        escape(i, quote=False).replace("\xa0", "&nbsp;") for i in items
    ]
