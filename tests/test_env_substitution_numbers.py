"""`${VAR}` in number and boolean properties: substituted before the config is checked, as Node-RED does.

Node-RED replaces a property whose whole value is `${NAME}` (or `$(NAME)`) with the env variable's value when
the node is created, before anything checks it: a `${PORT}` in a number property is fine when PORT is a number.
A variable that is not set leaves the property as written (Node-RED's `mapEnvVarProperties`); in a number
property that is refused here, naming the node, the property, the variable and its value. The flows stored and
served keep `${PORT}`; `flows validate` (offline) checks with its own environment and leaves a variable it does
not have to the deploy.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ports import free_port

from sofiaflow.runtime.errors import FlowValidationError
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings
from sofiaflow.runtime.testing import FlowTester


def tab(env=None, tab_id="t1"):
    return {"id": tab_id, "type": "tab", "label": "T", "env": env or []}


def delay(timeout, node_id="d1", z="t1", **props):
    return {
        "id": node_id,
        "type": "delay",
        "z": z,
        "pauseType": "delay",
        "timeout": timeout,
        "timeoutUnits": "seconds",
        "wires": [[]],
        **props,
    }


def batch(count, node_id="b1", z="t1"):
    return {
        "id": node_id,
        "type": "batch",
        "z": z,
        "mode": "count",
        "count": count,
        "overlap": 0,
        "wires": [[]],
    }


def json_node(pretty, node_id="j1", z="t1"):
    return {"id": node_id, "type": "json", "z": z, "action": "str", "property": "payload", "pretty": pretty,
            "wires": [[]]}  # fmt: skip


def var_name() -> str:
    return "SF_TEST_" + uuid.uuid4().hex[:10].upper()


@contextmanager
def environ(**values):
    """Process env variables set for the block (unique names: tests running at the same time do not meet)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update({k: v for k, v in values.items() if v is not None})
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


async def refused(flows) -> list:
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(flows):
            pass
    return info.value.problems


# ----- which properties name a variable ------------------------------------------------------------------------
_texts = (
    st.sampled_from(["${A}", "$(B)", "${NR_NODE_ID}", "$x", "a${C}", "${}", "${D", "plain", ""]) | st.text()
)
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | _texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


class _Filled:
    def __init__(self, name):
        self.name = name


def _changed(before, after, path=()):
    if isinstance(after, _Filled):
        return [(path, after.name)]
    if isinstance(before, dict):
        return [p for k in before for p in _changed(before[k], after[k], (*path, k))]
    if isinstance(before, list):
        return [p for i, v in enumerate(before) for p in _changed(v, after[i], (*path, i))]
    return []


@settings(max_examples=200, deadline=None)
@given(props=st.dictionaries(st.text(max_size=4), _values, max_size=5))
def test_the_properties_found_are_exactly_those_substitution_fills(props):
    from sofiaflow.runtime.core.env import substitute_properties
    from sofiaflow.runtime.flows.env_props import env_refs

    node = {**props, "id": "${A}", "type": "x", "z": "t1", "wires": [["${A}"]]}  # never filled
    filled = substitute_properties(node, _Filled)
    expected = sorted((path, name) for path, name in _changed(node, filled))
    assert sorted((ref.path, ref.name) for ref in env_refs(node)) == expected
    assert all(not path or path[0] not in ("id", "type", "z", "wires") for path, _ in expected)


# ----- process env ------------------------------------------------------------------------------------------
async def test_a_number_property_from_the_process_env_deploys_with_the_number():
    name = var_name()
    with environ(**{name: "3"}):
        async with FlowTester([tab(), delay("${" + name + "}"), batch(f"$({name})")]) as t:
            assert t.node("d1").config.timeout == 3.0
            assert t.node("b1").config.count == 3 and type(t.node("b1").config.count) is int
            assert t.deployer.flows[1]["timeout"] == "${" + name + "}"  # the flows keep what was written


async def test_a_boolean_property_from_the_process_env():
    name = var_name()
    with environ(**{name: "true"}):
        async with FlowTester([tab(), json_node("${" + name + "}")]) as t:
            assert t.node("j1").config.pretty is True
            t.inject("j1", {"payload": {"a": 1}})
            await t.idle()
            assert t.payloads("j1") == ['{\n    "a": 1\n}']


