"""`${VAR}` in a number property, against real Node-RED: the same when the variable holds a number (cases.py,
"env-number-and-bool-props"); when it is not set, Node-RED deploys the node with the text as written (a delay
then waits NaN ms, that is not at all) and sofiaflow refuses the deploy, naming the node, the property and the
variable, and keeps running the flows it had.
"""

from __future__ import annotations

import pytest
from bench.nodered import find_node_red

from .cases import change, plain_delay, set_
from .conftest import _require
from .servers import Pair
from .test_deploy_differences import Admin, base_flows, eventually, problems, tab

NOT_SET = "SOFIAFLOW_DIFF_NOT_SET"


@pytest.fixture(scope="module")
def envpair():
    _require("Node-RED (set SOFIAFLOW_NODE_RED)", find_node_red())
    pair = Pair(base_flows(), probe="/diff/ping").start()
    try:
        yield Admin(pair)
    finally:
        pair.stop()


@pytest.mark.servers
def test_a_number_property_naming_a_variable_that_is_not_set(envpair):
    admin = envpair
    flows = base_flows("v2") + tab(
        "envnum", [plain_delay("${" + NOT_SET + "}", "seconds"), change("b", set_("payload", "passed"))]
    )
    node_red, sofiaflow = admin.deploy(flows)
    assert node_red.status in (200, 204), problems(node_red)
    assert eventually(lambda: admin.get("/diff/base")[0].body == b"v2")
    assert (
        admin.get("/diff/envnum")[0].body == b"passed"
    )  # Node-RED: a NaN delay, the message goes straight on
    assert sofiaflow.status == 400
    text = problems(sofiaflow)
    assert "envnum.a" in text and "timeout" in text and NOT_SET in text and "not set" in text, text
    assert admin.get("/diff/base")[1].body == b"v1"  # refused: the old flows keep running
    assert admin.get("/diff/envnum")[1].status == 404
