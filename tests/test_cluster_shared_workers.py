"""Shared state on three real workers (`sofiaflow run` processes on PostgreSQL and Redis): a counter every
worker increments through `global_.incr` in the redis context store ends exact and hands out each value
once, and an API quota holds for the calls to every worker together."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from cluster_harness import Cluster, http, skip_unless_cluster, wait_until

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(300)]

COUNTER = "msg['payload'] = str(global_.incr('hits', 1, 'redis'))\nreturn msg"

FLOWS = [
    {"id": "tab", "type": "tab", "label": "shared"},
    {"id": "in", "type": "http in", "z": "tab", "url": "/hit", "method": "get", "wires": [["fn"]]},
    {"id": "fn", "type": "python function", "z": "tab", "func": COUNTER, "outputs": 1, "wires": [["out"]]},
    {"id": "out", "type": "http response", "z": "tab", "wires": []},
    {"id": "q", "type": "api", "name": "quota", "version": 1, "state": "published", "quota": 7},
    {
        "id": "ping",
        "type": "api-endpoint",
        "z": "tab",
        "api": "q",
        "method": "GET",
        "path": "/ping",
        "operation": "flow",
        "wires": [["pong"]],
    },
    {"id": "pong", "type": "template", "z": "tab", "template": "pong", "wires": [["out"]]},
    {
        "id": "sub",
        "type": "ontology-subscribe",
        "z": "tab",
        "ontology": "Seen",
        "events": "insert",
        "wires": [["count"]],
    },
    {
        "id": "count",
        "type": "python function",
        "z": "tab",
        "func": "global_.incr('subscribed', 1, 'redis')\nreturn None",
        "outputs": 1,
        "wires": [[]],
    },
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(workers=3, mosquitto=False) as started:
        status, _, body = started.workers[0].post(
            "/ontologies", {"name": "Seen", "schema": {"type": "object"}}
        )
        assert status == 201, body
        status, _, body = started.workers[0].post(
            "/flows", {"flows": FLOWS}, headers={"Node-RED-API-Version": "v2"}
        )
        assert status == 200, body
        assert body.get("cluster", {}).get("pending", []) == [], body
        yield started


def test_a_counter_incremented_through_every_worker_ends_exact(cluster: Cluster) -> None:
    rounds = 60

    def hit(worker: Any) -> int:
        status, _, body = http("GET", worker.url + "/hit", timeout=30)
        assert status == 200, (status, body)
        return int(body)

    targets = [w for w in cluster.workers for _ in range(rounds)]
    with ThreadPoolExecutor(max_workers=9) as pool:
        values = list(pool.map(hit, targets))
    total = rounds * len(cluster.workers)
    assert sorted(values) == list(range(1, total + 1))  # each value handed out once: no lost update
    assert cluster.redis_client().hget("sofiaflow:ctx:redis:global", "hits") == str(total)
    status, _, body = cluster.workers[1].get("/context/global/hits?store=redis")
    assert status == 200 and body.get("msg") == str(total), body


def test_an_api_quota_holds_for_the_calls_to_every_worker_together(cluster: Cluster) -> None:
    first = cluster.workers[0]
    status, _, made = first.post("/api-keys", {"label": f"quota-{uuid.uuid4().hex[:6]}"})
    assert status == 201, made
    key = {"X-OP-APIKey": made["key"]}
    answers = []
    for i in range(10):
        worker = cluster.workers[i % 3]
        status, headers, body = http("GET", worker.url + "/api-manager/server/api/v1/quota/ping", headers=key)
        answers.append(status)
        if status == 429:
            assert 0 < int({k.lower(): v for k, v in headers.items()}["retry-after"]) <= 60, headers
    assert answers == [200] * 7 + [429] * 3, answers


def test_an_ontology_subscribe_node_sends_each_insert_once_whichever_worker_stored_it(
    cluster: Cluster,
) -> None:
    redis = cluster.redis_client()

    def subscribed() -> int:
        return int(redis.hget("sofiaflow:ctx:redis:global", "subscribed") or 0)

    for i, worker in enumerate([*cluster.workers, cluster.workers[1]]):
        status, _, body = worker.post("/ontologies/Seen/data", {"n": i})
        assert status == 201, body
    wait_until(lambda: subscribed() >= 4, 30, "the subscribe node sent every insert")
    status, _, body = cluster.workers[2].post("/ontologies/Seen/data", {"n": "marker"})
    assert status == 201, body
    wait_until(lambda: subscribed() >= 5, 30, "the marker")
    assert subscribed() == 5  # one node run per insert in the cluster, not one per worker