async def test_an_inject_repeats_at_the_interval_its_variable_gives():
    name = var_name()
    inject = {"id": "i", "type": "inject", "z": "t1", "repeat": "${" + name + "}", "once": "${" + name + "_ONCE}",
              "props": [{"p": "payload"}], "payload": "tick", "payloadType": "str", "wires": [[]]}  # fmt: skip
    with environ(**{name: "2", name + "_ONCE": "false"}):
        async with FlowTester([tab(), inject], virtual_time=True) as t:
            assert t.node("i").config.repeat == 2.0 and t.node("i").config.once is False
            await t.advance(5)
            assert t.payloads("i") == ["tick", "tick"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(min_value=1, max_value=10**6))
def test_any_integer_in_the_env_is_the_configs_integer(count):
    name = var_name()

    async def check():
        async with FlowTester([tab(), batch("${" + name + "}")]) as t:
            return t.node("b1").config.count

    with environ(**{name: str(count)}):
        got = asyncio.run(check())
    assert got == count and type(got) is int


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(st.characters(codec="ascii", exclude_characters="\x00"), min_size=1, max_size=12).filter(
        lambda s: not _is_number(s)
    )
)
def test_text_that_is_not_a_number_is_refused_naming_node_property_variable_and_value(text):
    name = var_name()
    with environ(**{name: text}):
        problems = asyncio.run(refused([tab(), delay("${" + name + "}")]))
    assert len(problems) == 1
    problem = problems[0]
    assert (problem.node_id, problem.node_type, problem.field) == ("d1", "delay", "timeout")
    assert name in problem.message and repr(text) in problem.message
    assert "${" + name + "}" in problem.message


def _is_number(text: str) -> bool:
    if not text.strip():
        return True  # "" means "not set" for a number property: not an error
    try:
        float(text)
    except ValueError:
        return False
    return True


async def test_an_unset_variable_in_a_number_property_is_refused_with_a_clear_error():
    name = var_name()
    with environ(**{name: None}):
        problems = await refused([tab(), delay("${" + name + "}")])
    assert len(problems) == 1
    assert (problems[0].node_id, problems[0].field) == ("d1", "timeout")
    assert name in problems[0].message and "not set" in problems[0].message
    assert "Input should be" not in problems[0].message.split("not set")[0]


async def test_an_unset_variable_in_a_text_property_stays_as_written_as_in_node_red():
    name = var_name()
    inject = {"id": "i", "type": "inject", "z": "t1", "topic": "${" + name + "}", "props": [], "wires": [[]]}
    async with FlowTester([tab(), inject]) as t:
        assert t.node("i").config.topic == "${" + name + "}"


async def test_a_setup_error_on_an_env_property_names_the_variable():
    name = var_name()
    tcp = {"id": "tcp", "type": "tcp in", "z": "t1", "server": "server", "port": "${" + name + "}",
           "datamode": "stream", "datatype": "utf8", "newline": "", "topic": "", "wires": [[]]}  # fmt: skip
    with environ(**{name: "99999"}):
        problems = await refused([tab(), tcp])
    assert len(problems) == 1 and problems[0].node_id == "tcp"
    assert "99999" in problems[0].message and name in problems[0].message


async def test_a_tcp_server_listens_on_the_port_its_env_variable_names():
    name, port = var_name(), free_port()
    tcp = {"id": "tcp", "type": "tcp in", "z": "t1", "server": "server", "port": "${" + name + "}",
           "datamode": "single", "datatype": "utf8", "newline": "", "topic": "", "wires": [[]]}  # fmt: skip
    with environ(**{name: str(port)}):
        async with FlowTester([tab(), tcp]) as t:
            assert t.node("tcp").port == port
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"hello")
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            del reader
            for _ in range(200):  # bounded: until the server has read the connection
                if t.payloads("tcp"):
                    break
                await asyncio.sleep(0.05)
            assert t.payloads("tcp") == ["hello"]


# ----- tab, group, global and subflow env ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({"value": "7", "type": "num"}, 7.0),
        ({"value": "7", "type": "str"}, 7.0),
        ({"value": "7", "type": "json"}, 7.0),
        ({"value": "1+6", "type": "jsonata"}, 7.0),
    ],
)
async def test_tab_env_entries_of_every_type_fill_a_number_property(entry, expected):
    async with FlowTester([tab([{"name": "SECS", **entry}]), delay("${SECS}")]) as t:
        assert t.node("d1").config.timeout == expected


