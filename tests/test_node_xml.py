"""xml node: XML string <-> object in xml2js's shape, as Node-RED's 70-XML.js."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.parser.xml_node import build, parse
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def flow(**cfg):
    x = {"id": "x", "type": "xml", "z": "t1", "wires": [["o"]], "property": "payload", "attr": "", "chr": ""}
    return [
        TAB,
        {**x, **cfg},
        {"id": "o", "type": "junction", "z": "t1", "wires": [[]]},
        {"id": "c", "type": "catch", "z": "t1", "wires": [["e"]], "scope": None, "uncaught": False},
        {"id": "e", "type": "junction", "z": "t1", "wires": [[]]},
    ]


async def run(registry, msgs, **cfg):
    async with FlowTester(flow(**cfg), registry) as t:
        for m in msgs:
            t.inject("x", m)
        await t.idle()
        return t.outputs("o")[0], t.outputs("e")[0], t.logs


DOC = '<order id="7" xmlns:p="urn:p">\n  <p:item sku="a&amp;b">two &lt; three</p:item>\n  <p:item>plain</p:item>\n  <note/>\n  <mixed>a<b/>c</mixed>\n</order>'


async def test_xml_becomes_xml2js_shape(registry):
    out, err, _ = await run(registry, [{"payload": DOC}])
    assert err == []
    assert out[0]["payload"] == {
        "order": {
            "$": {"id": "7", "xmlns:p": "urn:p"},
            "p:item": [{"_": "two < three", "$": {"sku": "a&b"}}, "plain"],
            "note": [""],
            "mixed": [{"_": "ac", "b": [""]}],
        }
    }


async def test_attr_and_chr_keys(registry):
    out, _, _ = await run(registry, [{"payload": '<a k="v">t<b/></a>'}], attr="@", chr="#text")
    assert out[0]["payload"] == {"a": {"#text": "t", "@": {"k": "v"}, "b": [""]}}


async def test_object_becomes_xml_text(registry):
    value = {
        "order": {
            "$": {"id": 7, "q": 'say "hi"\n'},
            "item": ["a", {"_": "b & c", "$": {"n": "2"}}],
            "x": None,
        }
    }
    out, _, _ = await run(registry, [{"payload": value}])
    assert out[0]["payload"] == (
        DECL
        + '<order id="7" q="say &quot;hi&quot;&#xA;"><item>a</item><item n="2">b &amp; c</item><x/></order>'
    )


async def test_object_with_several_keys_gets_a_root_element_and_options_apply(registry):
    out, _, _ = await run(
        registry,
        [
            {"payload": {"a": 1, "b": True}},
            {"payload": {"a": 1.5}, "options": {"headless": True, "rootName": "r"}},
            {"payload": "<r><a>1</a></r>", "options": {"explicitArray": False, "explicitRoot": False}},
        ],
    )
    assert [m["payload"] for m in out] == [
        DECL + "<root><a>1</a><b>true</b></root>",
        "<r><a>1.5</a></r>",
        {"a": "1"},
    ]


async def test_bad_xml_and_unsupported_options_go_to_catch(registry):
    out, err, logs = await run(
        registry,
        [
            {"payload": "<a><b></a>"},
            {"payload": "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>"},
            {"payload": "<a/>", "options": {"mergeAttrs": True}},
            {"payload": {"bad name": 1}},
            {"payload": 5},
        ],
    )
    assert out == []
    messages = [m["error"]["message"] for m in err]
    assert messages[0] == "Invalid XML: mismatched tag: line 1, column 8"
    assert "entities" in messages[1]
    assert messages[2].startswith("msg.options: mergeAttrs not supported when parsing")
    assert "'bad name' is not an XML element name" in messages[3]
    assert [e["msg"] for e in logs if e["level"] == "warn"] == [
        "This node only handles xml strings or js objects."
    ]


names = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
texts = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(
    lambda s: s.strip() == s and s
)
elements = st.recursive(
    texts,
    lambda inner: st.fixed_dictionaries(
        {
            "$": st.dictionaries(
                names,
                st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8),
                min_size=1,
                max_size=3,
            )
        },
        optional={"_": texts},
    ).flatmap(
        lambda base: st.dictionaries(
            names.filter(lambda n: n not in "$_"), st.lists(inner, min_size=1, max_size=3), max_size=3
        ).map(lambda children: {**base, **children})
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(names, elements)
def test_build_then_parse_gives_the_object_back(root, element):
    # a text child placed after elements still reads back (xml2js gathers an element's text under `_`)
    assert parse(build({root: element})) == {root: element}
