"""Node-RED's own admin CLI, `node-red-admin`, against a real `sofiaflow run`: target, login, list, info, and
disabling and enabling node sets (Node-RED's `node-red/<set>` names, sofiaflow's `sofiaflow/<family>`)."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
from pathlib import Path

import onesait_server
import pytest
from conftest import require_binary

from sofiaflow.runtime.flows.registry import NodeRegistry, default_registry

REPO = Path(__file__).resolve().parents[1]
CLI = REPO / ".cache" / "node-red-admin" / "node_modules" / ".bin" / "node-red-admin"
FIXTURE = Path(__file__).parent / "fixtures" / "nodered" / "admin-get-nodes.json"
"""Node-RED 4.1.15's answer to GET /nodes, recorded."""


def _cli() -> str:
    require_binary("node")
    if not CLI.exists():
        if os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1":
            pytest.fail(
                f"{CLI} is required (SOFIAFLOW_REQUIRE_SERVERS=1): npm install --prefix .cache/node-red-admin"
            )
        pytest.skip(f"node-red-admin is not installed at {CLI}")
    return str(CLI)


class AdminCli:
    def __init__(self, cli: str, home: Path) -> None:
        self.cli, self.env = cli, {**os.environ, "HOME": str(home)}

    def __call__(self, *args: str, ok: bool = True) -> str:
        done = subprocess.run([self.cli, *args], env=self.env, capture_output=True, text=True, timeout=60)
        assert (done.returncode == 0) is ok, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout + done.stderr

    def login(self, user: str, password: str) -> str:
        """`login` prompts on a terminal: answer its two prompts through a pseudo-terminal."""
        master, slave = pty.openpty()
        proc = subprocess.Popen([self.cli, "login"], env=self.env, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)
        out = b""
        try:
            for prompt, answer in ((b"Username:", user), (b"Password:", password)):
                while prompt not in out:
                    ready, _, _ = select.select([master], [], [], 30)
                    assert ready, f"no {prompt!r} prompt: {out!r}"
                    out += os.read(master, 1024)
                os.write(master, answer.encode() + b"\n")
            assert proc.wait(30) == 0, out
            while select.select([master], [], [], 1)[0]:
                try:
                    out += os.read(master, 1024)
                except OSError:  # the terminal closed with the process
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            os.close(master)
        return out.decode(errors="replace")


def _rows(listing: str) -> dict[str, tuple[list[str], str]]:
    """`list` / `info <module>` table: set id -> (its types, its state)."""
    rows: dict[str, tuple[list[str], str]] = {}
    current = None
    for line in listing.splitlines():
        cells = line.split()
        if not cells or cells[0] in ("Nodes", "Module:", "Version:"):
            continue
        if "/" in cells[0] and cells[-1] in ("enabled", "disabled"):
            current = cells[0]
            rows[current] = ([" ".join(cells[1:-1])], cells[-1])
        elif current is not None:
            rows[current][0].append(" ".join(cells))
    return rows


def _flow(kind: str, wires: list, **props: object) -> list[dict]:
    node = {"id": "n1", "type": kind, "z": "t1", "x": 1, "y": 1, "wires": wires, **props}
    return [{"id": "t1", "type": "tab", "label": "T"}, node]


def test_core_types_sit_in_node_red_s_sets():
    """Every core type sofiaflow has sits in the set Node-RED 4.1 names for it; sofiaflow's own by family."""
    registry = default_registry()
    expected = {t: s["id"] for s in json.loads(FIXTURE.read_text()) for t in s["types"]}
    for kind in ("inject", "mqtt in", "mqtt-broker", "http response", "tls-config", "csv", "join", "file in"):
        assert registry.set_id(kind) == expected[kind]
    assert registry.set_id("python function") == "sofiaflow/function"
    assert registry.set_id("window") == "sofiaflow/cep"
    local = NodeRegistry()
    local.register(registry.get("inject"), "some-contrib")
    assert local.set_id("inject") == "some-contrib/inject"  # not sofiaflow's own: a set per type


def test_node_red_admin_lists_shows_disables_and_enables_node_sets(tmp_path):
    cli = AdminCli(_cli(), tmp_path / "home")
    server = onesait_server.start(tmp_path / "data", default_flows="")
    try:
        _first_run(cli, server, tmp_path)
    finally:
        server.stop()
    again = onesait_server.start(tmp_path / "data", default_flows="")
    try:
        _after_restart(cli, again)
    finally:
        again.stop()