async def test_a_tab_env_entry_of_type_env_reads_the_process_env():
    name = var_name()
    with environ(**{name: "4"}):
        async with FlowTester([tab([{"name": "SECS", "value": name, "type": "env"}]), delay("${SECS}")]) as t:
            assert t.node("d1").config.timeout == 4.0


async def test_tab_env_bool_fills_a_boolean_property():
    async with FlowTester(
        [tab([{"name": "PRETTY", "value": "true", "type": "bool"}]), json_node("${PRETTY}")]
    ) as t:
        assert t.node("j1").config.pretty is True


async def test_a_nodes_deploy_that_changes_the_tab_env_rebuilds_the_node_with_the_new_value():
    flows = [tab([{"name": "SECS", "value": "1", "type": "num"}]), delay("${SECS}")]
    async with FlowTester(flows) as t:
        first = t.node("d1")
        flows[0]["env"][0]["value"] = "2"
        await t.deploy(flows, "nodes")
        assert t.node("d1") is not first and t.node("d1").config.timeout == 2.0
        flows[0]["env"][0]["value"] = "later"
        with pytest.raises(FlowValidationError):
            await t.deploy(flows, "nodes")
        assert t.node("d1").config.timeout == 2.0  # refused: the node that ran keeps running


async def test_a_bad_tab_env_value_is_refused_naming_where_it_comes_from():
    problems = await refused([tab([{"name": "SECS", "value": "soon", "type": "str"}]), delay("${SECS}")])
    assert len(problems) == 1
    assert "SECS" in problems[0].message and "'soon'" in problems[0].message
    assert problems[0].field == "timeout"


async def test_a_credential_env_value_is_not_shown_in_the_error():
    flows = [tab([{"name": "SECS", "value": "", "type": "cred"}]), delay("${SECS}")]
    with pytest.raises(FlowValidationError) as info:
        async with FlowTester(flows, credentials={"t1": {"SECS": "hunter2-secret"}}):
            pass
    text = " ".join(str(p) for p in info.value.problems)
    assert "SECS" in text and "hunter2-secret" not in text and "(a credential, not shown)" in text


async def test_a_credential_env_entry_fills_a_number_property():
    flows = [tab([{"name": "SECS", "value": "", "type": "cred"}]), delay("${SECS}")]
    async with FlowTester(flows, credentials={"t1": {"SECS": "8"}}) as t:
        assert t.node("d1").config.timeout == 8.0


async def test_group_env_fills_a_property_of_a_node_in_the_group():
    group = {"id": "g1", "type": "group", "z": "t1", "nodes": ["d1"], "env": [
        {"name": "SECS", "value": "5", "type": "num"}]}  # fmt: skip
    flows = [tab([{"name": "SECS", "value": "1", "type": "num"}]), group, delay("${SECS}", g="g1")]
    async with FlowTester(flows) as t:
        assert t.node("d1").config.timeout == 5.0


async def test_global_config_env_fills_a_property():
    glob = {"id": "gc", "type": "global-config", "env": [{"name": "SECS", "value": "6", "type": "num"}]}
    async with FlowTester([glob, tab(), delay("${SECS}")]) as t:
        assert t.node("d1").config.timeout == 6.0


def subflow_flows(instance_env):
    sf = {"id": "sf", "type": "subflow", "name": "S", "in": [{"wires": [{"id": "d1"}]}], "out": [],
          "env": [{"name": "SECS", "value": "2", "type": "num"}]}  # fmt: skip
    inst = {"id": "i1", "type": "subflow:sf", "z": "t1", "env": instance_env, "wires": []}
    return [tab(), sf, delay("${SECS}", z="sf"), inst]


async def test_a_subflow_instance_env_fills_its_copies_properties():
    async with FlowTester(subflow_flows([{"name": "SECS", "value": "9", "type": "num"}])) as t:
        assert t.node("i1-d1").config.timeout == 9.0
    async with FlowTester(subflow_flows([])) as t:
        assert t.node("i1-d1").config.timeout == 2.0


