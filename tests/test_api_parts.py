"""The API Manager's parts on their own: query templates, typed parameters, quotas, API keys and the OpenAPI
document of every kind of operation."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate

from sofiaflow.runtime.api_manager.keys import ApiKeys, UnknownKeyError
from sofiaflow.runtime.api_manager.model import SpecError, api_spec, endpoint_spec
from sofiaflow.runtime.api_manager.openapi import document
from sofiaflow.runtime.api_manager.params import ParameterError, from_text, paging, read
from sofiaflow.runtime.api_manager.quota import QuotaCounter
from sofiaflow.runtime.api_manager.template import compile_template
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.data.rtdb import parse_filter

json_scalars = st.one_of(
    st.text(max_size=30),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


# ----- templates ----------------------------------------------------------------------------------------------------
@given(value=json_scalars)
def test_a_placeholder_takes_the_value_itself_never_its_text(value):
    template = compile_template('{"a": "{$p}", "b": {"$gte": "{$p}"}, "c": ["{$p}", 1]}', {"p": "string"})
    assert template.render({"p": value}, "u") == {"a": value, "b": {"$gte": value}, "c": [value, 1]}


@given(text=st.text(max_size=40))
def test_string_values_never_become_operators_or_structure(text):
    template = compile_template('{"zone": "{$z}", "name": "pre-{$z}-post"}', {"z": "string"})
    rendered = template.render({"z": text}, None)
    assert rendered == {"zone": text, "name": f"pre-{text}-post"}
    parse_filter(rendered)  # always a valid filter: equality with strings


def test_missing_optional_parameters_drop_their_conditions():
    template = compile_template(
        '{"zone": "{$zone}", "value": {"$gte": "{$min}", "$lte": "{$max}"}, '
        '"$or": [{"a": "{$a}"}, {"b": "{$b}"}]}',
        {"zone": "string", "min": "number", "max": "number", "a": "string", "b": "string"},
    )
    assert template.render({"zone": "n"}, None) == {"zone": "n"}
    assert template.render({"zone": "n", "max": 5, "b": "x"}, None) == {
        "zone": "n",
        "value": {"$lte": 5},
        "$or": [{"b": "x"}],
    }
    assert template.render({}, None) == {}


def test_context_user_and_static_templates():
    template = compile_template({"contextData.user": "$context.userId", "owner": "{$context.userId}"}, {})
    assert template.render({}, "ana") == {"contextData.user": "ana", "owner": "ana"}
    static = compile_template('{"a": {"$in": [1, 2]}}', {})
    first = static.render({}, None)
    first["a"]["$in"].append(3)
    assert static.render({}, None) == {"a": {"$in": [1, 2]}}  # each call gets its own copy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": "{$nope}"}', "{$nope}"),
        ('{"{$p}": 1}', "field names"),
        ("[1]", "JSON object"),
        ("{", "not JSON"),
        ('{"$where": "{$p}"}', "$where"),
        ('{"a": {"$function": "{$p}"}}', "$function"),
    ],
)
def test_bad_templates_are_refused_with_the_reason(text, message):
    with pytest.raises(SpecError) as err:
        compile_template(text, {"p": "string"})
    assert message in str(err.value)


# ----- parameters --------------------------------------------------------------------------------------------------
def _param(kind: str, where: str = "query", required: bool = False):
    return endpoint_spec(
        {
            "method": "POST",
            "path": "/",
            "operation": "flow",
            "parameters": [{"name": "p", "in": where, "type": kind, "required": required}],
        }
    ).parameters[0]


@given(kind=st.sampled_from(["string", "integer", "number", "boolean"]), text=st.text(max_size=30))
def test_text_parameters_are_typed_or_refused_by_name(kind, text):
    try:
        value = from_text(_param(kind), text)
    except ParameterError as exc:
        assert "'p'" in str(exc)
        return
    expected = {"string": str, "integer": int, "number": (int, float), "boolean": bool}[kind]
    assert isinstance(value, expected)
    if kind == "number":
        assert value == float(text)


@given(number=st.integers(-(10**15), 10**15))
def test_integers_round_trip(number):
    assert from_text(_param("integer"), str(number)) == number


def test_required_repeated_and_body_parameters():
    spec = endpoint_spec(
        {
            "method": "POST",
            "path": "/{id}",
            "operation": "flow",
            "parameters": [
                {"name": "id", "in": "path", "type": "integer"},
                {"name": "q", "in": "query", "required": True},
                {"name": "X-Trace", "in": "header"},
                {"name": "n", "in": "body", "type": "number"},
            ],
        }
    )
    values = read(spec.parameters, {"id": "7"}, {"q": ["a"]}, {"x-trace": "t"}, {"n": 1.5})
    assert values == {"id": 7, "q": "a", "X-Trace": "t", "n": 1.5}
    for path, query, body, message in (
        ({"id": "x"}, {"q": ["a"]}, None, "integer"),
        ({"id": "1"}, {}, None, "required"),
        ({"id": "1"}, {"q": ["a", "b"]}, None, "2 times"),
        ({"id": "1"}, {"q": ["a"]}, {"n": "1"}, "JSON number"),
        ({"id": "1"}, {"q": ["a"]}, [1], "JSON object"),
    ):
        with pytest.raises(ParameterError, match=message):
            read(spec.parameters, path, query, {}, body)
    assert paging({}, 100, 1000) == (100, 0)
    assert paging({"limit": ["5"], "offset": ["10"]}, 100, 1000) == (5, 10)
    for bad in (
        {"limit": ["0"]},
        {"limit": ["1001"]},
        {"offset": ["-1"]},
        {"limit": ["²"]},
        {"limit": ["1", "2"]},
    ):
        with pytest.raises(ParameterError):
            paging(bad, 100, 1000)


# ----- quotas and keys ---------------------------------------------------------------------------------------------
def test_quota_windows_refuse_past_the_limit_and_reopen():
    now = [1000.0]
    quota = QuotaCounter(clock=lambda: now[0])
    assert [quota.take("k", 3) for _ in range(3)] == [0.0, 0.0, 0.0]
    now[0] += 20
    assert quota.take("k", 3) == pytest.approx(40.0)
    assert quota.take("other", 3) == 0.0  # per key
    assert quota.take("k", 0) == 0.0  # 0: no limit
    now[0] += 40
    assert quota.take("k", 3) == 0.0


def test_keys_are_stored_hashed_shown_once_and_revocable(tmp_path):
    db = connect(f"sqlite:///{tmp_path / 'c.db'}")
    keys = ApiKeys(db)
    made = keys.create("ana", "dashboard")
    assert keys.user_of(made["key"]).user == "ana"
    with db.connect() as conn:
        stored = json.dumps(
            [list(r) for r in conn.exec_driver_sql("SELECT * FROM api_keys").all()], default=str
        )
    assert made["key"] not in stored
    assert [k["label"] for k in keys.list("ana")] == ["dashboard"] and keys.list("bob") == []
    assert keys.revoke(made["id"]) and not keys.revoke(made["id"])
    with pytest.raises(UnknownKeyError):
        keys.user_of(made["key"])
    with pytest.raises(UnknownKeyError):
        keys.user_of("x" * 500)


# ----- OpenAPI -----------------------------------------------------------------------------------------------------
def test_every_operation_kind_gives_a_valid_openapi_document():
    api = api_spec("all-kinds", 3, "every kind", "deprecated", 10, "ana")
    endpoints = [
        endpoint_spec(c)
        for c in (
            {
                "method": "GET",
                "path": "/",
                "operation": "query",
                "ontology": "O",
                "query": '{"a": "{$a}"}',
                "parameters": [{"name": "a", "in": "query", "type": "integer", "description": "an a"}],
            },
            {
                "method": "POST",
                "path": "/search",
                "operation": "query",
                "ontology": "O",
                "query": '{"a": "{$a}"}',
                "parameters": [{"name": "a", "in": "body", "type": "boolean", "required": True}],
            },
            {
                "method": "GET",
                "path": "/{id}",
                "operation": "getById",
                "ontology": "O",
                "parameters": [{"name": "id", "in": "path"}],
            },
            {"method": "POST", "path": "/", "operation": "insert", "ontology": "O"},
            {
                "method": "PUT",
                "path": "/{id}",
                "operation": "update",
                "ontology": "O",
                "parameters": [{"name": "id", "in": "path"}],
            },
            {
                "method": "DELETE",
                "path": "/byZone",
                "operation": "delete",
                "ontology": "O",
                "query": '{"z": "{$z}"}',
                "parameters": [{"name": "z", "in": "header", "required": True}],
            },
            {
                "method": "PATCH",
                "path": "/x/{n}/y",
                "operation": "flow",
                "summary": "custom",
                "parameters": [{"name": "n", "in": "path", "type": "number"}],
            },
        )
    ]
    doc = document(api, endpoints)
    validate(doc)
    assert doc["info"]["version"] == "3" and doc["paths"]["/{id}"]["get"]["deprecated"] is True
    assert doc["paths"]["/search"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "required"
    ] == ["a"]
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == 7
