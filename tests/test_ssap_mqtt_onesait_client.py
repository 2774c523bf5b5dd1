"""onesait's own MQTT client (onesaitplatform.mqttclient from onesaitplatform-client-services) joins, inserts
and queries over SSAP-on-MQTT against a real `sofiaflow run` with the shipped IoT Broker flow.

The client needs paho-mqtt 1.x (it calls `paho.mqtt.client.Client(client_id)`, which paho-mqtt 2 refuses), so
it runs in a subprocess with paho-mqtt 1.6.1 installed from PyPI into a temporary directory first on its path.
It also ignores its `port` argument (connects to 1883); the subprocess passes the test broker's port to
paho's `connect` instead — the only change to the client's behaviour.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import onesait_server  # noqa: E402

SCRIPT = textwrap.dedent("""
    import functools, json, sys
    sys.path.insert(0, sys.argv[1])
    import paho.mqtt.client as paho
    assert paho.__version__ if hasattr(paho, "__version__") else True
    from onesaitplatform.mqttclient.core import Client
    port, name, token, asset = int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
    client = Client("127.0.0.1", port=port, platform=name, instance="py-" + asset, token=token, timeout=10)
    client._client.connect = functools.partial(client._client.connect, port=port)
    client.connect()
    out = {"session": client._session_key}
    inserted = client.insert("BasicSensor", {"BasicSensor": {"assetId": asset, "measure": 4.25}})
    out["inserted"] = inserted.result
    rows = client.query("BasicSensor", json.dumps({"BasicSensor.assetId": asset}))
    out["rows"] = rows.result
    out["deleted"] = client.delete_id("BasicSensor", out["inserted"]["id"]).result
    client.disconnect()
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def paho1(tmp_path_factory):
    prepared = os.environ.get("SOFIAFLOW_PAHO1_DIR")  # .ci/run installs it once, before the tests
    if prepared and (Path(prepared) / "paho").is_dir():
        return Path(prepared)
    target = tmp_path_factory.mktemp("paho1")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            "paho-mqtt==1.6.1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != 0:
        message = f"paho-mqtt 1.6.1 could not be installed from PyPI: {done.stderr[-500:]}"
        if os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return target


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = onesait_server.start(tmp_path_factory.mktemp("onesait-mqtt-client"))
    yield srv
    srv.stop()


def test_the_onesait_mqtt_client_joins_inserts_and_queries(server, paho1):
    name = "py-" + uuid.uuid4().hex[:8]
    token = server.device(name, {"BasicSensor": "ALL"})
    asset = uuid.uuid4().hex[:8]
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(paho1), str(server.mqtt_port), name, token, asset],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert isinstance(out["session"], str) and len(out["session"]) == 36
    assert isinstance(out["inserted"]["id"], str)
    assert len(out["rows"]) == 1
    row = out["rows"][0]
    assert row["BasicSensor"] == {"assetId": asset, "measure": 4.25}
    assert row["_id"] == {"$oid": out["inserted"]["id"]}
    assert row["contextData"]["source"] == "mqtt" and row["contextData"]["device"] == "py-" + asset
    assert out["deleted"]["nDeleted"] == 1
    seen = server.admin.get(f"/devices/{name}/instances").json()
    assert [i["instance"] for i in seen] == ["py-" + asset]
