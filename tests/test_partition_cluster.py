"""Keyed partitions on three real workers (`sofiaflow run` processes, Redis append-only, PostgreSQL): per-device
order holds at the consumer across a kill -9 of a partition owner and every message is processed (at least once;
exactly once deduplicated by msg._streamId, at the sink and in the ontology, whose rows are counted); a poison
message lands in the dead letters after its deliveries while the rest of its partition flows, and replaying it
through the API processes it again."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cluster_harness import Cluster, http, skip_unless_cluster, wait_until

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(240)]

DEVICES = 200
ROUNDS = 15  # 3,000 messages
ONTOLOGY = "PartitionedReading"


def stored_rows(cluster: Cluster) -> tuple[int, int]:
    """(rows, distinct idempotency keys) of the ontology's table in PostgreSQL, counted as rows."""
    import psycopg

    assert cluster.postgres is not None
    with psycopg.connect(cluster.postgres.url) as conn:
        return conn.execute(f'SELECT count(*), count(DISTINCT ikey) FROM "rt_{ONTOLOGY}"').fetchone()


class Sink:
    """An HTTP server on 127.0.0.1 recording every POSTed JSON body, in arrival order, per path."""

    def __init__(self) -> None:
        self.got: dict[str, list[dict[str, Any]]] = defaultdict(list)
        lock = threading.Lock()
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the http request node's client expects

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    got[self.path].append(json.loads(body))
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
    with Cluster(workers=3, mosquitto=False, env={"SOFIAFLOW_CLUSTER_LEASE": "2"}) as started:
        yield started


def keyed_flow(sink_url: str) -> list[dict[str, Any]]:
    stamp = [
        {"t": "set", "p": "payload.sid", "pt": "msg", "to": "_streamId", "tot": "msg"},
        {"t": "set", "p": "payload.worker", "pt": "msg", "to": "SOFIAFLOW_WORKER_ID", "tot": "env"},
    ]
    return [
        {"id": "keyed", "type": "tab", "label": "keyed"},
        {
            "id": "in",
            "type": "http in",
            "z": "keyed",
            "url": "/feed",
            "method": "post",
            "wires": [["split", "ok"]],
        },
        {"id": "ok", "type": "http response", "z": "keyed", "wires": []},
        {"id": "split", "type": "split", "z": "keyed", "wires": [["part"]]},
        {
            "id": "part",
            "type": "partition",
            "z": "keyed",
            "key": "payload.device",
            "keyType": "msg",
            "partitions": 32,
            "wires": [["order"]],
        },
        {
            # the consumer's order: a per-device counter every worker shares (http request posts concurrently,
            # so arrival order at the sink is not the order of processing)
            "id": "order",
            "type": "python function",
            "z": "keyed",
            "func": "msg['payload']['n'] = global_.incr('n:' + msg['payload']['device'], 1, 'redis')\nreturn msg",
            "outputs": 1,
            "wires": [["stamp", "store"]],
        },
        # stores each entry once, keyed by its msg._streamId (the node's default), however often redelivered
        {"id": "store", "type": "ontology-insert", "z": "keyed", "ontology": ONTOLOGY, "wires": [[]]},
        {"id": "stamp", "type": "change", "z": "keyed", "rules": stamp, "wires": [["post"]]},
        {
            "id": "post",
            "type": "http request",
            "z": "keyed",
            "method": "POST",
            "ret": "txt",
            "url": sink_url + "/keyed",
            "wires": [[]],
        },
        # the poison case: a function that fails poisoned messages until /fix is called
        {"id": "poison", "type": "tab", "label": "poison"},
        {
            "id": "pin",
            "type": "http in",
            "z": "poison",
            "url": "/pfeed",
            "method": "post",
            "wires": [["psplit", "pok"]],
        },
        {"id": "pok", "type": "http response", "z": "poison", "wires": []},
        {"id": "psplit", "type": "split", "z": "poison", "wires": [["ppart"]]},
        {
            "id": "ppart",
            "type": "partition",
            "z": "poison",
            "key": "payload.device",
            "keyType": "msg",
            "partitions": 2,
            "maxDeliveries": 3,
            "wires": [["check"]],
        },
        {
            "id": "check",
            "type": "python function",
            "z": "poison",
            "func": "if msg['payload'].get('poison') and not global_.get('fixed', 'redis'):\n"
            "    raise ValueError('poisoned')\nreturn msg",
            "outputs": 1,
            "wires": [["pstamp"]],
        },
        {"id": "pstamp", "type": "change", "z": "poison", "rules": stamp, "wires": [["ppost"]]},
        {
            "id": "ppost",
            "type": "http request",
            "z": "poison",
            "method": "POST",
            "ret": "txt",
            "url": sink_url + "/poison",
            "wires": [[]],
        },
        {"id": "fin", "type": "http in", "z": "poison", "url": "/fix", "method": "post", "wires": [["fix"]]},
        {
            "id": "fix",
            "type": "python function",
            "z": "poison",
            "func": "global_.set('fixed', True, 'redis')\nreturn msg",
            "outputs": 1,
            "wires": [["fok"]],
        },
        {"id": "fok", "type": "http response", "z": "poison", "wires": []},
    ]


