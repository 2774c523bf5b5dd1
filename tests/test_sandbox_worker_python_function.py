"""python function with its bodies in a sandbox worker process: every test of test_node_python_function
again in that mode, and what only a process boundary gives (other process, no host environment, limits).
"""

from __future__ import annotations

import os

import pytest

from sofiaflow.runtime.sandbox import SandboxPool
from sofiaflow.runtime.testing import FlowTester
from tests import test_node_python_function as in_process
from tests.test_node_python_function import *  # noqa: F403 - the same tests, bodies in a worker

TAB = {"id": "t1", "type": "tab", "label": "f"}


class WorkerTester(FlowTester):
    """A FlowTester with a sandbox pool of its own and `functionIsolation` "process"."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.pool = SandboxPool()
        self.engine.services["sandbox"] = self.pool
        self.engine.node_settings["functionIsolation"] = "process"

    async def __aenter__(self) -> WorkerTester:
        await super().__aenter__()
        for node in self.engine.nodes.values():
            if node.type == "python function":
                assert node._remote is not None and node.max_batch > 0, f"{node!r} runs in process"
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            await self.pool.close()


@pytest.fixture(autouse=True)
def bodies_in_a_worker(monkeypatch):
    monkeypatch.setattr(in_process, "FlowTester", WorkerTester)


def fn(body, outputs=1, wires=None, id_="f", **props):
    return {
        "id": id_,
        "type": "python function",
        "z": "t1",
        "x": 1,
        "y": 1,
        "func": body,
        "outputs": outputs,
        "wires": wires if wires is not None else [[] for _ in range(outputs)],
        **props,
    }


async def test_bodies_run_in_another_process(registry, monkeypatch):
    monkeypatch.setenv("SOFIAFLOW_FUNCTION_MODULES", "os")  # test only: lets the body ask for its pid
    body = "import os\nmsg['payload'] = os.getpid()\nreturn msg"
    t = WorkerTester([TAB, fn(body)], registry)
    t.engine.node_settings["functionExtraModules"] = ("os",)
    async with t:
        t.inject("f", {})
        await t.idle()
        pid = t.payloads("f")[0]
        assert pid != os.getpid() and pid == t.pool.worker("(admin)").pid


def catch_all():
    return {"id": "c", "type": "catch", "z": "t1", "x": 1, "y": 1, "scope": None, "wires": [["err"]]}


def sink(id_="err"):
    return {"id": id_, "type": "junction", "z": "t1", "x": 1, "y": 1, "wires": [[]]}


BOMBS = {
    "bytearrays": (
        "hog = []\nwhile True:\n    hog.append(bytearray(10**7))\nreturn msg",
        "python function: its sandbox worker ran out of memory (512 MB)",
    ),
    "strings": (
        "hog = []\nwhile True:\n    hog.append('a' * 10**7)\nreturn msg",
        "python function: its sandbox worker ran out of memory (512 MB)",
    ),
    "sum": (
        "msg['payload'] = sum(range(10**10))\nreturn msg",
        "python function: killed after 1.0 s of C code (its sandbox worker restarts)",
    ),
    "regex": (
        "import re\nmsg['payload'] = bool(re.match('(a*)*b', 'a' * 40))\nreturn msg",
        "python function: killed after 1.0 s of C code (its sandbox worker restarts)",
    ),
}


@pytest.mark.parametrize("bomb", sorted(BOMBS))
async def test_a_bomb_fails_its_message_turns_the_node_red_and_the_next_message_works(registry, bomb):
    body, error = BOMBS[bomb]
    body = (
        "if msg['payload'] == 'bomb':\n    "
        + body.replace("\n", "\n    ").replace("    return msg", "pass")
        + "\nmsg['payload'] = 'fine'\nreturn msg"
    )
    async with WorkerTester([TAB, fn(body), catch_all(), sink()], registry) as t:
        t.inject("f", {"payload": "bomb", "topic": "boom"})
        await t.idle()
        caught = t.outputs("err")[0]
        assert [(c["error"]["message"], c["topic"]) for c in caught] == [(error, "boom")]
        status = t.node("f").last_status
        assert status["fill"] == "red" and error.removeprefix("python function: ")[:40] in status["text"]
        t.inject("f", {"payload": "next"})
        await t.idle()
        assert t.payloads("f") == ["fine"]
        assert t.node("f").last_status == {}  # the red status cleared with the first batch that ran


async def test_the_body_sees_none_of_the_host_environment(registry, monkeypatch):
    monkeypatch.setenv("SOFIAFLOW_SECRET_TEST", "planted-secret")
    monkeypatch.setenv("SOFIAFLOW_FUNCTION_MODULES", "os")
    body = (
        "import os\nmsg['payload'] = {'env': env.get('SOFIAFLOW_SECRET_TEST'), 'environ': dict(os.environ),"
        " 'uid': os.getuid(), 'flow': env.get('FROM_TAB'), 'node': env.get('NR_NODE_ID')}\nreturn msg"
    )
    tab = dict(TAB, env=[{"name": "FROM_TAB", "value": "tab value", "type": "str"}])
    t = WorkerTester([tab, fn(body)], registry)
    t.engine.node_settings["functionExtraModules"] = ("os",)
    async with t:
        t.inject("f", {})
        await t.idle()
        seen = t.payloads("f")[0]
    assert seen["env"] is None and "SOFIAFLOW_SECRET_TEST" not in seen["environ"]
    assert "planted-secret" not in repr(seen)
    assert (seen["flow"], seen["node"]) == ("tab value", "f")
    if os.geteuid() == 0:
        assert seen["uid"] == 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="workers drop to nobody only under a root host")
async def test_the_body_cannot_open_the_data_dir(registry, monkeypatch, tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "sofiaflow.db").write_bytes(b"credentials")
    monkeypatch.setenv("SOFIAFLOW_FUNCTION_MODULES", "os")
    body = f"import os\nmsg['payload'] = os.listdir({str(data)!r})\nreturn msg"
    t = WorkerTester([TAB, fn(body), catch_all(), sink()], registry)
    t.engine.node_settings["functionExtraModules"] = ("os",)
    async with t:
        t.inject("f", {})
        await t.idle()
        assert t.payloads("f") == []
        assert "PermissionError" in t.outputs("err")[0][0]["error"]["message"]


async def test_values_that_do_not_cross_stay_in_the_host_and_come_back_by_identity(registry):
    body = (
        "msg['seen'] = [isinstance(msg['payload'], int), msg['raw'], msg['pair']]\n"
        "node.send({'payload': 'early', 'res': msg['res']})\nflow.set('kept', msg['res'])\nreturn msg"
    )
    live = object()
    async with WorkerTester([TAB, fn(body)], registry) as t:
        t.inject("f", {"payload": 10**30, "res": live, "raw": b"\x00\xff", "pair": (1, 2)})
        await t.idle()
        early, out = t.outputs("f")[0]
        assert early["res"] is live and out["res"] is live and out["payload"] == 10**30
        assert out["seen"] == [False, b"\x00\xff", [1, 2]]  # the huge int stayed in the host
        assert t.engine.nodes["f"].flow.get("kept") is live


async def test_node_calls_in_the_body_reach_the_host_in_order(registry):
    body = (
        "node.warn('careful')\nnode.status('blue', 'dot', 'working')\nprint('printed line')\n"
        "node.error('handled here', msg)\nreturn None"
    )
    flows = [TAB, fn(body), catch_all(), sink()]
    async with WorkerTester(flows, registry) as t:
        t.inject("f", {"payload": 1, "topic": "x"})
        await t.idle()
        assert [(e["level"], e["msg"]) for e in t.logs] == [
            ("warn", "careful"),
            ("info", "printed line"),
            ("error", "handled here"),
        ]
        assert t.node("f").last_status == {"fill": "blue", "shape": "dot", "text": "working"}
        assert [c["topic"] for c in t.outputs("err")[0]] == ["x"]


async def test_a_worker_restarted_under_the_node_gets_its_setup_again(registry):
    async with WorkerTester([TAB, fn("msg['payload'] += 1\nreturn msg")], registry) as t:
        t.inject("f", {"payload": 1})
        await t.idle()
        worker = t.pool.worker("(admin)")
        first = worker.pid
        await worker.close()  # as if it had died between two batches
        worker._closed = False
        t.inject("f", {"payload": 10})
        await t.idle()
        assert t.payloads("f") == [2, 11] and worker.pid not in (None, first)


def _owned_tester(flows, registry, mode):
    """A WorkerTester whose tabs have owners (real ownership and permissions in a SQLite config DB)."""
    from sofiaflow.runtime.data.config_db import connect
    from sofiaflow.runtime.security.ownership import FlowOwnership
    from sofiaflow.runtime.security.permissions import Permissions

    roles = {"ada": "administrator", "dev1": "developer", "dev2": "developer"}
    db = connect("sqlite://")
    owners = FlowOwnership(db)
    t = WorkerTester(flows, registry)
    t.engine.services["flow-owners"] = owners
    t.engine.services["permissions"] = Permissions(db, roles.get, lambda _name: None)
    t.engine.node_settings["functionIsolation"] = mode
    return t, owners


def _pid_flows():
    body = "import os\nmsg['payload'] = os.getpid()\nreturn msg"
    tabs = [{"id": tab, "type": "tab", "label": tab} for tab in ("t-ada", "t-dev1", "t-dev2", "t-none")]
    nodes = [dict(fn(body, id_=f"f-{tab['id']}"), z=tab["id"]) for tab in tabs]
    return tabs + nodes


@pytest.mark.parametrize("mode", ["process", "admin-in-process", "in-process"])
async def test_functionIsolation_places_each_owners_bodies(registry, monkeypatch, mode):
    monkeypatch.setenv("SOFIAFLOW_FUNCTION_MODULES", "os")
    t, owners = _owned_tester(_pid_flows(), registry, mode)
    t.engine.node_settings["functionExtraModules"] = ("os",)
    for tab, owner in (("t-ada", "ada"), ("t-dev1", "dev1"), ("t-dev2", "dev2")):
        owners.share(tab, owner=owner)
    if mode != "process":
        t.__class__ = FlowTester  # some of these run in process: skip WorkerTester's check
    try:
        await t.__aenter__()
        for tab in ("t-ada", "t-dev1", "t-dev2", "t-none"):
            t.inject(f"f-{tab}", {})
        await t.idle()
        pid = {tab: t.payloads(f"f-{tab}")[0] for tab in ("t-ada", "t-dev1", "t-dev2", "t-none")}
    finally:
        await FlowTester.__aexit__(t)
        await t.pool.close()
    host = os.getpid()
    if mode == "in-process":
        assert set(pid.values()) == {host}
    elif mode == "admin-in-process":
        assert pid["t-ada"] == host and pid["t-none"] == host
        assert host not in (pid["t-dev1"], pid["t-dev2"]) and pid["t-dev1"] != pid["t-dev2"]
    else:
        assert host not in pid.values() and len(set(pid.values())) == 4  # one worker per owner


async def test_an_unknown_functionIsolation_refuses_the_deploy(registry):
    from sofiaflow.runtime.errors import FlowValidationError

    t = WorkerTester([TAB, fn("return msg")], registry)
    t.engine.node_settings["functionIsolation"] = "sometimes"
    with pytest.raises(FlowValidationError, match="functionIsolation"):
        async with t:
            pass


async def test_the_body_reads_msg_req_and_it_comes_back_by_identity(registry):
    """msg.req crosses as a readable copy (keys and attributes, as in the server) and the host gets its own
    request object back, also through node.send and context."""
    from sofiaflow.nodes.network.http_in import HttpRequest

    body = (
        "msg['payload'] = {'name': msg['req'].query.get('name', 'anon'), 'ua': msg['req']['headers']['user-agent'],"
        " 'attr': msg['req'].method}\n"
        "node.send({'payload': 'early', 'req': msg['req']})\nreturn msg"
    )
    req = HttpRequest(query={"name": "ana"}, headers={"user-agent": "curl"}, params={}, method="GET")
    async with WorkerTester([TAB, fn(body)], registry) as t:
        t.inject("f", {"payload": None, "req": req})
        await t.idle()
        early, out = t.outputs("f")[0]
        assert out["payload"] == {"name": "ana", "ua": "curl", "attr": "GET"}
        assert early["req"] is req and out["req"] is req


async def test_messages_their_source_waits_for_share_batches_and_each_is_done_after_its_own_output(
    registry, monkeypatch
):
    from sofiaflow.nodes.function import python_remote

    sizes: list[int] = []
    real = python_remote.RemoteFunction.run_batch

    async def counting(self, msgs):
        sizes.append(len(msgs))
        return await real(self, msgs)

    monkeypatch.setattr(python_remote.RemoteFunction, "run_batch", counting)
    body = "if msg['payload'] % 3 == 0:\n    node.send([None, msg])\nelse:\n    return [msg, None]"
    flows = [
        TAB,
        fn(body, outputs=2, wires=[["slow"], ["end"]]),
        {"id": "slow", "type": "test slow", "z": "t1", "x": 1, "y": 1, "seconds": 0.01, "wires": [["end"]]},
        sink("end"),
    ]
    async with WorkerTester(flows, registry) as t:
        done: dict[int, list[int]] = {}

        def reached(n: int) -> list[int]:
            return [m["payload"] for m in (t.outputs("end")[0] if t.outputs("end") else [])]

        for n in range(40):
            msg = {"_msgid": f"m{n}", "payload": n}
            t.engine.completion.track(msg, lambda n=n: done.__setitem__(n, reached(n)))
            assert t.engine.deliver("f", msg)
            t.engine.completion.release(msg)
        await t.idle()
        assert sorted(done) == list(range(40))
        for n, seen in done.items():
            assert n in seen, f"message {n} was done before its own output reached the end"
        assert t.engine.completion.tickets == {}
        assert len(sizes) < 40 and max(sizes) > 1, sizes  # tracked messages shared batches
