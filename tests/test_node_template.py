"""template node: Mustache as mustache.js 4.2 renders it inside Node-RED's 80-template.js."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.testing import FlowTester

TAB = {
    "id": "t1",
    "type": "tab",
    "label": "Flow 1",
    "env": [{"name": "GREETING", "value": "hello", "type": "str"}],
}


def node(id_, type_, wires=(), **props):
    return {
        "id": id_,
        "type": type_,
        "z": props.pop("z", "t1"),
        "name": props.pop("name", ""),
        "x": 100,
        "y": 100,
        "wires": [list(w) for w in wires],
        **props,
    }


def flow(template, **cfg):
    cfg.setdefault("field", "payload")
    cfg.setdefault("fieldType", "msg")
    cfg.setdefault("format", "handlebars")
    cfg.setdefault("syntax", "mustache")
    cfg.setdefault("output", "str")
    return [
        TAB,
        node("tp", "template", [["o"]], template=template, **cfg),
        node("o", "junction", [[]]),
        node("c", "catch", [["e"]], scope=None, uncaught=False),
        node("e", "junction", [[]]),
    ]


async def render(registry, template, msg, setup=None, **cfg):
    async with FlowTester(flow(template, **cfg), registry) as t:
        if setup:
            setup(t)
        t.inject("tp", msg)
        await t.idle()
        out = t.outputs("o")[0]
        if out:
            return out[0]
        raise AssertionError(t.outputs("e")[0][0]["error"]["message"])


async def test_observed_node_red_example(registry):
    # fixture flow a1f0c0de00000005: msg.greeting, msg.payload, flow context and tab env
    out = await render(
        registry,
        "{{greeting}}: value {{payload}} (count {{flow.count}}, env {{env.GREETING}})",
        {"greeting": "hi", "payload": 15},
        setup=lambda t: t.node("tp").flow.set("count", 1),
    )
    assert out["payload"] == "hi: value 15 (count 1, env hello)"
    assert out["greeting"] == "hi"


async def test_the_same_message_object_is_passed_on(registry):
    async with FlowTester(flow("x"), registry) as t:
        msg = t.inject("tp", {"payload": 1})
        await t.idle()
        assert t.outputs("o")[0][0] is msg


async def test_html_escaping_in_double_not_triple_mustache(registry):
    text = "<a href=\"x\">'&'/`=</a>"
    out = await render(registry, "{{payload}}|{{{payload}}}|{{& payload}}", {"payload": text})
    escaped = "&lt;a href&#x3D;&quot;x&quot;&gt;&#39;&amp;&#39;&#x2F;&#x60;&#x3D;&lt;&#x2F;a&gt;"
    assert out["payload"] == f"{escaped}|{text}|{text}"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7.0, "7"),
        (0.5, "0.5"),
        (15, "15"),
        (True, "true"),
        (False, "false"),
        (None, ""),
        ([1, 2.0, "x", None], "1,2,x,"),
        ({"a": 1}, "[object Object]"),
        ("", ""),
        (1e-7, "1e-7"),
    ],
)
async def test_values_render_like_javascript_string(registry, value, text):
    out = await render(registry, "[{{{payload}}}]", {"payload": value})
    assert out["payload"] == f"[{text}]"


async def test_missing_names_render_empty_and_dotted_paths_reach_into_arrays(registry):
    out = await render(
        registry,
        "{{nope}}|{{a.b.c}}|{{list.1}}|{{list.length}}|{{name.length}}",
        {"list": ["x", "y"], "name": "abc", "a": {"b": {}}},
    )
    assert out["payload"] == "||y|2|3"


async def test_sections_follow_javascript_truthiness(registry):
    tpl = (
        "{{#items}}<{{.}}>{{/items}}|{{#zero}}Z{{/zero}}|{{#empty}}E{{/empty}}|{{#obj}}{{k}}{{/obj}}"
        "|{{^none}}none{{/none}}|{{^blank}}blank{{/blank}}|{{#flag}}{{payload}}{{/flag}}|{{#emptyobj}}O{{/emptyobj}}"
    )
    out = await render(
        registry,
        tpl,
        {
            "items": [1, "b"],
            "zero": 0,
            "empty": "",
            "obj": {"k": "v"},
            "none": [],
            "blank": "",
            "flag": True,
            "payload": "p",
            "emptyobj": {},
        },
    )
    assert out["payload"] == "<1><b>|||v|none|blank|p|O"


async def test_sections_see_outer_names(registry):
    out = await render(
        registry,
        "{{#people}}{{name}} of {{team}}; {{/people}}",
        {"team": "red", "people": [{"name": "ada"}, {"name": "bob", "team": "blue"}]},
    )
    assert out["payload"] == "ada of red; bob of blue; "


async def test_standalone_tags_and_comments_leave_no_blank_lines(registry):
    out = await render(registry, "{{! note }}\n{{#a}}\nline\n{{/a}}\nend", {"a": True})
    assert out["payload"] == "line\nend"


async def test_global_context_and_named_store(registry):
    def setup(t):
        t.node("tp").global_.set("site", {"name": "north"})
        t.node("tp").flow.set("n", 3, "memory")

    out = await render(registry, "{{global.site.name}} {{flow[memory].n}} {{env.MISSING}}.", {}, setup=setup)
    assert out["payload"] == "north 3 ."


async def test_message_wins_over_context(registry):
    out = await render(
        registry,
        "{{flow.x}}",
        {"flow": {"x": "from msg"}},
        setup=lambda t: t.node("tp").flow.set("x", "from flow"),
    )
    assert out["payload"] == "from msg"


async def test_output_json_parses_and_escapes_message_strings(registry):
    out = await render(
        registry, '{"text": "{{{payload}}}", "n": {{n}}}', {"payload": "a\nb\\c", "n": 2}, output="json"
    )
    assert out["payload"] == {"text": "a\nb\\c", "n": 2}


async def test_output_json_that_does_not_parse_goes_to_catch(registry):
    with pytest.raises(AssertionError, match="Unexpected token"):
        await render(registry, "{{payload}} is not json", {"payload": "this"}, output="json")


async def test_output_yaml(registry):
    out = await render(registry, "a: {{payload}}\nlist:\n  - x\n  - y\n", {"payload": 3}, output="yaml")
    assert out["payload"] == {"a": 3, "list": ["x", "y"]}


async def test_plain_syntax_is_not_rendered(registry):
    out = await render(registry, "{{payload}}", {"payload": 1}, syntax="plain")
    assert out["payload"] == "{{payload}}"


async def test_nested_field_and_context_targets(registry):
    out = await render(registry, "v={{payload}}", {"payload": 1}, field="a.b")
    assert out["a"] == {"b": "v=1"} and out["payload"] == 1
    async with FlowTester(flow("v={{payload}}", field="saved", fieldType="flow"), registry) as t:
        t.inject("tp", {"payload": 2})
        await t.idle()
        assert t.node("tp").flow.get("saved") == "v=2"
        assert t.outputs("o")[0][0]["payload"] == 2
    async with FlowTester(flow("g", field="#:(memory)::g1", fieldType="global"), registry) as t:
        t.inject("tp", {})
        await t.idle()
        assert t.node("tp").global_.get("g1") == "g"


async def test_msg_template_used_when_node_template_is_empty(registry):
    out = await render(registry, "", {"template": "Hi {{who}}", "who": "Ada"})
    assert out["payload"] == "Hi Ada"
    out = await render(registry, "fixed", {"template": "Hi {{who}}", "who": "Ada"})
    assert out["payload"] == "fixed"


@pytest.mark.parametrize(
    "cfg",
    [
        {"template": "{{#open}} never closed"},
        {"template": "{{unclosed"},
        {"template": "ok", "fieldType": "node"},
        {"template": "ok", "output": "xml"},
        {"template": "ok", "syntax": "handlebars"},
    ],
)
async def test_bad_config_refuses_deploy(registry, cfg):
    template = cfg.pop("template")
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(flow(template, **cfg), registry):
            pass
    assert info.value.problems[0].node_id == "tp"


_ESC = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#39;",
    "/": "&#x2F;",
    "`": "&#x60;",
    "=": "&#x3D;",
}


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=40), st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=30))
def test_variables_are_escaped_and_text_is_kept(value, literal):
    async def go():
        async with FlowTester(flow(literal + "{{payload}}" + literal)) as t:
            t.inject("tp", {"payload": value})
            await t.idle()
            return t.payloads("o")

    escaped = "".join(_ESC.get(ch, ch) for ch in value)
    assert asyncio.run(go()) == [literal + escaped + literal]
