"""README's "Where sofiaflow differs from Node-RED, on purpose", deploy by deploy, against real Node-RED.

A pair of its own (Node-RED + sofiaflow) is redeployed here, so the main pair's flows stay as they are. Each
test deploys the same flow set to both through their admin APIs and checks each side's documented behaviour.
"""

from __future__ import annotations

import copy
import json
import time

import pytest
from bench.nodered import find_node_red

from .cases import Case, build, change, fn, n, set_
from .conftest import _require
from .servers import Answer, Pair, request, sofiaflow_token

BASE = [
    Case("ping", [change("a", set_("payload", "pong"))], [], method="GET"),
    Case("base", [change("a", set_("payload", "v1"))], [], method="GET"),
]


def base_flows(version: str = "v1") -> list[dict]:
    flows = build(BASE)
    for node in flows:
        if node["id"] == "base.a":
            node["rules"][0]["to"] = version
    return flows


def tab(name: str, nodes: list[Case]) -> list[dict]:
    """The flows of extra cases (each an `http in` GET /diff/<name> on a tab of its own)."""
    return build([Case(name, nodes, [], method="GET")])


class Admin:
    """Deploys to and reads from both runtimes' admin APIs (sofiaflow's with a bearer token)."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.token = sofiaflow_token(pair.sofiaflow.url)

    def deploy(self, flows: list[dict]) -> tuple[Answer, Answer]:
        headers = {"Node-RED-Deployment-Type": "full"}
        node_red = request(self.pair.node_red.url, "POST", "/flows", flows, timeout=30, headers=headers)
        sofiaflow = request(
            self.pair.sofiaflow.url,
            "POST",
            "/flows",
            flows,
            timeout=30,
            headers={**headers, "Authorization": f"Bearer {self.token}"},
        )
        return node_red, sofiaflow

    def get(self, path: str) -> tuple[Answer, Answer]:
        return self.pair.ask("GET", path)


def eventually(check, seconds: float = 15.0):
    """The first truthy result of `check()`, polled (bounded); the last result when time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


@pytest.fixture(scope="module")
def scratch():
    _require("Node-RED (set SOFIAFLOW_NODE_RED)", find_node_red())
    pair = Pair(base_flows(), probe="/diff/ping").start()
    try:
        yield Admin(pair)
    finally:
        pair.stop()


@pytest.fixture
def admin(scratch):
    """The scratch pair, back to the base flows (v1) before each test."""
    node_red, sofiaflow = scratch.deploy(base_flows())
    assert node_red.status in (200, 204) and sofiaflow.status in (200, 204), (node_red, sofiaflow)
    assert eventually(lambda: [a.body for a in scratch.get("/diff/base")] == [b"v1", b"v1"])
    return scratch


def problems(answer: Answer) -> str:
    return answer.body.decode(errors="replace")


@pytest.mark.servers
def test_login_from_the_first_start(scratch):
    """Node-RED (no adminAuth) lets anyone read the flows; sofiaflow asks for a token from the first start."""
    node_red = request(scratch.pair.node_red.url, "GET", "/flows")
    sofiaflow = request(scratch.pair.sofiaflow.url, "GET", "/flows")
    assert node_red.status == 200 and isinstance(json.loads(node_red.body), list)
    assert sofiaflow.status == 401
    with_token = request(
        scratch.pair.sofiaflow.url, "GET", "/flows", headers={"Authorization": f"Bearer {scratch.token}"}
    )
    assert with_token.status == 200 and isinstance(json.loads(with_token.body), list)


@pytest.mark.servers
def test_duplicate_ids_are_refused(admin):
    flows = base_flows("v2") + tab("dup", [change("a", set_("payload", "one"))])
    twin = copy.deepcopy(next(node for node in flows if node["id"] == "dup.a"))
    twin["rules"][0]["to"] = "two"
    node_red, sofiaflow = admin.deploy([*flows, twin])
    assert node_red.status in (200, 204), problems(node_red)  # Node-RED runs a flow set with a duplicate id
    assert eventually(lambda: admin.get("/diff/base")[0].body == b"v2")
    assert sofiaflow.status == 400 and "dup.a" in problems(sofiaflow)
    assert admin.get("/diff/base")[1].body == b"v1"  # refused: the old flows keep running


@pytest.mark.servers
def test_a_refused_deploy_lists_every_problem_and_changes_nothing(admin):
    """A wire to a missing node and a script syntax error: Node-RED deploys (and logs the error); sofiaflow lists
    both problems (the syntax error with its line) and keeps running the flows it had."""
    flows = base_flows("v2") + tab(
        "broken",
        [
            change("a", set_("payload", "x"), wires=[["nowhere"]]),
            fn("b", "var ok = 1;\nmsg.payload = ;\nreturn msg;"),
        ],
    )
    node_red, sofiaflow = admin.deploy(flows)
    assert node_red.status in (200, 204), problems(node_red)
    assert eventually(lambda: admin.get("/diff/base")[0].body == b"v2")
    assert sofiaflow.status == 400
    text = problems(sofiaflow)
    assert "broken.nowhere" in text and "broken.b" in text and "line 2" in text, text
    assert admin.get("/diff/base")[1].body == b"v1"


@pytest.mark.servers
def test_nodes_that_cannot_run_stop_only_their_tab(admin):
    """A node type neither runtime has: Node-RED stops every flow; sofiaflow starts the tabs that can run."""
    flows = base_flows("v3") + tab("missing", [n("a", "no-such-node-type", [["res"]])])
    node_red, sofiaflow = admin.deploy(flows)
    assert node_red.status in (200, 204), problems(node_red)
    assert sofiaflow.status in (200, 204), problems(sofiaflow)
    node_red_base = eventually(lambda: admin.get("/diff/base")[0].status == 404)
    assert node_red_base, "Node-RED should not run any flow while a node type is missing"
    assert eventually(lambda: admin.get("/diff/base")[1].body == b"v3")
    assert admin.get("/diff/missing")[1].status == 404  # the tab with the missing node is stopped
    again = request(  # the v2 answer lists the nodes that keep their tab stopped, and why
        admin.pair.sofiaflow.url,
        "POST",
        "/flows",
        {"flows": flows},
        headers={"Authorization": f"Bearer {admin.token}", "Node-RED-API-Version": "v2"},
    )
    assert again.status == 200, problems(again)
    assert "no-such-node-type" in problems(again) and "missing.a" in problems(again)


@pytest.mark.servers
def test_close_handlers_of_functions_are_not_called(admin):
    """`node.on('close')` in a function body: Node-RED calls it on the next deploy; sofiaflow does not."""
    flows = (
        base_flows()
        + tab(
            "close-setup",
            [
                fn(
                    "a",
                    "node.on('close', function () { global.set('closed', 'yes'); }); msg.payload = 'set'; return msg;",
                )
            ],
        )
        + tab("close-read", [fn("a", "msg.payload = String(global.get('closed')); return msg;")])
    )
    node_red, sofiaflow = admin.deploy(flows)
    assert node_red.status in (200, 204) and sofiaflow.status in (200, 204), (node_red, sofiaflow)
    assert eventually(lambda: [a.body for a in admin.get("/diff/close-setup")] == [b"set", b"set"])
    admin.deploy(flows)  # a full deploy closes and restarts every node
    assert eventually(lambda: admin.get("/diff/close-read")[0].body == b"yes")
    assert admin.get("/diff/close-read")[1].body == b"undefined"
