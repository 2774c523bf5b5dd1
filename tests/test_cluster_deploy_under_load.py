"""Deploys under load in a cluster: three `sofiaflow run` workers share `mqtt in (platform, QoS 1) [-> partition by
device] -> function (stamps its revision) -> mqtt out (QoS 1)` through Mosquitto's shared subscriptions. 200
simulated devices publish numbered readings at 1,000 msgs/s in total while a new revision is deployed through the
admin API twice: a full deploy (stamp "B"), then a `nodes` deploy that restarts only the function (stamp "C").
At the consumer: every reading of every device arrives; each reading is answered by exactly one revision (a
duplicate, if any, carries the same revision and the same output); behind the partition node each device's
answers come in the order of its partition stream; and what is published once every worker runs the last
revision is answered by it."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from cluster_harness import Cluster, skip_unless_cluster, wait_until
from cluster_load import Consumer, Devices, tally

from sofiaflow.runtime.cluster.mqtt_sessions import LEASE_PREFIX, client_id
from tests.cluster_mosquitto import ADMIN, PLATFORM, start_mosquitto_dynsec

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(240)]

RATE = 1000  # readings per second, all devices together (cluster_load.DEVICES of them)


def stamp_body(rev: str) -> str:
    return (
        f'msg.payload.rev = "{rev}";\n'
        "msg.payload.sid = msg._streamId || null;\n"
        'msg.payload.worker = env.get("SOFIAFLOW_WORKER_ID");\n'
        'msg.topic = "out/" + msg.payload.device;\n'
        "return msg;"
    )


def flows(variant: str, rev: str) -> list[dict[str, Any]]:
    """The flow of `variant` ("partition" or "direct") with the function stamping `rev`."""
    tab = f"t-{variant}"
    first = "part" if variant == "partition" else "stamp"
    nodes: list[dict[str, Any]] = [
        {"id": tab, "type": "tab", "label": variant},
        {"id": "pb", "type": "mqtt-broker", "platform": True, "broker": "", "port": "", "clientid": ""},
        {
            "id": "in",
            "type": "mqtt in",
            "z": tab,
            "topic": f"load/{variant}/+",
            "qos": "1",
            "datatype": "json",
            "broker": "pb",
            "wires": [[first]],
        },
        {
            "id": "stamp",
            "type": "function",
            "z": tab,
            "func": stamp_body(rev),
            "outputs": 1,
            "wires": [["out"]],
        },
        {"id": "out", "type": "mqtt out", "z": tab, "qos": "1", "broker": "pb", "wires": []},
    ]
    if variant == "partition":
        nodes.append(
            {
                "id": "part",
                "type": "partition",
                "z": tab,
                "key": "payload.device",
                "keyType": "msg",
                "partitions": 16,
                "wires": [["stamp"]],
            }
        )
    return nodes


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    broker = start_mosquitto_dynsec()
    env = {
        "SOFIAFLOW_MQTT_URL": broker.url,
        "SOFIAFLOW_MQTT_USERNAME": PLATFORM[0],
        "SOFIAFLOW_MQTT_PASSWORD": PLATFORM[1],
        "SOFIAFLOW_DYNSEC_USERNAME": ADMIN[0],
        "SOFIAFLOW_DYNSEC_PASSWORD": ADMIN[1],
        "SOFIAFLOW_CLUSTER_DEPLOY_TIMEOUT": "30",  # a deploy answers once every worker runs it (2 shared cores)
    }
    try:
        with Cluster(workers=3, mosquitto=False, env=env) as started:
            started.broker = broker  # type: ignore[attr-defined]
            yield started
            if os.environ.get("DEPLOY_LOAD_KEEP_LOGS"):
                for worker in started.workers:
                    print(f"----- {worker.name} -----\n{worker.log.read_text()[-30000:]}")
    finally:
        if os.environ.get("DEPLOY_LOAD_KEEP_LOGS"):
            print(broker.tail())
        broker.stop()


def deploy(cluster: Cluster, body: list[dict[str, Any]], deploy_type: str, rev: str | None = None) -> dict:
    payload: dict[str, Any] = {"flows": body}
    if rev is not None:
        payload["rev"] = rev
    status, _, answer = cluster.workers[0].post(
        "/flows",
        payload,
        headers={"Node-RED-API-Version": "v2", "Node-RED-Deployment-Type": deploy_type},
        timeout=60,
    )
    assert status == 200, answer
    assert answer["cluster"]["pending"] == [], answer["cluster"]
    return answer


def stream_position(sid: str) -> tuple[int, int, int]:
    partition, entry = sid.split("/")
    ms, seq = entry.split("-")
    return int(partition), int(ms), int(seq)


@pytest.mark.parametrize("variant", ["partition", "direct"])
def test_deploys_under_load_lose_nothing_and_each_answer_has_one_revision(
    cluster: Cluster, variant: str
) -> None:
    port = cluster.broker.port  # type: ignore[attr-defined]
    first = deploy(cluster, flows(variant, "A"), "full")
    redis = cluster.redis_client()
    wait_until(
        lambda: all(redis.get(LEASE_PREFIX + client_id(w.name, "pb")) for w in cluster.workers),
        30,
        "every worker holds its own session",
    )
    consumer = Consumer(port, "out/#", PLATFORM, client_id="load-consumer")
    devices = Devices(
        port, f"load/{variant}/{{device}}", PLATFORM, client_id=f"load-{variant}", inflight=1000
    )
    try:
        devices.start(RATE)
        wait_until(lambda: len(consumer.answers()) >= 1500, 30, "the first answers of revision A")
        windows = [time.monotonic()]
        second = deploy(cluster, flows(variant, "B"), "full", first["rev"])
        windows.append(time.monotonic())
        time.sleep(1.0)  # revision B under load for a while
        windows.append(time.monotonic())
        deploy(cluster, flows(variant, "C"), "nodes", second["rev"])
        settled = time.monotonic()
        windows.append(settled)
        wait_until(
            lambda: sum(1 for a in consumer.answers() if a["rev"] == "C") >= 1500, 30, "answers of revision C"
        )
        devices.stop()
        wait_until(devices.all_acked, 30, "Mosquitto acknowledged every reading")
        expected = set(devices.published)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # a loss is reported below, with what was lost
            if expected <= {(a["device"], a["seq"]) for a in consumer.answers()}:
                break
            time.sleep(0.2)
        time.sleep(1.0)  # late duplicates, if any, arrive too
    finally:
        devices.stop()
        devices.close()
        consumer.close()
    answers = consumer.answers()
    by_reading: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for answer in answers:
        by_reading[(answer["device"], answer["seq"])].append(answer)
    mixed = {
        key: [a["rev"] for a in got] for key, got in by_reading.items() if len({a["rev"] for a in got}) > 1
    }
    counted = tally(expected, [(a["device"], a["seq"]) for a in answers])
    lost = counted.lost
    if lost and os.environ.get("DEPLOY_LOAD_KEEP_LOGS"):
        t0 = min(devices.published.values())
        print("deploys", [round(w - t0, 3) for w in windows])
        print("lost at", sorted(round(devices.published[k] - t0, 3) for k in lost))
        r = cluster.redis_client()
        for key in sorted(r.keys("part:*")) + sorted(r.keys("dlq:*")):
            print(key, r.xlen(key), r.xrange(key, count=3))
    assert not lost and not mixed, (
        f"{len(lost)} of {len(expected)} readings lost (e.g. {lost[:5]}); {len(mixed)} answered by two "
        f"revisions (e.g. {list(mixed.items())[:5]})"
    )
    assert set(by_reading) == expected  # nothing invented
    different = [got for got in by_reading.values() if any(a != got[0] for a in got)]
    assert not different, f"duplicates with different outputs: {different[:3]}"
    revs = defaultdict(int)
    for got in by_reading.values():
        revs[got[0]["rev"]] += 1
    assert set(revs) == {"A", "B", "C"}, revs
    late = [key for key, at in devices.published.items() if at > settled and by_reading[key][0]["rev"] != "C"]
    assert not late, f"{len(late)} readings published after the last deploy not answered by C: {late[:5]}"
    duplicates = counted.duplicates
    # the devices' own order: shared subscriptions spread a device's readings over the workers, so they reach
    # the partition streams in the order the workers wrote them (counted, not asserted)
    seqs: dict[str, list[int]] = defaultdict(list)
    for answer in answers:
        seqs[answer["device"]].append(answer["seq"])
    inversions = sum(1 for got in seqs.values() for a, b in zip(got, got[1:], strict=False) if b < a)
    if variant == "partition":  # behind the partition node: each device in the order of its partition stream
        for device in {key[0] for key in by_reading}:
            positions = [stream_position(a["sid"]) for a in answers if a["device"] == device]
            firsts = list(dict.fromkeys(positions))
            assert firsts == sorted(firsts), f"{device}: answers out of the stream's order"
            assert len({p[0] for p in firsts}) == 1, f"{device}: in more than one partition"
    print(
        f"{variant}: {len(expected)} readings, {len(answers)} answers ({duplicates} duplicates), "
        f"revisions {dict(revs)}, {inversions} readings after a later one of their device"
    )
