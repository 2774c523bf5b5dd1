"""exec node: real commands in exec and spawn mode, timeouts and msg.kill, and the deploy gate (setting, tenant)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sofiaflow.nodes.function.exec_node import split_args
from sofiaflow.runtime.core.services import FLOW_OWNERS, PERMISSIONS
from sofiaflow.runtime.data.config_db import connect
from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.security.ownership import FlowOwnership
from sofiaflow.runtime.security.permissions import Permissions
from sofiaflow.runtime.settings import Settings
from sofiaflow.runtime.testing import FlowTester

TAB = {"id": "t1", "type": "tab", "label": "f"}


def exec_node(command, **props):
    return {"id": "e", "type": "exec", "z": "t1", "command": command, "wires": [[], [], []], **props}


def exec_tester(registry, node, enabled=True) -> FlowTester:
    t = FlowTester([TAB, node], registry)
    if enabled:
        t.engine.node_settings["execEnabled"] = True
    return t


async def run(registry, node, *msgs):
    async with exec_tester(registry, node) as t:
        for m in msgs:
            t.inject("e", m)
        await t.idle()
        return t.outputs("e"), t


async def test_exec_mode_sends_stdout_and_return_code(registry):
    (out, err, rc), _ = await run(
        registry, exec_node("echo", addpay="payload", append="world"), {"payload": "hi"}
    )
    assert [m["payload"] for m in out] == ["hi world\n"]
    assert out[0]["rc"] == {"code": 0}
    assert err == []
    assert [m["payload"] for m in rc] == [{"code": 0}]


async def test_exec_mode_sends_stderr_and_failure(registry):
    (out, err, rc), _ = await run(registry, exec_node("echo oops >&2; exit 3", addpay=""), {"payload": "x"})
    assert out[0]["payload"] == ""
    assert err[0]["payload"] == "oops\n"
    assert rc[0]["payload"] == {"code": 3, "message": "Command failed: echo oops >&2; exit 3\noops\n"}
    assert err[0]["rc"]["code"] == 3


async def test_oldrc_sends_no_rc_on_success_in_exec_mode_and_the_bare_code_in_spawn_mode(registry):
    (_, _, rc), _ = await run(registry, exec_node("true", addpay="", oldrc=True), {})
    assert rc == []
    (_, _, rc), _ = await run(registry, exec_node("false", addpay="", oldrc=True, useSpawn="true"), {})
    assert [m["payload"] for m in rc] == [1]


async def test_addpay_blank_leaves_the_payload_out_and_a_missing_property_adds_nothing(registry):
    (out, _, _), _ = await run(registry, exec_node("echo a", addpay=""), {"payload": "b"})
    assert out[0]["payload"] == "a\n"
    (out, _, _), _ = await run(registry, exec_node("echo a", addpay="topic"), {"payload": "b"})
    assert out[0]["payload"] == "a\n"
    (out, _, _), _ = await run(registry, exec_node("echo a"), {"payload": 2.5})
    assert out[0]["payload"] == "a 2.5\n"


async def test_non_utf8_output_is_bytes(registry):
    (out, _, _), _ = await run(registry, exec_node("printf '\\377\\376'", addpay=""), {})
    assert out[0]["payload"] == b"\xff\xfe"


async def test_spawn_mode_streams_and_ends_with_the_code(registry):
    node = exec_node('sh -c "echo one; echo two >&2; exit 4"', addpay="", useSpawn="true")
    (out, err, rc), _ = await run(registry, node, {"topic": "t"})
    assert "".join(m["payload"] for m in out) == "one\n"
    assert "".join(m["payload"] for m in err) == "two\n"
    assert rc[0]["payload"] == {"code": 4} and rc[0]["topic"] == "t"


async def test_spawn_mode_unknown_command_gives_code_minus_two(registry):
    (_, _, rc), _ = await run(registry, exec_node("no-such-command-here", addpay="", useSpawn="true"), {})
    assert rc[0]["payload"] == {"code": -2}


@pytest.mark.parametrize("spawn", ["false", "true"])
async def test_the_timer_kills_a_command_and_its_children(registry, spawn):
    node = exec_node('sh -c "sleep 5"', addpay="", timer="0.2", useSpawn=spawn)
    async with exec_tester(registry, node) as t:
        t.inject("e", {})
        await t.idle()
        out, _, rc = t.outputs("e")
        assert t.node("e").last_status == {"fill": "red", "shape": "dot", "text": "killed"}
    payload = rc[0]["payload"]
    assert payload["code"] is None and payload["signal"] == "SIGTERM"
    if spawn == "false":
        assert payload["message"].startswith('Command failed: sh -c "sleep 5"')
        assert out[0]["rc"] == payload


async def test_msg_kill_stops_the_only_running_command(registry):
    async with exec_tester(registry, exec_node("sleep 5", addpay="", useSpawn="true")) as t:
        t.inject("e", {})
        t.inject("e", {"kill": "SIGINT"})
        await t.idle()
        assert t.outputs("e")[2][0]["payload"] == {"code": None, "signal": "SIGINT"}


async def test_msg_kill_with_a_pid_stops_that_command_only(registry):
    async with exec_tester(registry, exec_node("sleep 5; echo", useSpawn="false")) as t:
        t.inject("e", {"payload": "first"})
        t.inject("e", {"payload": "second"})
        node = t.node("e")
        for _ in range(200):  # until both processes exist
            if len(node._runs) == 2 and all(r.process is not None for r in node._runs):
                break
            await asyncio.sleep(0.01)
        pids = [r.process.pid for r in node._runs]
        t.inject("e", {"kill": "SIGKILL", "pid": pids[0]})
        t.inject("e", {"kill": "", "pid": pids[1]})  # not a signal name: SIGTERM
        await t.idle()
        signals = sorted(m["payload"]["signal"] for m in t.outputs("e")[2])
        assert signals == ["SIGKILL", "SIGTERM"]


async def test_closing_the_flow_kills_running_commands(registry, tmp_path):
    marker = tmp_path / "done"
    async with exec_tester(registry, exec_node(f"sleep 3; touch {marker}", addpay="")) as t:
        t.inject("e", {})
        node = t.node("e")
        for _ in range(200):
            if node._runs and node._runs[0].process is not None:
                break
            await asyncio.sleep(0.01)
        process = node._runs[0].process
    await process.wait()
    assert not marker.exists()


async def test_refused_unless_enabled(registry):
    with pytest.raises(FlowValidationError, match="execEnabled"):
        async with exec_tester(registry, exec_node("echo"), enabled=False):
            pass


def test_the_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SOFIAFLOW_EXEC_ENABLED", raising=False)
    assert Settings().node_settings()["execEnabled"] is False
    monkeypatch.setenv("SOFIAFLOW_EXEC_ENABLED", "1")
    assert Settings().node_settings()["execEnabled"] is True


async def test_refused_in_a_developers_flow_and_runs_in_an_administrators(registry):
    db = connect("sqlite://")
    owners = FlowOwnership(db)
    owners.share("t1", owner="dev1")
    owners.share("t2", owner="ada")
    roles = {"ada": "administrator", "dev1": "developer"}.get
    flows = [TAB, exec_node("echo")]
    admin_flows = [{"id": "t2", "type": "tab", "label": "a"}, {**exec_node("echo"), "z": "t2"}]
    for flow, refused in ((flows, True), (admin_flows, False)):
        t = exec_tester(registry, flow[1])
        t.flows = flow
        t.engine.services[FLOW_OWNERS] = owners
        t.engine.services[PERMISSIONS] = Permissions(db, roles, lambda _name: None)
        if refused:
            with pytest.raises(FlowValidationError, match="acts for 'dev1'"):
                async with t:
                    pass
        else:
            async with t:
                t.inject("e", {"payload": "ok"})
                await t.idle()
                assert t.payloads("e") == ["ok\n"]


@pytest.mark.parametrize("bad", [{"timer": "soon"}, {"timer": "-1"}, {"command": "  "}])
async def test_bad_config_is_refused_naming_the_property(registry, bad):
    node = {**exec_node("echo"), **bad}
    with pytest.raises(FlowValidationError, match=next(iter(bad))):
        async with exec_tester(registry, node):
            pass


@given(st.lists(st.text(alphabet="abc-_=./0123456789", min_size=1), min_size=1, max_size=6))
def test_split_args_keeps_plain_words_and_unquotes_quoted_ones(words):
    assert split_args(" ".join(words)) == words
    assert split_args(" ".join(f'"{w} {w}"' for w in words)) == [f"{w} {w}" for w in words]