async def test_a_bad_subflow_instance_value_is_refused_naming_the_copy():
    problems = await refused(subflow_flows([{"name": "SECS", "value": "later", "type": "str"}]))
    assert [(p.node_id, p.field) for p in problems] == [("i1-d1", "timeout")]
    assert "SECS" in problems[0].message and "'later'" in problems[0].message


async def test_parent_prefix_skips_the_subflow_to_the_tab_env():
    flows = subflow_flows([{"name": "SECS", "value": "9", "type": "num"}])
    flows[0]["env"] = [{"name": "SECS", "value": "4", "type": "num"}]
    flows[2]["timeout"] = "${$parent.SECS}"
    async with FlowTester(flows) as t:
        assert t.node("i1-d1").config.timeout == 4.0


async def test_node_built_ins_fill_properties():
    inject = {"id": "i", "type": "inject", "z": "t1", "name": "north", "topic": "${NR_NODE_NAME}",
              "props": [], "wires": [[]]}  # fmt: skip
    async with FlowTester([tab(), inject]) as t:
        assert t.node("i").config.topic == "north"


# ----- what the checks before the build see ------------------------------------------------------------------
async def test_wires_are_checked_against_the_substituted_output_count():
    name = var_name()
    fn = {"id": "f", "type": "function", "z": "t1", "func": "return msg;", "outputs": "${" + name + "}",
          "wires": [[], ["j"]]}  # fmt: skip
    flows = [tab(), fn, {"id": "j", "type": "junction", "z": "t1", "wires": [[]]}]
    with environ(**{name: "2"}):
        async with FlowTester(flows) as t:
            assert t.node("f").config.outputs == 2
    with environ(**{name: "1"}):
        problems = await refused(flows)
    assert any("wired from output 2" in p.message for p in problems)


async def test_two_listeners_on_the_same_substituted_path_are_refused():
    a, b = var_name(), var_name()
    http_in = [
        {"id": n, "type": "http in", "z": "t1", "url": "${" + v + "}", "method": "get", "wires": [[]]}
        for n, v in (("h1", a), ("h2", b))
    ]
    with environ(**{a: "/same", b: "/same"}):
        problems = await refused([tab(), *http_in])
    assert any(p.node_id in ("h1", "h2") for p in problems)


def test_the_editor_form_leaves_a_variable_in_a_number_field_to_the_deploy():
    from sofiaflow.editor.properties.form import model_problems
    from sofiaflow.runtime.flows.registry import default_registry

    cls = default_registry().get("delay")
    assert model_problems(cls, delay("${SECS}")) == {}
    assert model_problems(cls, delay("$(SECS)")) == {}
    assert set(model_problems(cls, delay("soon"))) == {"timeout"}
    assert set(model_problems(cls, delay("x${SECS}"))) == {"timeout"}  # only a whole ${VAR} is filled


@pytest.mark.parametrize("widget", ["number", "integer"])
def test_the_editor_number_field_keeps_a_variable_as_written(widget):
    from sofiaflow.editor.properties.schema import FieldSpec
    from sofiaflow.editor.properties.widgets import number_field

    spec = FieldSpec("timeout", "Delay", widget)
    for written in ("${SECS}", "$(SECS)"):
        field = number_field(spec, written, "prop-timeout")
        assert field.check() is None and field.read() == {"timeout": written}
    field = number_field(spec, "x${SECS}", "prop-timeout")
    assert field.check() is not None  # only a whole ${VAR} is filled at deploy


# ----- stored flows and the admin API -----------------------------------------------------------------------
@asynccontextmanager
async def admin_client(tmp_path):
    """The admin API of a real Runtime (in-process over ASGI), logged in as admin."""
    rt = Runtime(Settings(data_dir=tmp_path / "data", admin_password="pw-env-test", db_url=None))
    await rt.start()
    try:
        AuthService(rt.db, rt.settings).ensure_admin()
        app = create_app(rt)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            token = await client.post(
                "/auth/token",
                data={"client_id": "node-red-admin", "grant_type": "password", "scope": "*",
                      "username": "admin", "password": "pw-env-test"},
            )  # fmt: skip
            client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            yield rt, client
    finally:
        await rt.stop()


