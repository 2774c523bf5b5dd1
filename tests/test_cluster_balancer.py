"""HTTP spread over three workers through HAProxy (the harness's config is deploy/haproxy.cfg's on test ports):
a worker killed with SIGKILL during 2,000 requests fails none of them (the balancer retries what its death cut
off), and the flow, counting each request once by its balancer-given X-Request-ID in the `redis` context store,
counts exactly the requests answered. HAProxy's log (each request's id and retries) shows that a request the flow
ran more than once is one the balancer retried."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cluster_harness import (
    REQUEST_ID_LINES,
    Cluster,
    haproxy_config,
    haproxy_log,
    http,
    skip_unless_cluster,
    wait_until,
)

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(240)]

REQUESTS = 2000
DEPLOY_CFG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy.cfg"

FLOWS = [
    {"id": "tab", "type": "tab", "label": "hits"},
    {"id": "in", "type": "http in", "z": "tab", "url": "/hit", "method": "get", "wires": [["rid"]]},
    {
        "id": "rid",
        "type": "change",
        "z": "tab",
        "rules": [{"t": "set", "p": "rid", "pt": "msg", "to": 'req.headers["x-request-id"]', "tot": "msg"}],
        "wires": [["count"]],
    },
    {
        "id": "count",
        "type": "python function",
        "z": "tab",
        # one field per request id: the increment is atomic on every worker, 1 the first time the id is seen
        "func": (
            "rid = msg.get('rid')  # the header, copied by the change node\n"
            "if not rid:\n"
            "    raise ValueError('no X-Request-ID: the request did not come through the balancer')\n"
            "msg['payload'] = {'id': rid, 'runs': flow.incr('req-' + rid, 1, 'redis')}\n"
            "return msg"
        ),
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
        *REQUEST_ID_LINES,
    ):
        assert line in production and line in ours, line


def test_killing_a_worker_during_2000_requests_fails_none_and_the_flow_counts_each_once(cluster):
    a = cluster.workers[0]
    status, _, body = a.post("/flows", {"flows": FLOWS}, headers={"Node-RED-API-Version": "v2"})
    assert status == 200 and body["cluster"]["pending"] == [], body
    balancer = cluster.start_haproxy()
    wait_until(
        lambda: all(
            http("GET", w.url + "/hit", headers={"X-Request-ID": f"warm-{w.name}"})[0] == 200
            for w in cluster.workers
        ),
        10,
        "every worker serves /hit",
    )
    redis = cluster.redis_client()
    for key in redis.scan_iter(match="sofiaflow:ctx:redis:flow:tab*"):
        redis.delete(key)  # the warm-up requests' ids
    log_before = len(haproxy_log(balancer))

    victim = cluster.workers[1]
    answers: list[dict] = []
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
                answers.append(response.json())
            else:
                failures.append(f"{response.status_code}: {response.text[:200]}")
            if done[0] == REQUESTS // 3:
                victim.kill9()  # a third of the way: the worker dies with requests in flight

    with httpx.Client() as client, ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda _: one(client), range(REQUESTS)))

    assert not victim.alive()
    assert failures == [], failures[:5]
    assert len(answers) == REQUESTS
    answered = {answer["id"] for answer in answers}
    assert len(answered) == REQUESTS  # the balancer gave every request its own id

    # the flow's count: one field per request id it ran, exactly the requests answered
    (key,) = redis.scan_iter(match="sofiaflow:ctx:redis:flow:tab*")
    runs = {field.removeprefix("req-"): int(value) for field, value in redis.hgetall(key).items()}
    assert len(runs) == REQUESTS and set(runs) == answered

    # HAProxy's word on each request: answered once (200), and which ones it sent again
    def logged() -> list[dict]:
        return haproxy_log(balancer)[log_before:]

    with contextlib.suppress(AssertionError):
        wait_until(lambda: len(logged()) >= REQUESTS, 20, "HAProxy logs every request")
    log = logged()
    assert len(log) == REQUESTS, (len(log), Path(balancer.log).read_text()[-2000:])
    assert sorted(entry["id"] for entry in log) == sorted(answered)
    assert all(entry["status"] == 200 for entry in log), [e for e in log if e["status"] != 200][:5]
    retried = {entry["id"] for entry in log if entry["retries"] or entry["redispatched"]}
    assert retried, "the kill cut no request off: it did not happen under load"
    ran_again = {rid for rid, n in runs.items() if n > 1}
    assert ran_again <= retried, (
        ran_again - retried
    )  # the flow ran a request twice only when HAProxy retried it
    assert {answer["id"] for answer in answers if answer["runs"] > 1} <= ran_again
    assert all(entry["server"] != "w1" for entry in log if entry["id"] in retried)  # answered by the others
    print(
        f"{REQUESTS} answered, counted {len(runs)}; {len(retried)} retried by HAProxy, "
        f"{len(ran_again)} of them had run on the killed worker ({sum(runs.values())} runs in all)"
    )
