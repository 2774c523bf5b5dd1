"""History in a cluster: the Parquet history is one folder every worker mounts (a shared volume), and the mover is
a singleton run by the leader only. Two workers: what the leader's mover moved, a history-query on the other
worker finds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from cluster_harness import Cluster, http, skip_unless_cluster, wait_until

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(180)]

DAY = 24 * 3600 * 1000
SCHEMA = {
    "type": "object",
    "required": ["sensor", "value"],
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    shared = tmp_path_factory.mktemp("shared-history")
    env = {"SOFIAFLOW_HISTORY_DIR": str(shared), "SOFIAFLOW_HISTORY_INTERVAL": "0.5"}
    with Cluster(workers=2, mosquitto=False, env=env) as started:
        yield started


def test_history_query_on_the_other_worker_sees_what_the_leaders_mover_moved(cluster):
    from sofiaflow.runtime.data.rtdb import open_store

    leader_id = cluster.workers[0].get("/cluster")[2]["leader"]
    leader = next(w for w in cluster.workers if w.name == leader_id)
    other = next(w for w in cluster.workers if w is not leader)
    status, _, body = other.post(
        "/ontologies", {"name": "Reading", "schema": SCHEMA, "realtime_window_days": 1, "history": True}
    )
    assert status == 201, body
    flows = [
        {"id": "tab", "type": "tab", "label": "history"},
        {"id": "in", "type": "http in", "z": "tab", "url": "/moved", "method": "get", "wires": [["q"]]},
        {
            "id": "q",
            "type": "history-query",
            "z": "tab",
            "ontology": "Reading",
            "scope": "history",
            "query": "{}",
            "sort": '{"value": 1}',
            "wires": [["out"]],
        },
        {"id": "out", "type": "http response", "z": "tab", "wires": []},
    ]
    status, _, body = other.post("/flows", {"flows": flows}, headers={"Node-RED-API-Version": "v2"})
    assert status == 200, body

    store = open_store(cluster.postgres.url)
    try:
        now = int(time.time() * 1000)
        old = [
            {"_id": f"r{i}", "sensor": "s", "value": i, "contextData": {"timestampMillis": now - 3 * DAY}}
            for i in range(20)
        ]
        fresh = {"_id": "fresh", "sensor": "s", "value": 99, "contextData": {"timestampMillis": now}}
        store.insert("Reading", [*old, fresh])
        wait_until(
            lambda: store.count("Reading", {}) == 1, 20, "the leader's mover takes what left the window"
        )
    finally:
        store.close()

    status, _, moved = http("GET", other.url + "/moved")
    assert status == 200, moved
    assert [d["value"] for d in moved] == list(range(20))
    view = other.get("/cluster")[2]
    assert [w["id"] for w in view["workers"] if w["leads"]] == [leader.name]