async def test_get_flows_returns_the_variable_never_its_value(tmp_path):
    name = var_name()
    secret = "s3cr3t-" + uuid.uuid4().hex
    flows = [tab(), delay("${" + name + "}"), json_node("${" + name + "_B}")]
    with environ(**{name: "2", name + "_B": "true", name + "_SECRET": secret}):
        async with admin_client(tmp_path) as (rt, client):
            posted = await client.post("/flows", json=flows, headers={"Node-RED-Deployment-Type": "full"})
            assert posted.status_code in (200, 204), posted.text
            got = (await client.get("/flows")).json()
            assert rt.deployer.running["d1"].config.timeout == 2.0
            assert rt.deployer.running["j1"].config.pretty is True
    by_id = {o["id"]: o for o in got}
    assert by_id["d1"]["timeout"] == "${" + name + "}" and by_id["j1"]["pretty"] == "${" + name + "_B}"
    assert secret not in json.dumps(got)


async def test_a_deploy_over_http_with_an_unset_variable_is_refused_naming_it(tmp_path):
    name = var_name()
    with environ(**{name: None}):
        async with admin_client(tmp_path) as (rt, client):
            posted = await client.post("/flows", json=[tab(), delay("${" + name + "}")])
            assert posted.status_code == 400, posted.text
            assert name in posted.text and "not set" in posted.text and "d1" in posted.text
            assert rt.deployer.flows == []


# ----- flows validate (offline) ------------------------------------------------------------------------------
def cli_validate(tmp_path, flows, env) -> subprocess.CompletedProcess:
    path = tmp_path / "flows.json"
    path.write_text(json.dumps(flows))
    command = [sys.executable, "-m", "sofiaflow.runtime.cli", "flows", "validate", str(path)]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SF_TEST_")} | env
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=tmp_path, check=False, env=full_env
    )


def test_flows_validate_accepts_a_number_variable_set_in_its_environment(tmp_path):
    done = cli_validate(tmp_path, [tab(), delay("${SF_TEST_SECS}")], {"SF_TEST_SECS": "3"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok:" in done.stdout and "SF_TEST_SECS" not in done.stdout


def test_flows_validate_leaves_an_unset_variable_to_the_deploy(tmp_path):
    done = cli_validate(tmp_path, [tab(), delay("${SF_TEST_SECS}")], {})
    assert done.returncode == 0, done.stdout + done.stderr
    notes = [line for line in done.stdout.splitlines() if "SF_TEST_SECS" in line]
    assert len(notes) == 1 and notes[0].startswith("warning: ") and "'d1'" in notes[0]
    assert "set at deploy" in notes[0] and "timeout" in notes[0]


def test_flows_validate_leaves_an_unset_variable_of_a_subflow_copy_to_the_deploy(tmp_path):
    flows = subflow_flows([{"name": "SECS", "value": "SF_TEST_SECS", "type": "env"}])
    flows[1]["env"] = []
    done = cli_validate(tmp_path, flows, {})
    assert done.returncode == 0, done.stdout + done.stderr
    notes = [line for line in done.stdout.splitlines() if line.startswith("warning: ")]
    assert len(notes) == 1 and "'i1-d1'" in notes[0] and "set at deploy" in notes[0], done.stdout


def test_flows_validate_refuses_a_variable_set_to_text_in_its_environment(tmp_path):
    done = cli_validate(tmp_path, [tab(), delay("${SF_TEST_SECS}")], {"SF_TEST_SECS": "soon"})
    assert done.returncode == 1
    errors = [line for line in done.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "SF_TEST_SECS" in errors[0] and "'soon'" in errors[0]


def test_flows_import_stores_the_variable_and_leaves_it_to_the_deploy(tmp_path, capsys):
    from sofiaflow.runtime.cli import main

    path, data = tmp_path / "flows.json", tmp_path / "data"
    path.write_text(json.dumps([tab(), delay("${SF_TEST_NOT_SET_FOR_IMPORT}")]))
    with environ(SF_TEST_NOT_SET_FOR_IMPORT=None):
        assert main(["flows", "import", str(path), "--data-dir", str(data)]) == 0
        out = capsys.readouterr().out
        assert "set at deploy" in out and "SF_TEST_NOT_SET_FOR_IMPORT" in out
        assert main(["flows", "export", "-", "--data-dir", str(data)]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported[1]["timeout"] == "${SF_TEST_NOT_SET_FOR_IMPORT}"
