"""HTTP spread over three workers through HAProxy (the harness's config is deploy/haproxy.cfg's on test ports):
a worker killed with SIGKILL during 2,000 requests fails none of them (the balancer retries what its death cut
off) and the flow's counter in the `redis` context store equals the number of requests answered."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cluster_harness import Cluster, haproxy_config, http, skip_unless_cluster, wait_until

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(240)]

REQUESTS = 2000
DEPLOY_CFG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"

FLOWS = [
    {"id": "tab", "type": "tab", "label": "hits"},
    {"id": "in", "type": "http in", "z": "tab", "url": "/hit", "method": "get", "wires": [["count"]]},
    {
        "id": "count",
        "type": "python function",
        "z": "tab",
        "func": "msg['payload'] = str(flow.incr('hits', 1, 'redis'))\nreturn msg",
        "outputs": 1,
        "wires": [["out"]],
    },
    {"id": "out", "type": "http response", "z": "tab", "wires": []},
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(workers=3, mosquitto=False) as started:
        yield started


def test_the_test_balancer_has_the_production_retry_settings():
    production = DEPLOY_CFG.read_text()
    ours = haproxy_config(1, [("127.0.0.1", 2)])
    for line in (
        "retries 3",
        "option redispatch 1",
        "retry-on conn-failure empty-response response-timeout",
        "option httpchk GET /cluster/health",
        "http-check expect status 200",
    ):
        assert line in production and line in ours, line


def test_killing_a_worker_during_2000_requests_fails_none(cluster):
    a = cluster.workers[0]
    status, _, body = a.post("/flows", {"flows": FLOWS}, headers={"Node-RED-API-Version": "v2"})
    assert status == 200 and body["cluster"]["pending"] == [], body
    balancer = cluster.start_haproxy()
    wait_until(
        lambda: all(http("GET", w.url + "/hit")[0] == 200 for w in cluster.workers),
        10,
        "every worker serves /hit",
    )
    redis = cluster.redis_client()
    key = next(iter(redis.scan_iter(match="sofiaflow:ctx:redis:flow:tab*")))
    redis.hset(key, "hits", 0)

    victim = cluster.workers[1]
    answered: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    done = [0]

    def one(client: httpx.Client) -> None:
        try:
            response = client.get(balancer.url + "/hit", timeout=30)
        except httpx.HTTPError as exc:
            with lock:
                failures.append(repr(exc))
            return
        with lock:
            done[0] += 1
            if response.status_code == 200:
                answered.append(int(response.text))
            else:
                failures.append(f"{response.status_code}: {response.text[:200]}")
            if done[0] == REQUESTS // 3:
                victim.kill9()  # a third of the way: the worker dies with requests in flight

    with httpx.Client() as client, ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: one(client), range(REQUESTS)))

    assert not victim.alive()
    assert failures == [], failures[:5]
    assert len(answered) == REQUESTS
    assert len(set(answered)) == REQUESTS  # each answer saw its own increment
    hits = int(redis.hget(key, "hits"))
    # equal, except for a request the victim had counted when it died, unanswered: the balancer ran it again
    # on another worker (at most the 16 requests in flight)
    assert REQUESTS <= hits <= REQUESTS + 16, hits
    print(f"counter {hits} for {REQUESTS} answers")
