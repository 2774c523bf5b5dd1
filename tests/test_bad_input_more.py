"""Bad input against a real `sofiaflow run` (its own process, loopback ports, stopped by pid): secrets kept out of
the access log, platform paths kept from developers' flows, non-finite numbers kept out of stored flows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from onesait_server import IOT_BROKER_FLOW, REPO, free_port

from sofiaflow.runtime.http.access_log import redact_target

PASSWORD = "bad-input-admin-password"


def _token(base: str, user: str, password: str) -> str:
    answer = httpx.post(
        f"{base}/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": user,
            "password": password,
        },
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base url, admin client, developer client, path of the server's stdout)."""
    data = tmp_path_factory.mktemp("server")
    port = free_port()
    out_path = data / "stdout.log"
    env = {**os.environ, "SOFIAFLOW_ADMIN_PASSWORD": PASSWORD, "SOFIAFLOW_DEFAULT_FLOWS": IOT_BROKER_FLOW}
    env.pop("SOFIAFLOW_ONTOLOGIES_DIR", None)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sofiaflow.runtime.cli",
                "run",
                "--data-dir",
                str(data / "d"),
                "--port",
                str(port),
                "--mqtt-port",
                str(free_port()),
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, out_path.read_text()[-3000:]
            try:
                admin_token = _token(base, "admin", PASSWORD)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
        made = admin.post("/users", json={"username": "dev", "password": "dev-password", "role": "developer"})
        assert made.status_code == 201, made.text
        dev = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {_token(base, 'dev', 'dev-password')}"},
            timeout=10,
        )
        yield base, admin, dev, out_path
        admin.close()
        dev.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_device_tokens_stay_out_of_the_access_log(server):
    base, _admin, _dev, out_path = server
    secret = "s3cretDeviceToken4711"
    httpx.get(
        f"{base}/iot-broker/rest/client/join", params={"token": secret, "clientPlatform": "p"}, timeout=10
    )
    httpx.get(f"{base}/flows", params={"access_token": secret + "b", "apiKey": secret + "c"}, timeout=10)
    deadline = time.monotonic() + 10
    while "access_token=***" not in out_path.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = out_path.read_text()
    assert "/iot-broker/rest/client/join?token=***&clientPlatform=p" in log
    assert "access_token=***&apiKey=***" in log
    assert secret not in log


def test_redaction_rules():
    assert (
        redact_target("/a?token=x&b=1&sessionKey=k&X-Api-Key=y&password=")
        == "/a?token=***&b=1&sessionKey=***&X-Api-Key=***&password=***"
    )
    assert redact_target("/a?page=2&q=token") == "/a?page=2&q=token"
    assert redact_target("/plain") == "/plain"


def _tab_flow(url: str) -> dict:
    return {
        "label": "mine",
        "nodes": [
            {"id": "dev-h", "type": "http in", "url": url, "method": "get", "x": 1, "y": 1, "wires": [[]]}
        ],
    }


def test_a_developer_cannot_take_platform_paths_through_the_api(server):
    _base, _admin, dev, _out = server
    answer = dev.post("/flow", json=_tab_flow("/iot-broker/rest/ontology/X"))  # the IoT Broker's pattern
    assert answer.status_code == 400 and "overlaps" in answer.text and "dev-h" in answer.text, answer.text
    for url in ("/iot-broker/rest/anything", "/flows/x", "/editor/steal"):
        answer = dev.post("/flow", json=_tab_flow(url))
        assert answer.status_code == 400, (url, answer.text)
        assert "reserves" in answer.text and "dev-h" in answer.text, answer.text
    answer = dev.post("/flow", json=_tab_flow("/dev/hello"))
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused_everywhere(server, bad):
    _base, admin, _dev, _out = server
    before = admin.get("/flows").json()
    node = '{"id": "n-ID", "type": "junction", "x": BAD, "y": 1, "wires": [[]]}'
    bodies = {
        ("post", "/flow"): '{"label": "nan", "nodes": [NODE]}',
        ("post", "/flows"): '[{"id": "t-nan", "type": "tab"}, NODE]'.replace(
            "NODE", node.replace('"x"', '"z": "t-nan", "x"')
        ),
        ("put", "/flow/global"): '{"configs": [{"id": "c-nan", "type": "x-conf", "limit": BAD}]}',
    }
    bodies = {
        k: v.replace("NODE", node).replace("BAD", bad).replace("ID", bad.strip("-"))
        for k, v in bodies.items()
    }
    for (method, path), body in bodies.items():
        answer = admin.request(
            method.upper(), path, content=body, headers={"Content-Type": "application/json"}
        )
        assert answer.status_code == 400, (path, answer.text)
        assert bad.strip("-") in answer.text, answer.text
    after = admin.get("/flows")
    assert after.status_code == 200 and after.json() == before


def _device_session(server) -> str:
    base, admin, _dev, _out = server
    made = admin.post("/devices", json={"name": "BadInputClient", "ontologies": {"BasicSensor": "ALL"}})
    assert made.status_code == 201, made.text
    joined = httpx.get(
        f"{base}/iot-broker/rest/client/join",
        params={"token": made.json()["token"], "clientPlatform": "BadInputClient", "clientPlatformId": "i1"},
        timeout=10,
    )
    assert joined.status_code == 200, joined.text
    return joined.json()["sessionKey"]


FAILING_QUERIES = [
    ("SQL", "select * from BasicSensor limit 1e20"),
    ("SQL", "select * from BasicSensor limit 100000000000000000000"),
    ("NATIVE", "db.BasicSensor.find({}).limit(1e20)"),
    ("NATIVE", "db.BasicSensor.find({}).skip(100000000000000000000)"),
    (
        "NATIVE",
        "db.BasicSensor.find({$or: ["
        + ", ".join(f"{{'BasicSensor.measure': {i}}}" for i in range(5000))
        + "]})",
    ),
    ("SQL", "select * from BasicSensor where " + "(" * 500 + "BasicSensor.measure > 1" + ")" * 500),
    ("NATIVE", "db.BasicSensor.find(" + "{'$and': [" * 500 + "{}" + "]}" * 500 + ")"),
]


def test_failing_ssap_queries_are_answered_at_once_with_the_reason(server):
    base = server[0]
    headers = {"Authorization": _device_session(server)}
    for query_type, query in FAILING_QUERIES:
        # a POST body: the 5,000-term query is longer than a request line may be
        answer = httpx.post(
            f"{base}/iot-broker/rest/ontology/BasicSensor/query",
            headers=headers,
            json={"query": query, "queryType": query_type},
            timeout=30,
        )
        assert answer.status_code == 400, (query[:60], answer.status_code, answer.text[:300])
        body = answer.json()
        assert body["ok"] is False and body["errorCode"] == "PROCESSOR" and body["error"], body
        assert "[SQL" not in body["error"] and "SELECT doc" not in body["error"], body["error"]


@pytest.mark.parametrize(
    ("param", "value"), [("skip", 2**63), ("skip", 2**31), ("limit", 2**63), ("skip", -1)]
)
def test_data_api_skip_and_limit_out_of_bounds_are_a_400_naming_them(server, param, value):
    _base, admin, _dev, _out = server
    answer = admin.get("/ontologies/BasicSensor/data", params={param: value})
    assert answer.status_code == 400, answer.text
    assert param in answer.text and "SELECT" not in answer.text.upper()
