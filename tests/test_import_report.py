"""Import report: runs / runs with a caveat / cannot run, per node, before anything is deployed."""

from __future__ import annotations

import json

import pytest

from sofiaflow.runtime.cli import main
from sofiaflow.runtime.errors import FlowFormatError
from sofiaflow.runtime.flows.import_report import CANNOT_RUN, CAVEAT, RUNS, format_report, import_report

TAB = {"id": "t1", "type": "tab", "label": "f"}


def node(id_, type_, **props):
    return {"id": id_, "type": type_, "z": "t1", "x": 1, "y": 1, "wires": [[]], **props}


FLOWS = [
    TAB,
    node("plain", "function", func="return msg;", outputs=1),
    node(
        "buf",
        "function",
        func="if (msg.file) { msg.payload = require('fs').readFileSync(msg.file); }\nreturn msg;",
        outputs=1,
        name="bytes",
    ),
    node("libs", "function", func="return msg;", outputs=1, libs=[{"var": "moment", "module": "moment"}]),
    node("ch", "change", rules=[{"t": "set", "p": "payload", "pt": "msg", "to": "1", "tot": "num"}]),
    node("contrib", "ui_button"),
    node("core", "global-config"),
    node("ex", "exec", command="ls"),
    node("bad", "switch", property="payload", rules="not a list"),
    node("syntax", "function", func="var x = 1;\nvar y = (;", outputs=1),
]


def by_id(entries):
    return {e["id"]: e for e in entries}


def test_each_node_is_classified_with_its_reasons(registry):
    entries = by_id(import_report(FLOWS, registry))
    assert set(entries) == {"plain", "buf", "libs", "ch", "contrib", "core", "ex", "bad", "syntax"}
    assert entries["syntax"]["status"] == CANNOT_RUN
    assert entries["syntax"]["reasons"] == ["func: SyntaxError: Unexpected token ';' (body:line 2)"]
    assert entries["plain"]["status"] == RUNS and entries["plain"]["reasons"] == []
    assert entries["ch"]["status"] == RUNS
    assert entries["buf"]["status"] == CAVEAT
    assert entries["buf"]["reasons"] == [
        "uses require: not available in the isolate (ReferenceError when reached)"
    ]
    assert entries["libs"]["status"] == CANNOT_RUN
    assert any("moment" in r for r in entries["libs"]["reasons"])
    assert entries["contrib"]["status"] == CANNOT_RUN
    assert entries["contrib"]["reasons"] == [
        "node type 'ui_button' is not installed (it comes from a Node-RED contrib package)"
    ]
    assert entries["core"]["reasons"] == [
        "Node-RED core node type 'global-config' is not available in sofiaflow"
    ]
    assert entries["ex"]["status"] == CAVEAT and "SOFIAFLOW_EXEC_ENABLED" in entries["ex"]["reasons"][0]
    assert entries["bad"]["status"] == CANNOT_RUN and "rules" in entries["bad"]["reasons"][0]


def test_the_report_deploys_nothing_and_rejects_non_lists(registry):
    import_report(FLOWS, registry)  # no engine exists: nothing could have started
    with pytest.raises(FlowFormatError):
        import_report({"not": "a list"}, registry)


def test_text_format_counts(registry):
    text = format_report(import_report(FLOWS, registry))
    assert "cannot-run function libs" in text
    assert text.splitlines()[-1] == "2 run, 2 run with a caveat, 5 cannot run"


def test_cli_import_with_report(tmp_path, capsys):
    flows = [TAB, node("plain", "function", func="return msg;", outputs=1), node("contrib", "ui_button")]
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(flows))
    code = main(["flows", "import", str(path), "--report", "--data-dir", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert "runs       function plain" in out
    assert "cannot-run ui_button contrib" in out
    assert "1 run, 0 run with a caveat, 1 cannot run" in out
    assert code == 0 and "imported" in out
