"""JavaScript's undefined and null stay apart wherever a JSONata or JavaScript value becomes a message property:
undefined leaves the property absent (as Node-RED's setMessageProperty deletes it), null is kept as null.

change, switch and join/reduce have their own tests in their modules; here the function node's return values
and what a template then renders from them (mustache looks an absent name up in the enclosing context).
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.runtime.api import UNDEFINED, evaluate_jsonata
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "f"}


def node(id_, type_, wires, **props):
    return {"id": id_, "type": type_, "z": "t1", "wires": wires, **props}


async def test_a_functions_undefined_properties_are_absent_and_its_nulls_kept(registry):
    body = "msg.payload = undefined; msg.a = {b: undefined, c: null}; msg.d = null; return msg;"
    flows = [TAB, node("f", "function", [[]], func=body, outputs=1)]
    async with FlowTester(flows, registry) as t:
        t.inject("f", {"payload": 1})
        await t.idle()
        out = t.outputs("f")[0][0]
    assert "payload" not in out
    assert out["a"] == {"c": None} and out["d"] is None


async def test_a_template_falls_back_to_the_enclosing_value_for_an_undefined_name_only(registry):
    items = '{"items": [{"label": "a", "name": nothing}, {"label": "b", "name": null}]}'
    change = node(
        "c",
        "change",
        [["tpl"]],
        rules=[{"t": "set", "p": "payload", "pt": "msg", "to": items, "tot": "jsonata"}],
    )
    template = node(
        "tpl",
        "template",
        [[]],
        field="payload",
        fieldType="msg",
        syntax="mustache",
        output="str",
        template="{{#payload.items}}{{label}}={{name}};{{/payload.items}}",
    )
    async with FlowTester([TAB, change, template], registry) as t:
        t.inject("c", {"name": "outer"})
        await t.idle()
        assert t.payloads("tpl") == ["a=outer;b=;"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


def _only_plain(value):
    if isinstance(value, list):
        return type(value) is list and all(_only_plain(v) for v in value)
    if isinstance(value, dict):
        return type(value) is dict and all(_only_plain(v) for v in value.values())
    return value is None or isinstance(value, (bool, int, float, str))


@given(json_values)
def test_jsonata_gives_back_present_values_as_plain_python_with_their_nulls(value):
    data = {"payload": value}
    assert evaluate_jsonata("payload", data, undefined=UNDEFINED) == value
    copied = evaluate_jsonata('{"v": [payload, payload]}', data, undefined=UNDEFINED)
    assert _only_plain(copied)
    assert evaluate_jsonata("payload.nothing.here", {"payload": {}}, undefined=UNDEFINED) is UNDEFINED
    assert evaluate_jsonata("payload.nothing.here", {"payload": {}}) is None
