"""From config schemas to form fields (editor/properties/schema.py), for every registered node type, and the
deploy-time check that refuses what the form refuses (qos "high")."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.editor.properties.form import model_problems
from sofiaflow.editor.properties.schema import WIDGETS, FieldSpec, choice_map, form_fields, humanize
from sofiaflow.editor.properties.widgets import as_stored, truthy
from sofiaflow.runtime.flows.model import load, validate
from sofiaflow.runtime.flows.registry import default_registry

REGISTRY = default_registry()
TYPES = sorted(REGISTRY.types(), key=lambda c: c.type)


def fields_of(node_type: str) -> dict[str, FieldSpec]:
    cls = REGISTRY.find(node_type)
    return {f.key: f for f in form_fields(node_type, cls.Config.model_json_schema())}


def _auto(key: str) -> str:
    return key.replace("_", " ").title()


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.type)
def test_every_field_of_every_type_has_a_widget_and_a_written_label(cls):
    specs = form_fields(cls.type, cls.Config.model_json_schema())
    for spec in specs:
        assert spec.widget in WIDGETS, (cls.type, spec.key, spec.widget)
        assert spec.label.strip(), (cls.type, spec.key)
        assert spec.label != _auto(spec.key) or spec.label == humanize(spec.key), (cls.type, spec.key)
        for other in spec.show_if:
            assert other in {s.key for s in specs} or other in cls.Config.model_fields, (cls.type, other)


@pytest.mark.parametrize("cls", TYPES, ids=lambda c: c.type)
def test_raw_json_is_asked_only_where_the_value_is_json_data(cls):
    for spec in form_fields(cls.type, cls.Config.model_json_schema()):
        if spec.widget == "json":
            assert isinstance(spec.default, (dict, list)), (cls.type, spec.key, spec.default)


def test_mqtt_in_offers_qos_and_datatype_as_choices_and_hides_nothing_unexplained():
    fields = fields_of("mqtt in")
    assert fields["qos"].widget == "select" and set(fields["qos"].options) == {0, 1, 2}
    assert fields["datatype"].widget == "select" and "auto-detect" in fields["datatype"].options
    assert fields["broker"].widget == "config" and fields["broker"].config_type == "mqtt-broker"
    assert fields["nl"].widget == "checkbox" and fields["nl"].label.startswith("Do not receive")
    assert fields["rh"].widget == "select" and fields["rh"].section
    assert fields["inputs"].widget == "select" and fields["topic"].show_if == {"inputs": 0}


def test_mqtt_broker_has_sections_a_platform_checkbox_and_real_checkboxes():
    fields = fields_of("mqtt-broker")
    assert {f.section for f in fields.values()} == {"Connection", "Messages"}
    assert fields["platform"].widget == "checkbox"
    for key in ("broker", "port", "usetls", "tls"):
        assert fields[key].show_if.get("platform") is False, key
    assert fields["tls"].widget == "config" and fields["tls"].config_type == "tls-config"
    assert fields["birthRetain"].widget == "checkbox" and fields["birthQos"].widget == "select"
    assert fields["protocolVersion"].options == {3: "MQTT V3.1 (legacy)", 4: "MQTT V3.1.1", 5: "MQTT V5"}


def test_show_if_compares_values_as_node_red_stores_them():
    spec = FieldSpec("topic", "Topic", "text", show_if={"inputs": 0, "usetls": True})
    assert spec.shown_for({"inputs": "0", "usetls": "true"})
    assert not spec.shown_for({"inputs": 1, "usetls": True})
    assert not spec.shown_for({"inputs": 0, "usetls": "false"})
    assert FieldSpec("x", "X", "text", show_if={"mode": ["a", "b"]}).shown_for({"mode": "b"})


def test_values_keep_the_type_they_were_stored_in():
    assert as_stored(True, "false") == "true" and as_stored(False, True) is False
    assert as_stored(1, "2") == "1" and as_stored(1, 2) == 1
    assert truthy("true") and truthy(True) and not truthy("false") and not truthy("")


@given(st.from_regex(r"[a-z][a-zA-Z0-9_]{0,20}", fullmatch=True))
def test_a_label_is_made_for_any_property_name(key):
    label = humanize(key)
    assert label and label[0] == label[0].upper() and "_" not in label


def test_humanize_splits_node_red_names():
    assert humanize("birthRetain") == "Birth retain"
    assert humanize("qos") == "QoS" and humanize("willQos") == "Will QoS"


def test_the_config_model_refuses_an_invalid_qos_naming_the_property():
    cls = REGISTRY.find("mqtt in")
    problems = model_problems(cls, {"id": "m1", "type": "mqtt in", "qos": "high"})
    assert set(problems) == {"qos"} and "0, 1 or 2" in problems["qos"]
    assert model_problems(cls, {"id": "m1", "type": "mqtt in", "qos": "1"}) == {}
    broker = REGISTRY.find("mqtt-broker")
    assert set(model_problems(broker, {"id": "b", "type": "mqtt-broker", "willRetain": "maybe"})) == {
        "willRetain"
    }


def test_a_deploy_with_qos_high_is_refused_naming_node_and_property():
    flows = [
        {"id": "t1", "type": "tab", "label": "t"},
        {"id": "b1", "type": "mqtt-broker", "broker": "127.0.0.1", "port": "1883"},
        {
            "id": "m1",
            "type": "mqtt in",
            "z": "t1",
            "topic": "a",
            "qos": "high",
            "broker": "b1",
            "wires": [[]],
        },
        {"id": "m2", "type": "mqtt out", "z": "t1", "qos": "", "broker": "b1", "wires": []},
    ]
    problems = [p for p in validate(load(flows, REGISTRY), REGISTRY) if p.severity == "error"]
    assert [(p.node_id, p.field) for p in problems] == [("m1", "qos")], problems
    assert "'high'" in str(problems[0]) and "m1" in str(problems[0])


def test_config_references_come_from_the_models_not_from_field_names():
    assert fields_of("tcp in")["server"].widget == "select"  # "server" / "client", not a websocket-listener
    assert fields_of("tcp request")["server"].widget == "text"  # a host name
    refs = {
        (c.type, f.key): f.config_type
        for c in TYPES
        for f in form_fields(c.type, c.Config.model_json_schema())
        if f.widget == "config"
    }
    assert refs[("api-endpoint", "api")] == "api"
    assert refs[("mqtt-broker", "tls")] == "tls-config"
    assert refs[("ssap process", "broker")] == "ssap-broker"
    assert refs[("http request", "proxy")] == "http proxy"
    assert refs[("websocket in", "client")] == "websocket-client"
    configs = {c.type for c in TYPES if c.is_config_node}
    assert set(refs.values()) == configs  # each config type is reachable from a field that references it


def test_fixed_choices_keep_the_order_the_model_gives():
    assert list(fields_of("api-endpoint")["method"].options) == ["GET", "POST", "PUT", "DELETE", "PATCH"]
    assert list(fields_of("api-endpoint")["operation"].options)[0] == "query"
    assert list(fields_of("mqtt in")["datatype"].options)[0] == "auto-detect"
    assert choice_map([["2", "two"], ["1", "one"]], {"enum": [1, 2]}) == {2: "two", 1: "one"}
    assert choice_map({"b": "B", "a": "A"}) == {"b": "B", "a": "A"}


def test_api_endpoint_parameters_are_rows_of_name_type_in_and_required():
    spec = fields_of("api-endpoint")["parameters"]
    assert spec.widget == "rows" and list(spec.columns) == ["name", "type", "in", "required"]
    assert spec.columns["required"]["type"] == "boolean" and spec.columns["in"]["default"] == "query"
    assert fields_of("api-endpoint")["api"].config_type == "api"
    assert fields_of("api-endpoint")["ontology"].service == "ontologies"
    assert (
        fields_of("python function")["func"].language == "python"
        and "dict" in fields_of("python function")["func"].help
    )


def test_header_rows_carry_node_red_s_key_and_value_types():
    for kind in ("http request", "websocket-client"):
        columns = fields_of(kind)["headers"].columns
        assert list(columns) == ["keyType", "keyValue", "valueType", "valueValue"], kind
        assert columns["keyType"]["default"] == "other" and columns["valueType"]["default"] == "other"
