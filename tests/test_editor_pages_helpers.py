"""The control-panel pages' pure parts: settings masking, device form parsing, the live sample check, the data
query box, number formats and the monitoring chart/table rows (the pages themselves: test_editor_pages)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.editor.pages._format import duration, rate, size
from sofiaflow.editor.pages.devices import parse_rights, parse_topics
from sofiaflow.editor.pages.monitoring import chart_options, node_rows
from sofiaflow.editor.pages.ontologies import check_sample, sample_for, split_paths
from sofiaflow.editor.pages.ontology_data import doc_row, parse_filter
from sofiaflow.editor.pages.settings import MASK, settings_rows, shown_value
from sofiaflow.runtime.core.metrics import NodeRow, Snapshot
from sofiaflow.runtime.data.ontologies import Ontology
from sofiaflow.runtime.settings import Settings


def test_settings_mask_secrets_and_url_passwords(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        admin_password="hunter2",
        credential_secret=None,
        db_url="postgresql://flows:s3cret@db.local:5432/sofiaflow",
        realtime_url="mongodb://rt:pa55@127.0.0.1:27017/rt",
    )
    rows = {r["name"]: r["value"] for r in settings_rows(settings)}
    assert rows["admin_password"] == MASK and rows["credential_secret"] == "(not set)"
    assert rows["db_url"] == f"postgresql://flows:{MASK}@db.local:5432/sofiaflow"
    assert rows["realtime_database_url"] == f"mongodb://rt:{MASK}@127.0.0.1:27017/rt"
    assert rows["token_lifetime"] == str(7 * 24 * 3600) and rows["data_dir"] == str(tmp_path)
    text = json.dumps(rows)
    assert "hunter2" not in text and "s3cret" not in text and "pa55" not in text


@given(st.text(alphabet=st.characters(blacklist_characters="@/:", blacklist_categories=("Cs",)), min_size=1))
def test_no_url_password_survives(password):
    assert (
        shown_value("db_url", f"postgresql://user:{password}@host/db") == f"postgresql://user:{MASK}@host/db"
    )


def test_device_form_parsing():
    assert parse_topics(" a/{device}/#, b/+\nc ") == ["a/{device}/#", "b/+", "c"]
    assert parse_rights("Reading:insert, Alarm : ALL") == {"Reading": "INSERT", "Alarm": "ALL"}
    assert parse_rights("") == {}
    with pytest.raises(ValueError, match="'Reading' should read Ontology:RIGHT"):
        parse_rights("Reading")


def test_live_sample_check_names_the_schema_or_the_sample_path():
    schema = json.dumps({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}})
    assert check_sample(schema, '{"id": "a"}') == (True, [])
    assert check_sample(schema, '{"id": 3}') == (False, ["sample /id: 3 is not of type 'string'"])
    assert check_sample(schema, "{}") == (False, ["sample /: 'id' is a required property"])
    valid, problems = check_sample(schema, "{nope")
    assert not valid and problems[0].startswith("sample: not JSON")
    valid, problems = check_sample('{"type": 5}', "{}")
    assert not valid and problems[0].startswith("schema: not a valid") and "/type" in problems[0]
    valid, problems = check_sample("[", "{}")
    assert not valid and problems[0].startswith("schema: not JSON")


def test_sample_skeleton_and_paths():
    ontology = Ontology(
        name="X",
        description="",
        schema={
            "type": "object",
            "required": ["a", "n", "flag"],
            "properties": {"a": {"type": "string"}, "n": {"type": "number"}, "flag": {"type": "boolean"}},
        },
    )
    assert sample_for(ontology) == {"a": "", "n": 0, "flag": False}
    assert split_paths(" a.b , c,,") == ["a.b", "c"]


def test_query_box_and_result_rows():
    assert parse_filter("") == {} and parse_filter(' {"a": {"$gt": 1}} ') == {"a": {"$gt": 1}}
    with pytest.raises(ValueError, match="filter: must be a JSON object, got list"):
        parse_filter("[1]")
    with pytest.raises(ValueError, match="filter: not JSON"):
        parse_filter("{a:")
    row = doc_row(
        {"_id": "x1", "contextData": {"timestamp": "2026-01-01T00:00:00.000Z"}, "m": 1, "long": "y" * 500}
    )
    assert row["_id"] == "x1" and row["stored"] == "2026-01-01 00:00:00.000"
    assert (
        row["document"].startswith('{"long": "yyy')
        and row["document"].endswith("…")
        and "contextData" not in row
    )


def test_number_formats():
    assert [duration(v) for v in (None, 12e-6, 0.00125, 2.3)] == ["–", "12 µs", "1.25 ms", "2.30 s"]
    assert [size(v) for v in (512, 2048, 190.4 * 2**20, 3 * 2**30)] == [
        "512 B",
        "2.0 kB",
        "190.4 MB",
        "3.0 GB",
    ]
    assert [rate(v) for v in (0, 3.5, 22.0, 1204.4)] == ["0", "3.5", "22", "1,204"]


def test_monitoring_rows_and_chart():
    rows = [
        NodeRow("a", "change", "", "t1", 5, 5, 0, 0, 1e-5, 2e-5, 5, 5e-5),
        NodeRow("b", "debug", "out", "t1", 9, 0, 1, 2, None, None, 0, 0.0),
    ]
    snap = Snapshot(
        time=0,
        nodes=rows,
        flows={"t1": "Sensors"},
        pending=2,
        run_queue=2,
        messages_total=14,
        errors_total=1,
        brokers=[],
    )
    table = node_rows(snap)
    assert [r["node"] for r in table] == [
        "out",
        "change a",
    ]  # busiest first; unnamed nodes by type and short id
    assert table[0] | {} == {
        "id": "b",
        "flow": "Sensors",
        "node": "out",
        "type": "debug",
        "in": 9,
        "out": 0,
        "errors": 1,
        "mean": "–",
        "p99": "–",
        "queue": 2,
    }
    options = chart_options({"t1": [(100.0, 3.0), (101.0, 4.5)], "t2": [(101.0, 1.0)]}, {"t1": "Sensors"})
    assert [(s["name"], s["data"]) for s in options["series"]] == [
        ("Sensors", [[100000, 3.0], [101000, 4.5]]),
        ("t2", [[101000, 1.0]]),
    ]
    assert options["xAxis"]["type"] == "time"
