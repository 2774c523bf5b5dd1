"""`sofiaflow flows validate FILE` through the real command: one report with every problem and every node that
cannot run here, whether or not the file also has errors."""

from __future__ import annotations

import json
import subprocess
import sys

UNINSTALLED = [
    {"id": "u1", "type": "node-red-contrib-nosuch", "z": "t1", "wires": []},
    {"id": "u2", "type": "tcp-nothing-here", "z": "t1", "wires": []},
]


def validate(tmp_path, flows) -> subprocess.CompletedProcess:
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(flows))
    command = [sys.executable, "-m", "sofiaflow.runtime.cli", "flows", "validate", str(path)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False)


def test_a_file_with_errors_also_lists_its_nodes_of_uninstalled_types(tmp_path):
    flows = [
        {"id": "t1", "type": "tab", "label": "T"},
        {"id": "a", "type": "junction", "z": "t1", "wires": [["missing"]]},
        {"id": "b", "type": "junction", "z": "nosuchtab", "wires": [[]]},
        *UNINSTALLED,
    ]
    done = validate(tmp_path, flows)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    cannot = [line for line in lines if line.startswith("cannot run here: ")]
    assert any("missing node 'missing'" in line for line in errors)
    assert any("'b'" in line for line in errors)
    assert sorted(line.split("'")[1] for line in cannot) == ["u1", "u2"]
    assert "not installed" in cannot[0]
    assert "2 problem(s)" in done.stderr and "2 node(s) cannot run here" in done.stderr


def test_a_file_without_errors_lists_them_and_passes(tmp_path):
    done = validate(tmp_path, [{"id": "t1", "type": "tab", "label": "T"}, *UNINSTALLED])
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert sorted(line.split("'")[1] for line in lines if line.startswith("cannot run here: ")) == [
        "u1",
        "u2",
    ]
    assert lines[-1].startswith("ok: ")
