"""Deploys in a cluster of three real workers (PostgreSQL config DB, Redis): a deploy on one worker runs on every
worker, a worker away during a deploy catches up, a stale revision is refused by any worker, and `GET /cluster`
lists the live workers."""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cluster_harness import Cluster, http, skip_unless_cluster, wait_until

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(180)]


def version_flows(version: str, extra: str = "") -> list[dict]:
    """GET /version answers `version`; GET /extra answers `extra` (a second, separate endpoint)."""
    return [
        {"id": "tab", "type": "tab", "label": "cluster"},
        {"id": "in", "type": "http in", "z": "tab", "url": "/version", "method": "get", "wires": [["tpl"]]},
        {"id": "tpl", "type": "template", "z": "tab", "template": version, "wires": [["out"]]},
        {"id": "out", "type": "http response", "z": "tab", "wires": []},
        {"id": "in2", "type": "http in", "z": "tab", "url": "/extra", "method": "get", "wires": [["tpl2"]]},
        {"id": "tpl2", "type": "template", "z": "tab", "template": extra or "none", "wires": [["out2"]]},
        {"id": "out2", "type": "http response", "z": "tab", "wires": []},
    ]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(workers=3, mosquitto=False, env={"SOFIAFLOW_CLUSTER_DEPLOY_TIMEOUT": "3"}) as started:
        yield started


def answers(worker, path: str = "/version") -> str | None:
    try:
        status, _, body = http("GET", worker.url + path, timeout=5)
    except OSError:
        return None
    return body if status == 200 else None


def deploy(worker, flows: list, rev: str | None = None, deploy_type: str = "full"):
    body: dict = {"flows": flows}
    if rev is not None:
        body["rev"] = rev
    return worker.post(
        "/flows", body, headers={"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": deploy_type}
    )


def test_a_deploy_on_one_worker_runs_on_every_worker(cluster):
    a, b, c = cluster.workers
    status, headers, body = deploy(a, version_flows("one"))
    assert status == 200, body
    # the answer waits for every live worker to report the new revision
    assert body["cluster"]["pending"] == [], body
    assert sorted(body["cluster"]["applied"]) == ["w1", "w2", "w3"]
    assert headers["x-sofiaflow-cluster-pending"] == ""
    for worker in (a, b, c):
        assert worker.get("/flows", headers={"Node-RED-API-Version": "v2"})[2]["rev"] == body["rev"]
        wait_until(lambda w=worker: answers(w) == "one", 5, f"{worker.name} serves the new flows")

    status, _, second = deploy(b, version_flows("two"), rev=body["rev"])
    assert status == 200, second
    assert int(second["cluster"]["revision"]) > int(body["cluster"]["revision"])
    for worker in (a, b, c):
        assert answers(worker) == "two"


def test_other_workers_apply_the_same_deploy_type(cluster):
    a, b, _ = cluster.workers
    _, _, base = deploy(a, version_flows("three", "x1"))
    wait_until(lambda: answers(b, "/extra") == "x1", 5, "the base revision runs on b")
    _, _, changed = deploy(a, version_flows("three", "x2"), rev=base["rev"], deploy_type="nodes")
    assert changed["cluster"]["pending"] == []
    assert answers(b, "/extra") == "x2" and answers(b) == "three"
    import psycopg  # the deploy type the others applied is the stored one

    with psycopg.connect(cluster.postgres.url) as conn:
        kinds = [
            r[0] for r in conn.execute("SELECT deploy_type FROM flow_revisions ORDER BY id DESC LIMIT 1")
        ]
    assert kinds == ["nodes"]


def test_a_stale_revision_is_refused_by_any_worker(cluster):
    a, b, c = cluster.workers
    _, _, first = deploy(a, version_flows("four"))
    _, _, second = deploy(b, version_flows("five"), rev=first["rev"])
    for worker in (a, b, c):  # each answers 409 with the DB's current revision
        status, _, refused = deploy(worker, version_flows("stale"), rev=first["rev"])
        assert status == 409, refused
        assert refused["rev"] == second["rev"], refused
    for worker in (a, b, c):
        assert answers(worker) == "five"


def test_a_stopped_worker_is_reported_and_catches_up_when_it_resumes(cluster):
    a, _, c = cluster.workers
    c.sigstop()
    try:
        status, headers, body = deploy(
            a, version_flows("six")
        )  # c's heartbeat is still live: it is waited for
        assert status == 200, body
        assert body["cluster"]["pending"] == ["w3"], body
        assert headers["x-sofiaflow-cluster-pending"] == "w3"
    finally:
        c.sigcont()
    wait_until(lambda: answers(c) == "six", 5, "the resumed worker runs the revision it missed")