@pytest.fixture(scope="module")
def deployed(cluster: Cluster, sink: Sink) -> Cluster:
    status, _, body = cluster.workers[0].post("/ontologies", {"name": ONTOLOGY, "schema": {"type": "object"}})
    assert status == 201, body
    status, _, body = cluster.workers[0].post(
        "/flows", {"flows": keyed_flow(sink.url)}, headers={"Node-RED-API-Version": "v2"}
    )
    assert status == 200 and body["cluster"]["pending"] == [], body
    return cluster


def feed(worker, path: str, items: list[dict[str, Any]]) -> None:
    status, _, body = worker.post(path, items)
    assert status == 200, (status, body)


def firsts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each stream id's first processing (later ones are redeliveries), in the consumer's order per device."""
    seen: set[str] = set()
    out = []
    for r in sorted(records, key=lambda r: (r["device"], r.get("n", 0))):
        if r["sid"] not in seen:
            seen.add(r["sid"])
            out.append(r)
    return out


def test_order_per_device_across_a_kill_9_and_every_message_processed(deployed: Cluster, sink: Sink) -> None:
    cluster = deployed
    first, victim, _ = cluster.workers
    got = sink.got["/keyed"]
    for r in range(ROUNDS):
        if r == ROUNDS // 2:  # mid-flow: the victim holds a third of the partitions and messages in hand
            wait_until(
                lambda: any(x["worker"] == victim.name for x in list(got)), 30, "the victim processing"
            )
            victim.kill9()
        # one feeding worker: its partition node writes the rounds in the order they came
        feed(first, "/feed", [{"device": f"d{d}", "seq": r} for d in range(DEVICES)])
    total = DEVICES * ROUNDS
    wait_until(lambda: len({x["sid"] for x in got}) >= total, 90, f"{total} distinct messages at the sink")
    time.sleep(0.5)
    unique = firsts(list(got))
    assert len(unique) == total  # every message, once deduplicated by stream id
    assert {(x["device"], x["seq"]) for x in unique} == {
        (f"d{d}", r) for d in range(DEVICES) for r in range(ROUNDS)
    }
    per_device: dict[str, list[int]] = defaultdict(list)
    for x in unique:
        per_device[x["device"]].append(x["seq"])
    for device, seqs in per_device.items():
        if seqs != sorted(seqs):
            order = [(x["seq"], x["n"], x["worker"], x["sid"]) for x in got if x["device"] == device]
            pytest.fail(f"{device} out of order at the consumer: {sorted(order, key=lambda o: o[1])}")
    workers = {x["worker"] for x in unique}
    assert len(workers) == 3, workers  # partitions were spread over the workers
    moved = {x["device"] for x in unique if x["worker"] == victim.name} & {
        x["device"] for x in unique if x["seq"] >= ROUNDS // 2 and x["worker"] != victim.name
    }
    assert moved  # the victim's devices went on on another worker, in order (checked above)
    client = cluster.redis_client()

    def nothing_pending() -> bool:  # the last batches are acknowledged once their requests have answered
        return (
            sum(client.xpending(f"part:keyed:part:{p}", "partition:part")["pending"] for p in range(32)) == 0
        )

    wait_until(nothing_pending, 30, "every message acknowledged")
    # the ontology: one row per message, though the sink saw redeliveries
    assert stored_rows(cluster) == (total, total)
    print(f"{len(got)} deliveries at the sink for {total} messages; {total} rows in the ontology")


def test_a_poison_message_is_dead_lettered_and_replayed_through_the_api(
    deployed: Cluster, sink: Sink
) -> None:
    cluster = deployed
    worker = next(w for w in cluster.workers if w.alive())
    got = sink.got["/poison"]
    items = [{"device": "same", "seq": i, "poison": i == 3} for i in range(10)]
    feed(worker, "/pfeed", items)
    wait_until(lambda: len(got) >= 9, 60, "the rest of the partition processed")
    status, _, body = wait_until(
        lambda: (a := worker.get("/partitions/dead-letters"))[2]["count"] == 1 and a, 60, "a dead letter"
    )
    letter = body["deadLetters"][0]
    assert letter["deliveries"] == 3 and letter["msg"]["payload"]["seq"] == 3
    assert [x["seq"] for x in got] == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    status, _, text = worker.get("/metrics")
    assert "sofiaflow_partition_dead_letters 1" in text
    assert worker.post("/fix", {})[0] == 200
    status, _, replayed = worker.post(f"/partitions/dead-letters/{letter['id']}/replay", None)
    assert status == 200, replayed
    wait_until(lambda: len(got) >= 10, 60, "the replayed message processed")
    assert got[-1]["seq"] == 3 and got[-1]["sid"] == replayed["streamId"]
    assert worker.get("/partitions/dead-letters")[2]["count"] == 0
    status, _, missing = worker.post(f"/partitions/dead-letters/{letter['id']}/replay", None)
    assert status == 404, missing
    assert http("DELETE", worker.url + "/partitions/dead-letters/nonsense", token=worker.token())[0] == 400
    assert http("GET", worker.url + "/partitions/dead-letters")[0] == 401
