"""MQTT ingress over the cluster with no loss: three `sofiaflow run` workers share `mqtt in (platform, QoS 1) ->
ontology-insert` through Mosquitto's shared subscriptions, each worker with its own persistent session. 200
simulated devices send 10,000 numbered QoS 1 readings; a worker killed with SIGKILL in the middle has its session
taken over by a survivor (which drains what Mosquitto held for it) and given back when it returns, and Redis
restarted under load loses no acknowledged reading: every reading is stored (duplicates counted once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import cluster_load
import pytest
from cluster_harness import Cluster, skip_unless_cluster, wait_until
from cluster_load import readings

from sofiaflow.runtime.cluster.mqtt_sessions import LEASE_PREFIX, SESSIONS_KEY, client_id, lease_holder
from tests.cluster_mosquitto import ADMIN, PLATFORM, start_mosquitto_dynsec

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(300)]

LEASE = 3.0  # SOFIAFLOW_CLUSTER_LEASE (the default)
HEARTBEAT_TTL = 3.0  # SOFIAFLOW_CLUSTER_HEARTBEAT 1 s, a heartbeat lives 3
ONTOLOGY = "Reading"

FLOWS = [
    {"id": "tab", "type": "tab", "label": "ingress"},
    {"id": "pb", "type": "mqtt-broker", "platform": True, "broker": "", "port": "", "clientid": ""},
    {
        "id": "in",
        "type": "mqtt in",
        "z": "tab",
        "topic": "ingress/+/data",
        "qos": "1",
        "datatype": "json",
        "broker": "pb",
        "wires": [["store"]],
    },
    {"id": "store", "type": "ontology-insert", "z": "tab", "ontology": ONTOLOGY, "wires": [[]]},
]


def devices_on(cluster: Cluster) -> cluster_load.Devices:
    """`cluster_load.DEVICES` devices on one paho connection (the platform's client, a persistent session)
    publishing on `ingress/<device>/data`."""
    return cluster_load.Devices(
        cluster.broker.port,  # type: ignore[attr-defined]
        "ingress/{device}/data",
        PLATFORM,
        client_id="ingress-devices",
        clean_session=False,
        reconnect_delay=(0.1, 0.5),
    )


def stored(cluster: Cluster) -> tuple[int, set[tuple[str, int]]]:
    """(rows, distinct (device, seq)) of the readings in the real-time DB."""
    import psycopg

    assert cluster.postgres is not None
    with psycopg.connect(cluster.postgres.url) as conn:
        try:
            rows = conn.execute(f'SELECT doc FROM "rt_{ONTOLOGY}"').fetchall()
        except psycopg.errors.UndefinedTable:
            return 0, set()
    keys = set()
    for (doc,) in rows:
        doc = json.loads(doc) if isinstance(doc, str) else doc
        body = doc.get(ONTOLOGY, doc)
        keys.add((body["device"], int(body["seq"])))
    return len(rows), keys


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    broker = start_mosquitto_dynsec()
    env = {
        "SOFIAFLOW_MQTT_URL": broker.url,
        "SOFIAFLOW_MQTT_USERNAME": PLATFORM[0],
        "SOFIAFLOW_MQTT_PASSWORD": PLATFORM[1],
        "SOFIAFLOW_DYNSEC_USERNAME": ADMIN[0],
        "SOFIAFLOW_DYNSEC_PASSWORD": ADMIN[1],
    }
    try:
        with Cluster(workers=3, mosquitto=False, env=env) as started:
            started.broker = broker  # type: ignore[attr-defined]
            status, _, body = started.workers[0].post(
                "/ontologies", {"name": ONTOLOGY, "schema": {"type": "object"}}
            )
            assert status == 201, body
            status, _, body = started.workers[0].post(
                "/flows", {"flows": FLOWS}, headers={"Node-RED-API-Version": "v2"}
            )
            assert status == 200, body
            redis = started.redis_client()
            wait_until(
                lambda: all(redis.get(LEASE_PREFIX + client_id(w.name, "pb")) for w in started.workers),
                30,
                "every worker holds its own session",
            )
            yield started
    finally:
        if os.environ.get("INGRESS_KEEP_LOGS"):
            print(broker.tail())
        broker.stop()


def holder(cluster: Cluster, worker: str) -> str | None:
    return lease_holder(cluster.redis_client().get(LEASE_PREFIX + client_id(worker, "pb")))


def test_each_worker_has_its_own_persistent_session(cluster: Cluster) -> None:
    redis = cluster.redis_client()
    sessions = redis.hgetall(SESSIONS_KEY)
    for worker in cluster.workers:
        cid = client_id(worker.name, "pb")
        assert json.loads(sessions[cid]) == {"worker": worker.name, "config": "pb"}
        assert holder(cluster, worker.name) == worker.name


def test_a_worker_killed_mid_stream_loses_no_message(cluster: Cluster) -> None:
    total = 10_000
    before, _ = stored(cluster)
    devices = devices_on(cluster)
    victim = cluster.workers[1]
    sender = threading.Thread(target=devices.send, args=(total,), daemon=True)
    try:
        sender.start()
        wait_until(lambda: stored(cluster)[0] - before >= 2_000, 60, "the first readings stored")
        victim.kill9()
        killed = time.monotonic()
        taker = wait_until(
            lambda: (h := holder(cluster, victim.name)) not in (None, victim.name) and h,
            LEASE + HEARTBEAT_TTL + 5 + 30,
            "a survivor takes over the dead worker's session",
        )
        took = time.monotonic() - killed
        assert taker in {w.name for w in cluster.workers if w is not victim}
        sender.join(120)
        assert devices.sent == total
        wait_until(lambda: len(devices.acked) == total, 60, "the broker acknowledged every reading")
        wait_until(lambda: len(stored(cluster)[1]) >= total, 90, "every reading stored")
        rows, keys = stored(cluster)
        assert keys == readings(total)
        print(f"takeover after {took:.1f} s; {rows - before} rows for {total} readings")
        assert took <= LEASE + HEARTBEAT_TTL + 5  # heartbeat gone, lease expired, next step: claimed
        # the worker comes back: the survivor gives its session back, and it connects with it again
        victim.start()
        victim.wait_healthy()
        wait_until(
            lambda: holder(cluster, victim.name) == victim.name, 60, "the session back with its worker"
        )
    finally:
        devices.close()


def restart(server: Any) -> None:
    """Stop redis-server (SIGTERM) and start it again with the same arguments (port, append-only dir)."""
    proc: subprocess.Popen = server.proc
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)
    with open(server.log, "a") as out:
        server.proc = subprocess.Popen(
            proc.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=server.tmpdir
        )


def test_redis_restarted_under_load_loses_no_acknowledged_message(cluster: Cluster) -> None:
    total = 4_000
    _, before = stored(cluster)
    devices = devices_on(cluster)
    sender = threading.Thread(target=devices.send, args=(total, 1_000_000), daemon=True)
    try:
        sender.start()
        wait_until(lambda: len(stored(cluster)[1] - before) >= 500, 60, "the first readings stored")
        restart(cluster.redis)
        sender.join(120)
        wait_until(lambda: len(devices.acked) == total, 60, "the broker acknowledged every reading")
        acked = devices.acked
        wait_until(lambda: acked <= stored(cluster)[1], 90, "every acknowledged reading stored")
        for worker in cluster.workers:  # everything reconnects: every worker holds its own session again
            wait_until(lambda w=worker: holder(cluster, w.name) == w.name, 60, f"{worker.name}'s session")
            assert worker.alive()
    finally:
        devices.close()


def test_a_stopped_worker_resumed_after_the_takeover_loses_nothing_and_gets_its_session_back(
    cluster: Cluster,
) -> None:
    total = 3_000
    _, before = stored(cluster)
    devices = devices_on(cluster)
    frozen = cluster.workers[2]
    sender = threading.Thread(target=devices.send, args=(total, 2_000_000), daemon=True)
    try:
        sender.start()
        wait_until(lambda: len(stored(cluster)[1] - before) >= 300, 60, "the first readings stored")
        frozen.sigstop()  # its heartbeat and lease run out while it holds messages it has not acknowledged
        try:
            wait_until(
                lambda: holder(cluster, frozen.name) not in (None, frozen.name),
                LEASE + HEARTBEAT_TTL + 5 + 30,
                "a survivor takes over the stopped worker's session",
            )
        finally:
            frozen.sigcont()  # it finds its connection taken and its lease gone, and waits for it
        sender.join(120)
        wait_until(lambda: len(devices.acked) == total, 60, "the broker acknowledged every reading")
        expected = readings(total, 2_000_000)
        wait_until(lambda: expected <= stored(cluster)[1], 90, "every reading stored")
        wait_until(
            lambda: holder(cluster, frozen.name) == frozen.name, 60, "the session back with its worker"
        )
        assert frozen.alive()
    finally:
        devices.close()
