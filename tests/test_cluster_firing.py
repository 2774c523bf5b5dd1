"""Run-once firings in a cluster of three workers: a 1 s inject running for 60 s fires 60 times in total (each
slot exactly once, on whichever worker claims it), and this holds across stopping the leader and the firing worker
(SIGSTOP for twice the lease, then SIGCONT) in the same run: no slot lost, none doubled, and the lease moves with a
larger fencing token.

The count's bounds: every worker runs the flow from the deploy's answer to the undeploy's call (`RUN` s), so at
least `RUN` one-second slots fire; the flow may run at most from the deploy's call to the undeploy's answer, so at
most that many seconds' slots plus one (an interval holds floor(length) or floor(length) + 1 grid points). With
deploys that answer within a second, that is 60 or 61."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cluster_harness import Cluster, skip_unless_cluster, wait_until

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(300)]

LEASE = 2.0
RUN = 60.0
"""Seconds the ticking flow runs on every worker."""


class Sink:
    """An HTTP server on 127.0.0.1 recording (worker, payload) of every POST /fire/<worker>."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, int]] = []
        self.once: list[tuple[str, int]] = []
        lock = threading.Lock()
        hits, once = self.hits, self.once

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                with lock:
                    (once if self.path.startswith("/once/") else hits).append(
                        (self.path.rsplit("/", 1)[-1], int(body))
                    )
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(workers=3, mosquitto=False, env={"SOFIAFLOW_CLUSTER_LEASE": str(LEASE)}) as started:
        yield started


def once_after_deploy(sink_url: str, label: str) -> list[dict]:
    return [
        {"id": "tab", "type": "tab", "label": label},
        {
            "id": "boot",
            "type": "inject",
            "z": "tab",
            "once": True,
            "onceDelay": 0.1,
            "props": [
                {"p": "payload", "v": "", "vt": "date"},
                {"p": "topic", "v": "SOFIAFLOW_WORKER_ID", "vt": "env"},
            ],
            "wires": [["post"]],
        },
        {
            "id": "post",
            "type": "http request",
            "z": "tab",
            "method": "POST",
            "ret": "txt",
            "url": sink_url + "/once/{{{topic}}}",
            "wires": [[]],
        },
    ]


def ticking(sink_url: str) -> list[dict]:
    return [
        {"id": "tab", "type": "tab", "label": "ticks"},
        {
            "id": "tick",
            "type": "inject",
            "z": "tab",
            "repeat": "1",
            "props": [
                {"p": "payload", "v": "", "vt": "date"},
                {"p": "topic", "v": "SOFIAFLOW_WORKER_ID", "vt": "env"},
            ],
            "wires": [["post"]],
        },
        {
            "id": "post",
            "type": "http request",
            "z": "tab",
            "method": "POST",
            "ret": "txt",
            "url": sink_url + "/fire/{{{topic}}}",
            "wires": [[]],
        },
    ]


def deploy(worker, flows: list) -> None:
    status, _, body = worker.post("/flows", {"flows": flows}, headers={"Node-RED-API-Version": "v2"})
    assert status == 200 and body["cluster"]["pending"] == [], body


def slots(hits: list[tuple[str, int]]) -> list[int]:
    return sorted(round(ms / 1000) for _, ms in hits)


def assert_each_slot_once(hits: list[tuple[str, int]]) -> None:
    seen = slots(hits)
    assert len(seen) == len(set(seen)), f"a slot fired twice: {seen}"
    gaps = [b - a for a, b in zip(seen, seen[1:], strict=False)]
    assert all(g == 1 for g in gaps), f"a slot was not fired: {seen}"


def _cluster_view(worker) -> dict:
    return worker.get("/cluster")[2]


def test_a_one_second_inject_on_three_workers_fires_60_times_in_60_s_across_a_stop_of_leader_and_firer(
    cluster, sink
):
    a = cluster.workers[0]
    by_name = {w.name: w for w in cluster.workers}
    sink.hits.clear()
    outer_start = time.monotonic()
    deploy(a, ticking(sink.url))
    inner_start = time.monotonic()  # every worker runs the flow from here
    wait_until(lambda: len(sink.hits) >= 3, 10, "the inject fires")

    view = _cluster_view(a)
    old_leader, old_token = view["leader"], view["fencing_token"]
    firing = sink.hits[-1][0]
    paused = [by_name[old_leader]] + ([by_name[firing]] if firing != old_leader else [])
    survivor = next(w for w in cluster.workers if w not in paused)
    for worker in paused:
        worker.sigstop()
    paused_at, paused_wall = time.monotonic(), time.time()
    try:
        new_view = wait_until(
            lambda: (v := _cluster_view(survivor))["leader"] not in (None, old_leader) and v,
            3 * LEASE,
            "another worker takes the lease",
        )
        assert new_view["fencing_token"] > old_token
        time.sleep(max(0.0, paused_at + 2 * LEASE - time.monotonic()))  # the pause: twice the lease in all
    finally:
        resumed_wall = time.time()
        for worker in paused:
            worker.sigcont()
    # the stopped workers are back (their overdue ticks must not fire again); the firings being counted run on
    time.sleep(max(0.0, inner_start + RUN - time.monotonic()))
    inner = time.monotonic() - inner_start
    deploy(survivor, [])
    outer = time.monotonic() - outer_start
    time.sleep(1.5)  # a firing on its way when the flows stopped arrives; none after that

    hits = list(sink.hits)
    assert_each_slot_once(hits)
    assert math.floor(inner) <= len(hits) <= math.floor(outer) + 1, (len(hits), inner, outer)
    # a stopped process fires nothing: the slots of the pause were the others' (one or two of them)
    during = [(worker, ms) for worker, ms in hits if paused_wall * 1000 < ms < resumed_wall * 1000]
    assert during and {worker for worker, _ in during}.isdisjoint(w.name for w in paused), (during, paused)
    print(f"{len(hits)} firings, flow running {inner:.2f} s on all workers, at most {outer:.2f} s")
    view = wait_until(
        lambda: (v := _cluster_view(a)) and len(v["workers"]) == 3 and v,
        10,
        "all three workers are live again",
    )
    assert [w["id"] for w in view["workers"] if w["leads"]] == [view["leader"]]
    assert view["fencing_token"] > old_token


def test_once_after_deploy_fires_once_per_deploy_not_once_per_worker(cluster, sink):
    a, b, c = cluster.workers
    sink.once.clear()
    deploy(a, once_after_deploy(sink.url, "first"))
    wait_until(lambda: len(sink.once) >= 1, 10, "the first deploy's firing")
    deploy(b, once_after_deploy(sink.url, "second"))  # a new revision: its own firing
    wait_until(lambda: len(sink.once) >= 2, 10, "the second deploy's firing")
    c.kill9()  # a worker that starts again runs the same revision: nothing fires again
    c.start()
    c.wait_healthy()
    time.sleep(2)  # the restarted worker's once-tick is due 0.1 s after its flows start
    assert len(sink.once) == 2, sink.once
    deploy(a, [])