def test_a_worker_down_during_deploys_catches_up_on_restart(cluster):
    a, b, c = cluster.workers
    c.kill9()
    deploy(a, version_flows("seven"))
    status, _, body = deploy(b, version_flows("eight"))
    assert status == 200 and "w3" not in body["cluster"]["applied"]
    c.start()
    c.wait_healthy()
    assert answers(c) == "eight"
    listed = a.get("/cluster")[2]
    wait_until(
        lambda: {w["id"]: w["rev"] for w in a.get("/cluster")[2]["workers"]}.get("w3") == body["rev"],
        5,
        "the restarted worker's heartbeat shows the newest revision",
    )
    assert listed["mode"] == "cluster"


def test_get_cluster_lists_the_live_workers_for_administrators(cluster):
    a, b, c = cluster.workers
    status, _, body = b.get("/cluster")
    assert status == 200
    assert body["mode"] == "cluster" and body["self"] == "w2"
    assert body["leader"] in {"w1", "w2", "w3"}
    by_id = {w["id"]: w for w in body["workers"]}
    assert set(by_id) == {"w1", "w2", "w3"}
    for worker in (a, b, c):
        beat = by_id[worker.name]
        assert beat["address"] == f"127.0.0.1:{worker.port}"
        assert beat["uptime"] >= 0 and beat["memory"] > 0 and "cpu" in beat and "msgs_per_s" in beat
    assert [w["id"] for w in body["workers"] if w["leads"]] == [body["leader"]]
    assert http("GET", a.url + "/cluster")[0] == 401  # no token


class HeaderSink:
    """An HTTP server on 127.0.0.1 answering the Authorization header it got."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                text = (self.headers.get("Authorization") or "").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(text)))
                self.end_headers()
                self.wfile.write(text)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_credentials_change_restarts_the_node_on_every_worker(cluster):
    sink = HeaderSink()
    try:
        flows = [
            {"id": "tab", "type": "tab", "label": "creds"},
            {"id": "in", "type": "http in", "z": "tab", "url": "/auth", "method": "get", "wires": [["req"]]},
            {
                "id": "req",
                "type": "http request",
                "z": "tab",
                "method": "GET",
                "ret": "txt",
                "url": sink.url + "/",
                "authType": "basic",
                "wires": [["out"]],
            },
            {"id": "out", "type": "http response", "z": "tab", "wires": []},
        ]
        a, b, c = cluster.workers

        def post(worker, password: str, deploy_type: str) -> None:
            status, _, body = worker.post(
                "/flows",
                {"flows": flows, "credentials": {"req": {"user": "u", "password": password}}},
                headers={"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": deploy_type},
            )
            assert status == 200 and body["cluster"]["pending"] == [], body

        post(a, "first", "full")
        for worker in (a, b, c):
            assert answers(worker, "/auth") == "Basic " + base64.b64encode(b"u:first").decode()
        post(a, "second", "nodes")  # the flows are the same: only the credentials changed
        for worker in (a, b, c):
            assert answers(worker, "/auth") == "Basic " + base64.b64encode(b"u:second").decode()
    finally:
        sink.close()


def test_two_workers_deploying_on_the_same_revision_at_once_one_wins(cluster):
    a, b, c = cluster.workers
    _, _, base = deploy(a, version_flows("base"))
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers_ = list(
            pool.map(
                lambda pair: deploy(pair[0], version_flows(pair[1]), rev=base["rev"]),
                [(a, "from-a"), (b, "from-b"), (c, "from-c")],
            )
        )
    statuses = sorted(status for status, _, _ in answers_)
    assert statuses == [200, 409, 409], answers_
    [won] = [body for status, _, body in answers_ if status == 200]
    for status, _, body in answers_:
        if status == 409:
            assert body["rev"] == won["rev"]
    winner = next(
        v for (s, _, body), v in zip(answers_, ("from-a", "from-b", "from-c"), strict=True) if s == 200
    )
    for worker in (a, b, c):
        wait_until(lambda w=worker: answers(w) == winner, 5, f"{worker.name} runs the one deploy that won")


def test_stopping_and_starting_the_flows_applies_to_every_worker(cluster):
    a, b, c = cluster.workers
    deploy(a, version_flows("running"))
    status, _, body = a.post("/flows/state", {"state": "stop"})
    assert status == 200 and body == {"state": "stop"}, body
    for worker in (a, b, c):
        wait_until(lambda w=worker: w.get("/flows/state")[2]["state"] == "stop", 5, f"{worker.name} stops")
        assert answers(worker) is None  # no flow serves /version
    status, _, body = b.post("/flows/state", {"state": "start"})
    assert status == 200 and body == {"state": "start"}, body
    for worker in (a, b, c):
        wait_until(lambda w=worker: answers(w) == "running", 5, f"{worker.name} runs its flows again")
