"""The `sofiaflow` command: flows validate / import / export, and --version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sofiaflow.runtime.cli import main
from sofiaflow.runtime.flows.registry import default_registry
from sofiaflow.runtime.flows.store import revision_of

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "nodered" / "nodered-export.json"

BROKEN = [
    {"id": "t1", "type": "tab", "label": "T"},
    {"id": "a", "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [["missing"]]},
    {"id": "a", "type": "comment", "z": "t1", "x": 2, "y": 2, "wires": []},
    {"id": "b", "type": "junction", "z": "nosuchtab", "x": 3, "y": 3, "wires": [[]]},
]


@pytest.fixture
def fixture_flows() -> list:
    if not FIXTURE.exists():
        pytest.skip("the Node-RED export fixture is not available")
    return json.loads(FIXTURE.read_text())


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("sofiaflow ")


def test_validate_fixture_lists_not_runnable_nodes(fixture_flows, capsys):
    assert main(["flows", "validate", str(FIXTURE)]) == 0
    lines = capsys.readouterr().out.splitlines()
    cannot = [line for line in lines if line.startswith("cannot run here: ")]
    assert not any(line.startswith("error:") for line in lines)
    registry = default_registry()
    functions = [n for n in fixture_flows if n.get("type") == "function"]  # JavaScript functions run here
    assert functions and not any(repr(n["id"]) in line for n in functions for line in cannot)
    expected = [
        n
        for n in fixture_flows
        if n.get("type") not in registry
        and n.get("type") not in ("tab", "subflow", "group")
        and not n.get("type", "").startswith("subflow:")
    ]
    for node in expected:
        assert any(repr(node["id"]) in line for line in cannot), node["id"]
    assert lines[-1].startswith("ok: ")


def test_validate_broken_file_lists_every_problem(tmp_path, capsys):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(BROKEN))
    assert main(["flows", "validate", str(path)]) == 1
    errors = [line for line in capsys.readouterr().out.splitlines() if line.startswith("error: ")]
    assert any("'a'" in e and "duplicate id" in e for e in errors)
    assert any("missing node 'missing'" in e for e in errors)
    assert any("'b'" in e and "missing tab" in e for e in errors)
    assert len(errors) == 3


def test_validate_not_json_and_not_a_flow_set(tmp_path, capsys):
    path = tmp_path / "text.json"
    path.write_text("this is not json")
    assert main(["flows", "validate", str(path)]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    path.write_text('{"some": "object"}')
    assert main(["flows", "validate", str(path)]) == 1
    assert "expected a JSON array" in capsys.readouterr().err


def test_validate_missing_file(tmp_path, capsys):
    assert main(["flows", "validate", str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_import_then_export_round_trips(fixture_flows, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["flows", "import", str(FIXTURE), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"rev {revision_of(fixture_flows)}" in out

    target = tmp_path / "out.json"
    assert main(["flows", "export", str(target), "--data-dir", str(data)]) == 0
    assert json.loads(target.read_text()) == fixture_flows
    capsys.readouterr()
    assert main(["flows", "export", "--data-dir", str(data)]) == 0
    text = capsys.readouterr().out
    assert json.loads(text) == fixture_flows
    assert text.startswith('[\n    {\n        "id"')  # pretty-printed with 4 spaces


def test_import_refuses_broken_flows_and_keeps_the_old_ones(tmp_path, capsys):
    data = tmp_path / "data"
    good = [
        {"id": "t1", "type": "tab", "label": "T"},
        {"id": "j", "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[]]},
    ]
    (tmp_path / "good.json").write_text(json.dumps(good))
    (tmp_path / "broken.json").write_text(json.dumps(BROKEN))
    assert main(["flows", "import", str(tmp_path / "good.json"), "--data-dir", str(data)]) == 0
    assert main(["flows", "import", str(tmp_path / "broken.json"), "--data-dir", str(data)]) == 1
    assert "duplicate id" in capsys.readouterr().out
    assert main(["flows", "export", "--data-dir", str(data)]) == 0
    assert json.loads(capsys.readouterr().out) == good


def test_import_moves_credentials_out_of_the_flows(tmp_path, capsys):
    data = tmp_path / "data"
    flows = [
        {"id": "t1", "type": "tab", "label": "T"},
        {
            "id": "j",
            "type": "junction",
            "z": "t1",
            "x": 1,
            "y": 1,
            "wires": [[]],
            "credentials": {"password": "secret"},
        },
    ]
    (tmp_path / "f.json").write_text(json.dumps(flows))
    assert main(["flows", "import", str(tmp_path / "f.json"), "--data-dir", str(data)]) == 0
    capsys.readouterr()
    assert main(["flows", "export", "--data-dir", str(data)]) == 0
    exported = capsys.readouterr().out
    assert "secret" not in exported and "credentials" not in exported
    assert b"secret" not in (data / "sofiaflow.db").read_bytes()


def test_export_without_data(tmp_path, capsys):
    assert main(["flows", "export", "--data-dir", str(tmp_path / "empty")]) == 2
    assert "no sofiaflow data" in capsys.readouterr().err


def test_validate_reports_a_python_syntax_error_with_its_line(tmp_path):
    import json

    flows = [
        {"id": "t", "type": "tab", "label": "x"},
        {
            "id": "f",
            "type": "python function",
            "z": "t",
            "x": 1,
            "y": 1,
            "func": "x = 1\ny = (\n",
            "outputs": 1,
            "wires": [[]],
        },
    ]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(flows))
    from sofiaflow.runtime.cli import main

    assert main(["flows", "validate", str(path)]) == 1
