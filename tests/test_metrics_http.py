"""`GET /metrics` on a real runtime and admin app served by uvicorn on a free port, with the embedded MQTT
broker and a real MQTT client; the text is parsed with prometheus_client's parser."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import uvicorn
from mqtt_helpers import client, until
from ports import free_port
from prometheus_client.parser import text_string_to_metric_families

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "metrics-test-password"


def flows(mqtt_port: int) -> list[dict]:
    return [
        {"id": "t1", "type": "tab", "label": "Pipeline"},
        {"id": "a", "type": "test double", "z": "t1", "name": "first", "wires": [["b"]]},
        {"id": "b", "type": "test double", "z": "t1", "name": "second", "wires": [[]]},
        {
            "id": "mb",
            "type": "mqtt-broker",
            "name": "local",
            "broker": "127.0.0.1",
            "port": str(mqtt_port),
            "clientid": "",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
        },
        {
            "id": "in1",
            "type": "mqtt in",
            "z": "t1",
            "topic": "x/#",
            "qos": "0",
            "datatype": "auto-detect",
            "broker": "mb",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "wires": [[]],
        },
    ]


async def serve(runtime: Runtime):
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(runtime), host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started, timeout=10)
    return server, task, f"http://127.0.0.1:{port}"


@pytest.fixture
async def live(tmp_path, registry):
    settings = Settings(
        data_dir=tmp_path, admin_password=PASSWORD, mqtt_port=free_port(), ontologies_dir=None
    )
    runtime = Runtime(settings, registry=registry)
    await runtime.start()
    auth = AuthService(runtime.db, runtime.settings)
    auth.ensure_admin()
    token, _ = auth.issue_token("admin", PASSWORD, scope="read")
    await runtime.deploy(flows(settings.mqtt_port))
    server, task, url = await serve(runtime)
    try:
        yield runtime, url, token
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await runtime.stop()


def parse(text: str) -> dict[str, list]:
    """{sample name: [(labels, value)]}"""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: dict, metric: str, **labels: str) -> float:
    found = [v for lab, v in samples.get(metric, []) if all(lab.get(k) == w for k, w in labels.items())]
    assert len(found) == 1, (metric, labels, samples.get(metric))
    return found[0]


async def test_metrics_need_a_token_and_report_real_traffic(live):
    runtime, url, token = live
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 401 and "Bearer" in refused.json()["message"]
        assert (await http.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        before = parse((await http.get("/metrics", headers=auth)).text)
        assert value(before, "sofiaflow_node_messages_in_total", node="a") == 0
        runtime.engine.stats.calm_share = (
            1.0  # calm batches all timed in full (by default a random sixteenth)
        )
        for i in range(127):  # a burst: only the first message of the batch is timed
            runtime.engine.deliver("a", {"payload": i})
        await runtime.engine.idle()
        for i in range(3):  # one by one: each timed, in "first" and in "second"
            runtime.engine.deliver("a", {"payload": i})
            await runtime.engine.idle()
        runtime.engine.deliver("a", {"payload": "text"})  # an error in "first"
        await runtime.engine.idle()

        device, device_token = runtime.engine.services["devices"].create("meter1", topics=["x/#"])
        async with client(runtime.settings.mqtt_port, device.name, device_token) as mqtt:
            assert await mqtt.connect() == "Success"
            broker = runtime.engine.services["mqtt-embedded"]
            await until(lambda: broker.clients_connected() >= 1)
            answer = await http.get("/metrics", headers=auth)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        after = parse(answer.text)

    labels = {"flow": "t1", "node": "a", "type": "test double", "name": "first"}
    assert value(after, "sofiaflow_node_messages_in_total", **labels) == 131
    assert value(after, "sofiaflow_node_messages_out_total", **labels) == 130
    assert value(after, "sofiaflow_node_errors_total", **labels) == 1
    assert value(after, "sofiaflow_node_messages_in_total", node="b", name="second") == 130
    assert value(after, "sofiaflow_node_queue_depth", node="b") == 0
    assert value(after, "sofiaflow_node_handling_seconds_count", node="a") == 1 + 3 + 1
    assert value(after, "sofiaflow_node_handling_seconds_count", node="b") == 3
    assert value(after, "sofiaflow_node_handling_seconds_bucket", node="b", le="+Inf") == 3
    assert (
        0
        < value(after, "sofiaflow_node_handling_mean_seconds", node="b")
        <= value(after, "sofiaflow_node_handling_p99_seconds", node="b")
        < 0.1
    )
    assert value(after, "sofiaflow_flow_messages_total", flow="t1", label="Pipeline") == 261
    assert value(after, "sofiaflow_engine_errors_total") == 1
    assert value(after, "sofiaflow_engine_pending") == 0
    assert (
        value(after, "sofiaflow_mqtt_clients_connected") >= 1
    )  # the device (and the flow's in-process link)
    assert value(after, "sofiaflow_mqtt_broker_connected", node="mb", name="local") == 1
    assert value(after, "process_resident_memory_bytes") > 10_000_000
    assert value(after, "process_cpu_seconds_total") > 0


async def test_public_metrics_setting_opens_the_endpoint(live):
    runtime, url, _token = live
    runtime.settings.metrics_public = True
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        answer = await http.get("/metrics")
    assert answer.status_code == 200
    assert "sofiaflow_node_messages_in_total" in parse(answer.text)


def test_public_setting_reads_the_environment(monkeypatch):
    monkeypatch.setenv("SOFIAFLOW_METRICS_PUBLIC", "1")
    assert Settings().metrics_public is True
    monkeypatch.setenv("SOFIAFLOW_METRICS_PUBLIC", "0")
    assert Settings().metrics_public is False
    monkeypatch.delenv("SOFIAFLOW_METRICS_PUBLIC")
    assert Settings().metrics_public is False
