"""OntologyRegistry: CRUD over the config DB, draft selection, onesait-style schemas, contextData, loading
`ontologies/*.json`, update compatibility and delete refusal (with stand-ins for the real-time DB)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.data.ontologies import (
    Ontology,
    OntologyExistsError,
    OntologyIncompatibleError,
    OntologyInUseError,
    OntologyNotFoundError,
    OntologyRegistry,
    OntologyValidationError,
    compile_schema,
    context_data,
    validation_errors,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "ontologies"

SIMPLE = {
    "type": "object",
    "required": ["assetId", "measure"],
    "properties": {"assetId": {"type": "string"}, "measure": {"type": "number"}},
}

ONESAIT = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "title": "BasicSensor",
    "type": "object",
    "required": ["BasicSensor"],
    # onesait's generator writes "type": "string" beside the $ref; draft-04 ignores $ref's siblings
    "properties": {"BasicSensor": {"type": "string", "$ref": "#/datos"}},
    "datos": {
        "type": "object",
        "required": ["assetId", "measure", "timestamp"],
        "properties": {
            "assetId": {"type": "string"},
            "measure": {"type": "number"},
            "timestamp": {
                "type": "object",
                "required": ["$date"],
                "properties": {"$date": {"type": "string", "format": "date-time"}},
            },
        },
    },
}

GOOD_ONESAIT = {
    "BasicSensor": {"assetId": "s-1", "measure": 1.0, "timestamp": {"$date": "2026-01-01T00:00:00Z"}}
}


@pytest.fixture
def db(tmp_path):
    engine = connect(f"sqlite:///{tmp_path / 'onto.db'}")
    yield engine
    engine.dispose()


@pytest.fixture
def registry(db):
    return OntologyRegistry(db)


# ----- CRUD ---------------------------------------------------------------------------------------


def test_create_get_list_update_delete(registry, db):
    created = registry.create(
        "BasicSensor",
        SIMPLE,
        "a sensor",
        owner="alice",
        realtime_window_days=30,
        history=True,
        indexes=["assetId", "assetId"],
        unique=["assetId"],
    )
    assert isinstance(created, Ontology)
    assert created.indexes == ["assetId"] and created.unique == ["assetId"]
    got = registry.get("BasicSensor")
    assert got.definition() == created.definition()
    assert got.created.tzinfo is not None and got.created == got.updated
    assert got.draft == "draft202012" and got.root is None
    assert [o.name for o in registry.list()] == ["BasicSensor"]
    # a second registry on the same DB sees it (it lives in the config DB, not in memory)
    assert OntologyRegistry(db).get("BasicSensor").owner == "alice"

    changed = registry.update("BasicSensor", description="changed", realtime_window_days=None, indexes=[])
    assert changed.description == "changed" and changed.realtime_window_days is None and changed.indexes == []
    assert changed.history is True and changed.unique == ["assetId"]  # untouched
    assert changed.updated >= changed.created
    d = changed.as_dict()
    assert d["name"] == "BasicSensor" and d["created"].endswith("Z") and d["schema"] == SIMPLE
    assert json.loads(json.dumps(d)) == d

    assert registry.delete("BasicSensor") == 0
    with pytest.raises(OntologyNotFoundError, match="BasicSensor"):
        registry.get("BasicSensor")
    assert registry.list() == []


def test_errors_name_the_field(registry):
    registry.create("A", SIMPLE)
    with pytest.raises(OntologyExistsError, match="'A'"):
        registry.create("A", SIMPLE)
    for bad_name in ("", "1abc", "has space", "a-b", "x" * 65, None, 3):
        with pytest.raises(OntologyValidationError) as info:
            registry.create(bad_name, SIMPLE)
        assert info.value.field == "name"
    registry.create("x" * 64, SIMPLE)
    cases = [
        ({"realtime_window_days": 0}, "realtime_window_days"),
        ({"realtime_window_days": 366}, "realtime_window_days"),
        ({"realtime_window_days": True}, "realtime_window_days"),
        ({"history": "yes"}, "history"),
        ({"indexes": "assetId"}, "indexes"),
        ({"indexes": ["ok", "bad path"]}, "indexes[1]"),
        ({"unique": ["a..b"]}, "unique[0]"),
        ({"colour": "red"}, "colour"),
        ({"owner": ""}, "owner"),
    ]
    for settings_, field in cases:
        with pytest.raises(OntologyValidationError) as info:
            registry.create("B", SIMPLE, **settings_)
        assert info.value.field == field, settings_
    with pytest.raises(OntologyValidationError) as info:
        registry.create("B", SIMPLE, description=5)
    assert info.value.field == "description"
    with pytest.raises(OntologyNotFoundError):
        registry.update("Nope", description="x")
    with pytest.raises(OntologyNotFoundError):
        registry.delete("Nope")
    with pytest.raises(OntologyValidationError, match="renamed"):
        registry.update("A", name="Other")
    assert not registry.exists("B")


def test_bad_schemas_are_refused_clearly(registry):
    with pytest.raises(OntologyValidationError) as info:
        registry.create("S", {"type": "strin"})
    assert (
        info.value.field == "schema"
        and "draft202012" in str(info.value)
        and info.value.schema_path == "/type"
    )
    with pytest.raises(OntologyValidationError, match="names no known JSON Schema draft"):
        registry.create("S", {"$schema": "http://example.com/my-draft", "type": "object"})
    with pytest.raises(OntologyValidationError, match="#/nowhere"):
        registry.create("S", {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}})
    with pytest.raises(OntologyValidationError, match="remote references are not fetched"):
        registry.create("S", {"$ref": "https://example.com/schema.json"})
    with pytest.raises(OntologyValidationError, match="must be a JSON Schema object"):
        registry.create("S", [1, 2])
    with pytest.raises(OntologyValidationError, match="not JSON"):
        registry.create("S", "{nope")
    # a $ref under a nested $id is only found out at validation time: reported as an error, never raised
    registry.create("N", {"properties": {"a": {"$id": "http://x.test/a", "$ref": "other.json"}}})
    assert registry.validate("N", {"a": 1})[0]["validator"] == "$ref" and not registry.is_valid("N", {"a": 1})
    # onesait's API carries the schema as a JSON string
    assert registry.create("S", json.dumps(SIMPLE)).schema == SIMPLE


# ----- drafts -------------------------------------------------------------------------------------


def test_draft_named_by_schema_or_2020_12(registry):
    # draft-04: exclusiveMinimum is a boolean modifying minimum; 2019-09+ it is a number (and a boolean is invalid)
    d4 = {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
    }
    registry.create("D4", d4)
    assert registry.get("D4").draft == "draft4"
    assert not registry.is_valid("D4", 0) and registry.is_valid("D4", 0.5)
    with pytest.raises(OntologyValidationError, match="draft202012"):
        registry.create("D2020", {k: v for k, v in d4.items() if k != "$schema"})
    registry.create("D2020", {"type": "number", "exclusiveMinimum": 0})
    assert registry.get("D2020").draft == "draft202012"
    assert not registry.is_valid("D2020", 0) and registry.is_valid("D2020", 0.5)
    errors = registry.validate("D2020", 0)
    assert errors[0]["validator"] == "exclusiveMinimum"
    # the same number-valued keyword is not a valid draft-04 schema
    with pytest.raises(OntologyValidationError, match="draft4"):
        registry.create("Bad4", {"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": 0})
    # draft-07 named explicitly; prefixItems means nothing there, items-as-array does
    registry.create(
        "D7",
        {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "array",
            "items": [{"type": "string"}],
        },
    )
    assert registry.get("D7").draft == "draft7"
    assert not registry.is_valid("D7", [1])


def test_formats_are_checked(registry):
    registry.create("T", {"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}})
    for good in ("2026-01-01T00:00:00Z", "2026-01-01T10:20:30.123+02:00", "2026-01-01t00:00:00z"):
        assert registry.is_valid("T", {"at": good}), good
    for bad in ("2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "yesterday"):
        errors = registry.validate("T", {"at": bad})
        assert errors and errors[0]["validator"] == "format" and errors[0]["path"] == "/at", bad


# ----- onesait-style ontologies -------------------------------------------------------------------


def test_onesait_style_ontology(registry):
    onto = registry.create("BasicSensor", ONESAIT)
    assert onto.draft == "draft4" and onto.root == "BasicSensor"
    assert registry.validate("BasicSensor", GOOD_ONESAIT) == []
    bad = {"BasicSensor": {"assetId": "s-1", "measure": "hot", "timestamp": {"$date": "not a date"}}}
    errors = registry.validate("BasicSensor", bad)
    by_path = {e["path"]: e for e in errors}
    assert by_path["/BasicSensor/measure"]["validator"] == "type"
    assert "'hot' is not of type 'number'" in by_path["/BasicSensor/measure"]["message"]
    assert by_path["/BasicSensor/timestamp/$date"]["validator"] == "format"
    missing = registry.validate("BasicSensor", {"BasicSensor": {"assetId": "s-1", "measure": 1}})
    assert missing == [
        {
            "path": "/BasicSensor",
            "message": "'timestamp' is a required property",
            "validator": "required",
            "schema_path": missing[0]["schema_path"],
            "property": "timestamp",
        }
    ]
    not_wrapped = registry.validate("BasicSensor", GOOD_ONESAIT["BasicSensor"])
    assert not_wrapped[0]["property"] == "BasicSensor"
    # a plain string where the schema wants {"$date": ...}
    plain = {"BasicSensor": {**GOOD_ONESAIT["BasicSensor"], "timestamp": "2026-01-01T00:00:00Z"}}
    assert registry.validate("BasicSensor", plain)[0]["path"] == "/BasicSensor/timestamp"


def test_validator_is_cached_and_refreshed(registry):
    registry.create("C", SIMPLE)
    first = registry.validator("C")
    assert registry.validator("C") is first
    registry.update("C", description="only the text")
    assert registry.validator("C") is first
    registry.update("C", schema={**SIMPLE, "required": ["assetId"]})
    assert registry.validator("C") is not first
    assert registry.is_valid("C", {"assetId": "x"})
    registry.invalidate()
    assert registry.is_valid("C", {"assetId": "x"})
    with pytest.raises(OntologyNotFoundError):
        registry.validate("Missing", {})


def test_on_change_listeners(registry):
    seen: list = []
    unsubscribe = registry.on_change(
        lambda name, o: seen.append((name, None if o is None else o.description))
    )
    registry.on_change(lambda name, o: 1 / 0)  # a failing listener does not undo anything
    registry.create("L", SIMPLE, "one")
    registry.update("L", description="two")
    registry.delete("L")
    assert seen == [("L", "one"), ("L", "two"), ("L", None)]
    unsubscribe()
    registry.create("L", SIMPLE)
    assert len(seen) == 3


# ----- contextData --------------------------------------------------------------------------------


def test_context_data():
    now = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    ctx = context_data(user="alice", device="s1", source="mqtt", timezone="Europe/Madrid", now=now)
    assert ctx == {
        "user": "alice",
        "deviceTemplate": None,
        "device": "s1",
        "clientConnection": None,
        "clientSession": None,
        "source": "mqtt",
        "timezoneId": "Europe/Madrid",
        "timestamp": "2026-03-01T12:30:15.123Z",
        "timestampMillis": 1772368215123,
    }
    assert ctx["timestampMillis"] == int(now.timestamp() * 1000)
    # another offset is turned to UTC; a naive time is taken as UTC
    plus2 = now.astimezone(timezone(timedelta(hours=2)))
    assert context_data(now=plus2)["timestamp"] == "2026-03-01T12:30:15.123Z"
    assert context_data(now=now.replace(tzinfo=None))["timestampMillis"] == ctx["timestampMillis"]
    default = context_data()
    assert default["source"] == "flow" and default["timezoneId"] == "UTC" and default["user"] is None
    assert abs(default["timestampMillis"] - datetime.now(UTC).timestamp() * 1000) < 5000
    assert context_data(device_template="t", client_session="k")["clientSession"] == "k"
    with pytest.raises(ValueError, match="source"):
        context_data(source="carrier-pigeon")
    with pytest.raises(ValueError, match="timezone"):
        context_data(timezone="Mars/Olympus")


# ----- files --------------------------------------------------------------------------------------


def test_load_directory_examples(registry):
    report = registry.load_directory(EXAMPLES)
    assert report.errors == []
    assert sorted(report.created) == [
        "AirQualityStation",
        "BasicSensor",
        "BusPosition",
        "EnergyMeter",
        "ParkingSpot",
        "TrafficFlowObserved",
        "WasteContainer",
    ]
    assert registry.get("ParkingSpot").draft == "draft4" and registry.get("ParkingSpot").root == "ParkingSpot"
    for name in report.created:
        onto = registry.get(name)
        assert onto.description and onto.indexes and onto.realtime_window_days
        assert onto.schema.get("required")
    again = registry.load_directory(EXAMPLES)
    assert again.created == [] and again.updated == [] and sorted(again.unchanged) == sorted(report.created)

    at = "2026-05-01T08:00:00Z"
    point = {"type": "Point", "coordinates": [-3.70, 40.42]}
    good = {
        "ParkingSpot": {
            "ParkingSpot": {
                "spotId": "P-12",
                "zone": "centro",
                "occupied": True,
                "location": point,
                "timestamp": {"$date": at},
            }
        },
        "AirQualityStation": {
            "stationId": "AQ-1",
            "no2": 41.5,
            "pm10": 20,
            "pm25": 11.2,
            "o3": 60,
            "temperature": 18.5,
            "humidity": 55,
            "timestamp": at,
        },
        "BusPosition": {
            "busId": "B-7",
            "line": "27",
            "location": point,
            "speed": 32.5,
            "heading": 270,
            "timestamp": at,
        },
        "EnergyMeter": {
            "meterId": "M-1",
            "kwh": 1234.5,
            "voltage": 230.1,
            "current": 4.2,
            "power": 966.4,
            "timestamp": at,
        },
    }
    for name, instance in good.items():
        assert registry.validate(name, instance) == [], name
    bad_point = {"type": "Point", "coordinates": [200, 40]}
    assert (
        registry.validate("BusPosition", {**good["BusPosition"], "location": bad_point})[0]["path"]
        == "/location/coordinates/0"
    )
    spot = good["ParkingSpot"]["ParkingSpot"]
    assert (
        registry.validate("ParkingSpot", {"ParkingSpot": {**spot, "occupied": 1}})[0]["path"]
        == "/ParkingSpot/occupied"
    )
    assert not registry.is_valid("AirQualityStation", {"stationId": "AQ-1", "timestamp": at})  # no pollutant
    assert not registry.is_valid("EnergyMeter", {**good["EnergyMeter"], "kwh": -1})


def test_load_directory_good_and_bad_files(registry, tmp_path):
    d = tmp_path / "ontologies"
    d.mkdir()
    (d / "a_good.json").write_text(
        json.dumps({"name": "Good", "description": "fine", "schema": SIMPLE, "indexes": ["assetId"]})
    )
    (d / "b_not_json.json").write_text("{ nope")
    (d / "c_no_schema.json").write_text(json.dumps({"name": "NoSchema"}))
    (d / "d_bad_schema.json").write_text(json.dumps({"name": "BadSchema", "schema": {"type": 7}}))
    (d / "e_bad_name.json").write_text(json.dumps({"name": "bad name", "schema": SIMPLE}))
    (d / "f_duplicate.json").write_text(json.dumps({"name": "Good", "schema": SIMPLE}))
    (d / "g_list.json").write_text("[]")
    (d / "h_unknown_key.json").write_text(json.dumps({"name": "Odd", "schema": SIMPLE, "colour": "red"}))
    (d / "z_also_good.json").write_text(json.dumps({"name": "AlsoGood", "schema": ONESAIT}))
    (d / "ignored.txt").write_text("not an ontology")
    report = registry.load_directory(d, owner="system")
    assert report.created == ["Good", "AlsoGood"]
    errors = {e["file"]: e["message"] for e in report.errors}
    assert set(errors) == {
        "b_not_json.json",
        "c_no_schema.json",
        "d_bad_schema.json",
        "e_bad_name.json",
        "f_duplicate.json",
        "g_list.json",
        "h_unknown_key.json",
    }
    assert "not JSON" in errors["b_not_json.json"]
    assert errors["c_no_schema.json"].startswith("schema: required")
    assert errors["d_bad_schema.json"].startswith("schema:")
    assert errors["e_bad_name.json"].startswith("name:")
    assert "a_good.json" in errors["f_duplicate.json"]
    assert "colour" in errors["h_unknown_key.json"]
    assert registry.get("Good").owner == "system"
    assert report.as_dict()["created"] == ["Good", "AlsoGood"]

    # a changed file updates; an unchanged one is left alone
    before = registry.get("AlsoGood").updated
    (d / "a_good.json").write_text(
        json.dumps({"name": "Good", "description": "better", "schema": SIMPLE, "indexes": ["assetId"]})
    )
    for name in (
        "b_not_json",
        "c_no_schema",
        "d_bad_schema",
        "e_bad_name",
        "f_duplicate",
        "g_list",
        "h_unknown_key",
    ):
        (d / f"{name}.json").unlink()
    report = registry.load_directory(d, owner="system")
    assert report.updated == ["Good"] and report.unchanged == ["AlsoGood"] and report.errors == []
    assert registry.get("Good").description == "better"
    assert registry.get("AlsoGood").updated == before

    missing = registry.load_directory(tmp_path / "nowhere")
    assert missing.errors and missing.errors[0]["message"] == "not a directory"


# ----- data-aware update and delete ---------------------------------------------------------------


def test_update_refused_when_stored_data_would_fail(db):
    stored = {
        "S": [
            {"assetId": "a", "measure": 1, "contextData": context_data(), "_id": "x1"},
            {"assetId": "b", "measure": 2.5, "contextData": context_data()},
            {"assetId": "c", "contextData": context_data()},
        ]
    }
    asked: list = []

    def sample(name, limit):
        asked.append((name, limit))
        return stored.get(name, [])[:limit]

    registry = OntologyRegistry(db, sample_existing=sample)
    registry.create("S", {**SIMPLE, "required": ["assetId"], "additionalProperties": False})
    # compatible: contextData/_id beside the body are not part of it
    registry.update(
        "S",
        schema={
            **SIMPLE,
            "required": ["assetId"],
            "additionalProperties": False,
            "properties": {**SIMPLE["properties"], "unit": {"type": "string"}},
        },
    )
    assert asked and asked[0][0] == "S"
    # incompatible: "measure" required and integer -> the 2nd and 3rd stored instances fail
    stricter = {**SIMPLE, "properties": {"assetId": {"type": "string"}, "measure": {"type": "integer"}}}
    with pytest.raises(OntologyIncompatibleError) as info:
        registry.update("S", schema=stricter)
    assert "rejects 2 of 3" in str(info.value)
    assert [f["index"] for f in info.value.failures] == [1, 2]
    assert info.value.failures[0]["errors"][0]["path"] == "/measure"
    assert info.value.failures[1]["errors"][0]["property"] == "measure"
    assert registry.get("S").schema["required"] == ["assetId"]  # nothing changed
    # other settings change without a data check
    n = len(asked)
    registry.update("S", description="x", indexes=["assetId"])
    assert len(asked) == n


def test_delete_refused_while_data_exists(db):
    counts = {"D": 3}
    purged: list = []

    def purge(name):
        purged.append(name)
        return counts.pop(name, 0)

    registry = OntologyRegistry(db, count_existing=lambda name: counts.get(name, 0), purge_existing=purge)
    registry.create("D", SIMPLE)
    with pytest.raises(OntologyInUseError, match="3 instance") as info:
        registry.delete("D")
    assert info.value.count == 3 and registry.exists("D") and purged == []
    assert registry.delete("D", purge=True) == 3
    assert purged == ["D"] and not registry.exists("D")
    registry.create("E", SIMPLE)
    assert registry.delete("E") == 0  # no data: no purge needed

    counted_only = OntologyRegistry(db, count_existing=lambda name: 1)
    counted_only.create("F", SIMPLE)
    with pytest.raises(OntologyInUseError, match="no data store"):
        counted_only.delete("F", purge=True)


# ----- property: generated instances --------------------------------------------------------------

_TYPES = {
    "string": st.text(max_size=20),
    "integer": st.integers(-(10**9), 10**9),
    "number": st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "array": st.lists(st.integers(), max_size=3),
}
_DRAFTS = [
    None,
    "http://json-schema.org/draft-04/schema#",
    "http://json-schema.org/draft-07/schema#",
    "https://json-schema.org/draft/2020-12/schema",
]


@st.composite
def schema_and_instance(draw):
    names = draw(
        st.lists(
            st.from_regex(r"[a-z][a-zA-Z0-9_]{0,11}", fullmatch=True), min_size=1, max_size=6, unique=True
        )
    )
    types = {n: draw(st.sampled_from(sorted(_TYPES))) for n in names}
    required = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    schema = {
        "type": "object",
        "required": required,
        "additionalProperties": False,
        "properties": {n: {"type": t} for n, t in types.items()},
    }
    draft = draw(st.sampled_from(_DRAFTS))
    if draft:
        schema["$schema"] = draft
    present = set(required) | set(draw(st.lists(st.sampled_from(names), unique=True)))
    instance = {n: draw(_TYPES[types[n]]) for n in names if n in present}
    dropped = draw(st.sampled_from(required))
    return schema, instance, dropped


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schema_and_instance())
def test_generated_instances_validate_and_missing_required_is_named(case):
    schema, instance, dropped = case
    validator = compile_schema(schema)
    assert validation_errors(validator, instance) == []
    without = {k: v for k, v in instance.items() if k != dropped}
    errors = validation_errors(validator, without)
    assert errors
    assert any(
        e["validator"] == "required"
        and e["property"] == dropped
        and e["path"] == ""
        and repr(dropped) in e["message"]
        for e in errors
    )
