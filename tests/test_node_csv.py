"""csv node: CSV text <-> objects, as Node-RED's 70-CSV.js in RFC 4180 mode."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sofiaflow.nodes.parser.csv_node import quote_cell, read_rows
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "Flow 1"}
DEFAULTS = {
    "spec": "rfc",
    "sep": ",",
    "hdrin": "",
    "hdrout": "none",
    "multi": "one",
    "ret": "\\r\\n",
    "temp": "",
    "skip": "0",
    "strings": True,
    "include_empty_strings": "",
    "include_null_values": "",
}


def flow(**cfg):
    return [
        TAB,
        {"id": "c", "type": "csv", "z": "t1", "wires": [["o"]], **DEFAULTS, **cfg},
        {"id": "o", "type": "junction", "z": "t1", "wires": [[]]},
        {"id": "k", "type": "catch", "z": "t1", "wires": [["e"]], "scope": None, "uncaught": False},
        {"id": "e", "type": "junction", "z": "t1", "wires": [[]]},
    ]


async def run(registry, msgs, **cfg):
    async with FlowTester(flow(**cfg), registry) as t:
        for m in msgs:
            t.inject("c", m)
        await t.idle()
        return t.outputs("o")[0], t.outputs("e")[0], t.logs


TEXT = 'name,"note, quoted",n\r\nann,"said ""hi""",1.5\nbob,"two\nlines",007\r\n"c, d",,+1\n\n'


async def test_rows_become_objects_one_message_each_with_parts(registry):
    out, err, _ = await run(registry, [{"payload": TEXT, "_msgid": "m"}], hdrin=True)
    assert err == []
    assert [m["payload"] for m in out] == [
        {"name": "ann", "note, quoted": 'said "hi"', "n": 1.5},
        {"name": "bob", "note, quoted": "two\nlines", "n": "007"},
        {"name": "c, d", "n": "+1"},
    ]
    assert [m["parts"] for m in out] == [{"id": "m", "index": i, "count": 3} for i in range(3)]
    assert {m["columns"] for m in out} == {'name,"note, quoted",n'}


async def test_mult_template_skip_strings_and_empty_values(registry):
    out, _, _ = await run(
        registry,
        [{"payload": "skipped\n1,2,3,4\n 5 ,,x\n"}],
        multi="mult",
        temp='a,,"c,d"',
        skip="1",
        strings=False,
        include_null_values=True,
    )
    assert out[0]["payload"] == [{"a": "1", "c,d": "3"}, {"a": " 5 ", "c,d": "x"}]
    assert out[0]["columns"] == 'a,"c,d"'
    out, _, _ = await run(registry, [{"payload": "1,,3\n"}], multi="mult", include_null_values=True)
    assert out[0]["payload"] == [{"col1": 1, "col2": None, "col3": 3}]
    out, _, _ = await run(registry, [{"payload": "1,,3\n"}], multi="mult")
    assert out[0]["payload"] == [{"col1": 1, "col3": 3}]


@pytest.mark.parametrize(
    ("cell", "value"),
    [
        ("1e3", 1000),
        ("0x1F", 31),
        ("-2", -2),
        (" 3 ", 3),
        ("1.50", 1.5),
        ("+1", "+1"),
        ("007", "007"),
        ("-01", "-01"),
        ("0", 0),
        ("-0.5", -0.5),
        ("1_000", "1_000"),
        ("Infinity", float("inf")),
        ("abc", "abc"),
    ],
)
async def test_numbers_are_read_as_javascript_reads_them(registry, cell, value):
    out, _, _ = await run(registry, [{"payload": f"{cell}\n"}], multi="mult")
    assert out[0]["payload"] == [{"col1": value}]


async def test_multi_part_input_gathers_rows_with_the_header_of_the_first_part(registry):
    lines = ["a,b", "1,x", '2,"y, z"', "3,"]
    msgs = [{"payload": line, "parts": {"id": "p", "index": i, "count": 4}} for i, line in enumerate(lines)]
    out, _, _ = await run(registry, msgs, hdrin=True, multi="mult")
    assert len(out) == 1
    assert out[0]["payload"] == [{"a": 1, "b": "x"}, {"a": 2, "b": "y, z"}, {"a": 3}]
    assert "parts" not in out[0]
    out, _, _ = await run(registry, msgs, hdrin=True)
    assert [(m["payload"], m["parts"]["index"], m["parts"]["count"]) for m in out] == [
        ({"a": 1, "b": "x"}, 0, 3),
        ({"a": 2, "b": "y, z"}, 1, 3),
        ({"a": 3}, 2, 3),
    ]
    assert out[-1]["complete"] is True


async def test_objects_become_csv_text_with_headers(registry):
    rows = [{"name": "ann", "note": 'said "hi"', "n": 1.5}, {"name": "c, d", "note": "two\nlines", "n": None}]
    # the first object's keys become the template, so the second row's null is written as Node-RED writes it
    out, _, logs = await run(registry, [{"payload": rows}], hdrout="all")
    assert out[0]["payload"] == 'name,note,n\r\nann,"said ""hi""",1.5\r\n"c, d","two\nlines",null\r\n'
    assert out[0]["columns"] == "name,note,n"
    assert all(e["level"] != "warn" for e in logs)
    out, _, logs = await run(registry, [{"payload": rows}])  # no header line, no template: warned once
    assert out[0]["payload"].endswith('"two\nlines",null\r\n')
    assert [e["msg"] for e in logs if e["level"] == "warn"] == [
        "No columns template specified for object -> CSV."
    ]


async def test_template_arrays_and_header_once_with_reset(registry):
    msgs = [
        {"payload": [{"name": "a;b", "n;x": 2, "other": 1}]},
        {"payload": [[1, "x", None], ["y", 'q"', True]]},
        {"reset": True},
        {"payload": {"name": {"deep": [1]}}},
    ]
    out, _, _ = await run(registry, msgs, sep=";", temp='name,,"n;x"', hdrout="once", ret="\\n")
    assert [m["payload"] for m in out] == [
        'name;;"n;x"\n"a;b";;2\n',
        "1;;null\ny;;true\n",
        'name;;"n;x"\n"{""deep"":[1]}";;\n',
    ]
    assert out[0]["columns"] == "name,n;x"


async def test_bad_input_and_bad_config(registry):
    out, err, _ = await run(registry, [{"payload": 5}, {"topic": "no payload"}, {"reset": 1}])
    assert [m.get("topic") for m in out] == ["no payload"]
    assert err[0]["error"]["message"] == "This node only handles CSV strings or js objects."
    out, err, _ = await run(registry, [{"payload": []}], hdrout="all")
    assert err[0]["error"]["message"] == "CSV: no column names for the header line (empty array, no template)"
    with pytest.raises(Exception, match="temp: Malformed columns template"):
        await run(registry, [], temp='a,"b')
    with pytest.raises(Exception, match="multi must be 'one' or 'mult'"):
        await run(registry, [], multi="many")


cells = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(cells, min_size=1, max_size=5), min_size=1, max_size=5),
    st.sampled_from([",", ";", "\t"]),
)
def test_written_rows_read_back_whole_and_as_the_csv_module_reads_them(rows, sep):
    text = "\r\n".join(sep.join(quote_cell(c, sep) for c in row) for row in rows) + "\r\n"
    expected = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=sep) if row]
    assert read_rows(text, sep) == expected
    assert read_rows(text, sep) == rows
