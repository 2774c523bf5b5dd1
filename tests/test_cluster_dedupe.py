"""Exactly once in the ontology: three `sofiaflow run` workers share `mqtt in (platform, QoS 1) -> ontology-insert`
through Mosquitto's shared subscriptions, the insert keyed by device/seq (a JSONata expression over the payload).
200 simulated devices send 10,000 numbered QoS 1 readings and a worker is killed with SIGKILL in the middle: what
it held is redelivered to a survivor, and 1,000 readings are sent again as new messages (as devices do that miss
their acknowledgements); the unique index on the key in PostgreSQL makes the ontology hold exactly 10,000 rows,
counted as rows."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest
from cluster_harness import Cluster, skip_unless_cluster, wait_until

from sofiaflow.runtime.cluster.mqtt_sessions import LEASE_PREFIX, client_id
from tests.cluster_mosquitto import ADMIN, PLATFORM, start_mosquitto_dynsec
from tests.test_cluster_mqtt_ingress import HEARTBEAT_TTL, LEASE, devices_on, holder

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(300)]

ONTOLOGY = "KeyedReading"
KEY = 'payload.device & "/" & payload.seq'

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
    {
        "id": "store",
        "type": "ontology-insert",
        "z": "tab",
        "ontology": ONTOLOGY,
        "idempotencyKey": KEY,
        "idempotencyKeyType": "jsonata",
        "wires": [["dup"]],
    },
    # logs each redelivery the key turned away (a figure for the test's output)
    {
        "id": "dup",
        "type": "switch",
        "z": "tab",
        "property": "duplicate",
        "rules": [{"t": "true"}],
        "outputs": 1,
        "wires": [["count"]],
    },
    {
        "id": "count",
        "type": "change",
        "z": "tab",
        "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "turned-away-duplicate", "tot": "str"}],
        "wires": [["log"]],
    },
    {"id": "log", "type": "debug", "z": "tab", "active": True, "console": True, "complete": "payload"},
]


def rows(cluster: Cluster) -> tuple[int, int, int]:
    """(rows, distinct keys, distinct (device, seq) in the documents) of the ontology's table in PostgreSQL."""
    import psycopg

    assert cluster.postgres is not None
    with psycopg.connect(cluster.postgres.url) as conn:
        try:
            (count, keys) = conn.execute(
                f'SELECT count(*), count(DISTINCT ikey) FROM "rt_{ONTOLOGY}"'
            ).fetchone()
            (readings,) = conn.execute(
                f"SELECT count(*) FROM (SELECT DISTINCT doc->>'device', doc->>'seq' FROM \"rt_{ONTOLOGY}\") r"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0, 0, 0
    return count, keys, readings


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
            schema = {
                "type": "object",
                "properties": {"device": {"type": "string"}, "seq": {"type": "integer"}},
                "required": ["device", "seq"],
                "additionalProperties": False,
            }
            status, _, body = started.workers[0].post("/ontologies", {"name": ONTOLOGY, "schema": schema})
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


def test_a_worker_killed_under_load_leaves_exactly_one_row_per_reading(cluster: Cluster) -> None:
    total = 10_000
    devices = devices_on(cluster)
    victim = cluster.workers[1]
    sender = threading.Thread(target=devices.send, args=(total,), daemon=True)
    try:
        sender.start()
        wait_until(lambda: rows(cluster)[0] >= 2_000, 60, "the first readings stored")
        victim.kill9()
        wait_until(
            lambda: holder(cluster, victim.name) not in (None, victim.name),
            LEASE + HEARTBEAT_TTL + 5 + 30,
            "a survivor takes over the dead worker's session",
        )
        sender.join(120)
        assert devices.sent == total
        # devices that missed their PUBACKs send readings again, as new messages (whatever the kill caught, this
        # part is sure to repeat): 1,000 readings from about the time of the kill
        devices.send(1_000, 4_000)
        assert devices.sent == total + 1_000
        wait_until(lambda: devices.acks >= total + 1_000, 60, "the broker acknowledged every message")
        wait_until(lambda: rows(cluster)[2] >= total, 90, "every reading stored")
        count, keys, readings = rows(cluster)
        assert (count, keys, readings) == (total, total, total)
        # the victim comes back and takes its session again: what Mosquitto still held for it is redelivered
        # once more, and still turned away
        victim.start()
        victim.wait_healthy()
        wait_until(
            lambda: holder(cluster, victim.name) == victim.name, 60, "the session back with its worker"
        )
        assert rows(cluster) == (total, total, total)
        turned_away = sum(
            w.log.read_text(errors="replace").count("turned-away-duplicate") for w in cluster.workers
        )
        print(f"{count} rows for {total} readings; {turned_away} redeliveries turned away by the key")
        assert turned_away >= 1_000  # answered as duplicates (msg.duplicate), not failed
    finally:
        devices.close()