def _first_run(cli: AdminCli, server: onesait_server.Server, tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    assert server.base in cli("target", server.base)
    assert "Logged in" in cli.login("admin", onesait_server.PASSWORD)
    assert (tmp_path / "home" / ".node-red" / ".cli-config.json").exists()

    listed = _rows(cli("list"))
    assert listed["node-red/inject"] == (["inject"], "enabled")
    assert listed["node-red/mqtt"] == (["mqtt in", "mqtt out", "mqtt-broker"], "enabled")
    assert listed["node-red/link"][0] == ["link in", "link out", "link call"]
    assert listed["node-red/CSV"][0] == ["csv"] and listed["node-red/httpproxy"][0] == ["http proxy"]
    assert "window" in listed["sofiaflow/cep"][0]
    assert not [s for s in listed if s.startswith("sofiaflow/") and s.split("/")[1] in ("inject", "debug")]

    info = cli("info", "node-red/mqtt")
    assert "Module:    node-red" in info and "mqtt in, mqtt out, mqtt-broker" in info and "enabled" in info
    assert _rows(cli("info", "node-red"))["node-red/split"] == (["split", "join"], "enabled")
    assert "404" in cli("info", "node-red/no-such-set", ok=False)

    # a set in use by the deployed flows stays enabled, as in Node-RED
    assert server.admin.post("/flows", json=_flow("inject", [[]])).status_code == 204
    assert "Type in use: inject" in cli("disable", "node-red/inject", ok=False)
    assert server.admin.post("/flows", json=[]).status_code == 204

    out = cli("disable", "node-red/range")
    assert _rows(out)["node-red/range"] == (["range"], "disabled")
    assert "disabled" in cli("info", "node-red/range")
    refused = server.admin.post("/flows", json=_flow("range", [[]], minin=0, maxin=10, minout=0, maxout=1))
    assert refused.status_code == 400
    assert "node set 'node-red/range' is disabled" in refused.text
    assert server.admin.get("/nodes/node-red/range").json()["enabled"] is False
    assert _rows(cli("disable", "sofiaflow/cep"))["sofiaflow/cep"][1] == "disabled"

    assert (
        server.admin.put("/nodes/node-red/range", headers={"Authorization": ""}, json={}).status_code == 401
    )


def _after_restart(cli: AdminCli, again: onesait_server.Server) -> None:
    """The state outlives a restart (config DB)."""
    cli("target", again.base)
    cli.login("admin", onesait_server.PASSWORD)
    listed = _rows(cli("list"))
    assert listed["node-red/range"][1] == "disabled" and listed["sofiaflow/cep"][1] == "disabled"
    assert listed["node-red/inject"][1] == "enabled"
    assert _rows(cli("enable", "node-red/range"))["node-red/range"][1] == "enabled"
    deployed = again.admin.post("/flows", json=_flow("range", [[]], minin=0, maxin=10, minout=0, maxout=1))
    assert deployed.status_code == 204, deployed.text
    module = again.admin.put("/nodes/sofiaflow", json={"enabled": True}).json()
    assert module["name"] == "sofiaflow" and all(s["enabled"] for s in module["nodes"])
    bad = again.admin.put("/nodes/node-red/range", json={"enabled": "no"})
    assert bad.status_code == 400 and "enabled" in bad.json()["message"]
    assert again.admin.put("/nodes/nope/x", json={"enabled": True}).status_code == 404


def test_disabled_sets_persist_in_the_config_db_and_refuse_their_types(tmp_path):
    from sofiaflow.runtime.data.config_db import connect
    from sofiaflow.runtime.flows.model import load, validate

    db = connect(f"sqlite:///{tmp_path / 'config.db'}")
    registry = NodeRegistry()
    for cls in default_registry().types():
        registry.register(cls, default_registry().origin(cls.type))
    registry.set_enabled("node-red/split", False)
    registry.save_disabled(db)
    fresh = NodeRegistry()
    for cls in default_registry().types():
        fresh.register(cls, default_registry().origin(cls.type))
    fresh.load_disabled(db)
    assert fresh.disabled_sets == {"node-red/split"}
    assert fresh.disabled_set("join") == "node-red/split" and fresh.disabled_set("sort") is None
    flows = _flow("join", [[]], mode="auto") + [
        {"id": "off", "type": "split", "z": "t1", "d": True, "wires": [[]]}
    ]
    problems = [p for p in validate(load(flows, fresh), fresh) if "disabled" in p.message]
    assert [(p.node_id, p.message) for p in problems] == [
        ("n1", "node set 'node-red/split' is disabled: enable it to deploy 'join'")
    ]  # a disabled node of the set is no problem
    fresh.set_enabled("node-red/split", True)
    fresh.save_disabled(db)
    fresh.load_disabled(db)
    assert fresh.disabled_sets == set() and not [
        p for p in validate(load(flows, fresh), fresh) if "set" in p.message
    ]
    db.dispose()
