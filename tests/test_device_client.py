"""sofiaflow.runtime.client.DeviceClient against real servers: Mosquitto started here (free port; anonymous, then with a
password file), the embedded amqtt broker with the DeviceRegistry, a Starlette app and the runtime's own
NodeRoutes with the device-token auth hook. The client is synchronous: against servers on the test's event
loop its calls run in worker threads."""

from __future__ import annotations

import asyncio
import getpass
import math
import queue
import socket
import subprocess
import threading
import time

import pytest
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from ports import free_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from sofiaflow.runtime.client import (
    DeviceAuthError,
    DeviceClient,
    DeviceClientError,
    DeviceHTTPError,
    decode_payload,
    encode_payload,
)
from tests.conftest import require_binary

# ----- payloads ---------------------------------------------------------------------------------------------------


def test_payload_encoding():
    assert encode_payload({"a": 1, "é": [True, None]}) == '{"a":1,"é":[true,null]}'.encode()
    assert encode_payload("text") == b"text" and encode_payload(b"\x00\xff") == b"\x00\xff"
    assert encode_payload(2.5) == b"2.5" and encode_payload(False) == b"false"
    assert decode_payload(b'{"a":1}') == {"a": 1} and decode_payload(b"42") == 42
    assert decode_payload(b"plain text") == "plain text" and decode_payload(b"\xff\x00") == b"\xff\x00"
    assert decode_payload(b"NaN") == "NaN" and decode_payload(b"") == ""


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_dict_payloads_round_trip(value):
    decoded = decode_payload(encode_payload(value))
    assert decoded == value or any(isinstance(v, float) and math.isnan(v) for v in value.values())


# ----- Mosquitto ----------------------------------------------------------------------------------------------


def start_mosquitto(tmp_path, lines: list[str]) -> tuple[subprocess.Popen, int]:
    exe = require_binary("mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        "\n".join([f"listener {port} 127.0.0.1", "persistence false", f"user {getpass.getuser()}", *lines])
        + "\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"mosquitto did not start: {proc.stderr.read().decode()}") from None
            time.sleep(0.02)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@pytest.fixture
def mosquitto(tmp_path):
    proc, port = start_mosquitto(tmp_path, ["allow_anonymous true"])
    yield port
    stop(proc)


@pytest.fixture
def mosquitto_auth(tmp_path):
    passwd = require_binary("mosquitto_passwd")
    pwfile = tmp_path / "passwd"
    subprocess.run(
        [passwd, "-b", "-c", str(pwfile), "sensor-1", "tok-secret"], check=True, capture_output=True
    )
    proc, port = start_mosquitto(tmp_path, ["allow_anonymous false", f"password_file {pwfile}"])
    yield port
    stop(proc)


def test_publish_subscribe_round_trip(mosquitto):
    got: queue.Queue = queue.Queue()
    with (
        DeviceClient("sensor-1", "t1", mqtt_port=mosquitto) as sub,
        DeviceClient("sensor-2", "t2", mqtt_port=mosquitto) as pub,
    ):
        assert sub.subscribe("devices/+/data", lambda topic, payload: got.put((topic, payload))) == 1
        pub.publish("devices/s2/data", {"temp": 21.5, "ok": True})
        pub.publish("devices/s2/data", "plain", qos=0)
        pub.publish("devices/s2/data", b"\xff\xfe", qos=2)
        pub.publish("devices/s2/other", "not for sub")
        received = [got.get(timeout=5) for _ in range(3)]
        assert received == [
            ("devices/s2/data", {"temp": 21.5, "ok": True}),
            ("devices/s2/data", "plain"),
            ("devices/s2/data", b"\xff\xfe"),
        ]
        sub.unsubscribe("devices/+/data")
        pub.publish("devices/s2/data", 1)
        time.sleep(0.2)
        assert got.empty()


def test_retained_message_and_failing_callback(mosquitto):
    got: queue.Queue = queue.Queue()

    def boom(topic, payload):
        raise ValueError("callback bug")

    with DeviceClient("d", "t", mqtt_port=mosquitto) as dev:
        dev.publish("cfg/d", {"interval": 5}, retain=True)
        dev.subscribe("boom/#", boom)
        dev.publish("boom/x", 1)  # the callback raises; the network loop goes on
        dev.subscribe("cfg/d", lambda t, p: got.put(p))
        assert got.get(timeout=5) == {"interval": 5}
        assert dev.connected


def test_mqtt_auth_against_a_password_file(mosquitto_auth):
    with DeviceClient("sensor-1", "tok-secret", mqtt_port=mosquitto_auth) as dev:
        assert dev.connected
    with pytest.raises(DeviceAuthError, match="refused device 'sensor-1'"):
        DeviceClient("sensor-1", "wrong", mqtt_port=mosquitto_auth).connect()


def test_unreachable_broker_and_use_before_connect():
    with pytest.raises(DeviceClientError, match="cannot reach the MQTT broker"):
        DeviceClient("d", "t", mqtt_port=free_port()).connect()
    with pytest.raises(DeviceClientError, match="connect\\(\\) first"):
        DeviceClient("d", "t").publish("x", 1)
    with pytest.raises(ValueError):
        DeviceClient("", "t")


def test_reconnects_and_resubscribes(tmp_path):
    proc, port = start_mosquitto(tmp_path, ["allow_anonymous true"])
    got: queue.Queue = queue.Queue()
    dev = DeviceClient("d", "t", mqtt_port=port)
    try:
        dev.connect()
        dev.subscribe("cmd/d", lambda t, p: got.put(p))
        stop(proc)
        deadline = time.monotonic() + 5
        while dev.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not dev.connected
        with pytest.raises(DeviceClientError, match="not connected"):
            dev.publish("cmd/d", "lost", qos=0)
        proc, _ = _restart(tmp_path, port)  # same config, same port
        deadline = time.monotonic() + 10
        while not dev.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert dev.connected
        time.sleep(0.2)  # the resubscription is on its way
        dev.publish("cmd/d", "after restart")
        assert got.get(timeout=5) == "after restart"
    finally:
        dev.close()
        stop(proc)


def _restart(tmp_path, port: int) -> tuple[subprocess.Popen, int]:
    exe = require_binary("mosquitto")
    proc = subprocess.Popen(
        [exe, "-c", str(tmp_path / "mosquitto.conf")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "mosquitto did not restart"
            time.sleep(0.02)


# ----- HTTP ------------------------------------------------------------------------------------------------------


async def readings(request: Request) -> Response:
    if request.headers.get("authorization") != "Bearer tok-1":
        return JSONResponse({"code": "unauthorized", "message": "bad device token"}, status_code=401)
    if request.method == "POST":
        return JSONResponse({"stored": await request.json()}, status_code=201)
    return JSONResponse({"items": [], "query": dict(request.query_params)})


async def text(request: Request) -> Response:
    return PlainTextResponse("hello device")


@pytest.fixture(scope="module")
def http_base():
    port = free_port()
    app = Starlette(routes=[Route("/api/readings", readings, methods=["GET", "POST"]), Route("/text", text)])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_http_with_bearer_token(http_base):
    dev = DeviceClient("sensor-1", "tok-1", http_base=http_base)
    try:
        assert dev.post("/api/readings", json={"v": 1}) == {"stored": {"v": 1}}
        assert dev.get("/api/readings", params={"since": "1h"}) == {"items": [], "query": {"since": "1h"}}
        assert dev.get("/text") == "hello device"
        with pytest.raises(DeviceHTTPError) as info:
            dev.get("/missing")
        assert info.value.status == 404
    finally:
        dev.close()
    with pytest.raises(DeviceAuthError, match="401 unauthorized for device 'sensor-1': bad device token"):
        DeviceClient("sensor-1", "stolen", http_base=http_base).post("/api/readings", json={})
    with pytest.raises(DeviceClientError, match="ConnectError"):
        DeviceClient("d", "t", http_base=f"http://127.0.0.1:{free_port()}").get("/x")


# ----- the runtime's own broker and device routes -------------------------------------------------------------


@pytest.fixture
async def platform(tmp_path):
    """DeviceRegistry + EmbeddedBroker + NodeRoutes (device-only route) served by uvicorn on this loop."""
    from sofiaflow.runtime.data.config_db import connect
    from sofiaflow.runtime.http.node_routes import NodeRoutes
    from sofiaflow.runtime.mqtt.broker import EmbeddedBroker
    from sofiaflow.runtime.security.devices import DeviceRegistry

    db = connect(f"sqlite:///{tmp_path / 'devices.db'}")
    registry = DeviceRegistry(db)
    broker = EmbeddedBroker(registry, port=0)
    await broker.start()
    routes = NodeRoutes()

    async def handler(request: Request, params: dict) -> Response:
        return JSONResponse({"device": request.scope.get("sofiaflow.device"), "body": await request.json()})

    routes.add_route("post", "/api/readings", handler, owner="test", auth=NodeRoutes.device_auth(registry))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(routes, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield registry, broker, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        await broker.stop()
        db.dispose()


async def test_against_the_embedded_broker_and_device_routes(platform):
    registry, broker, http_base = platform
    _device, token = registry.create("sensor-1", {}, ["sensors/{device}/#"])
    seen: list = []
    broker.subscribe("sensors/#", lambda topic, payload, qos, retain: seen.append((topic, payload)))
    got: queue.Queue = queue.Queue()
    dev = DeviceClient("sensor-1", token, mqtt_port=broker.port, http_base=http_base)
    try:
        await asyncio.to_thread(dev.connect)
        await asyncio.to_thread(dev.subscribe, "sensors/sensor-1/cmd", lambda t, p: got.put(p))
        await asyncio.to_thread(dev.publish, "sensors/sensor-1/temp", {"v": 20})
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        assert seen[0] == ("sensors/sensor-1/temp", b'{"v":20}')
        await broker.publish("sensors/sensor-1/cmd", b'{"led":"on"}', qos=1)
        assert await asyncio.to_thread(got.get, True, 5) == {"led": "on"}
        with pytest.raises(DeviceAuthError, match="refused the subscription"):
            await asyncio.to_thread(dev.subscribe, "sensors/other/#", lambda t, p: None)
        answer = await asyncio.to_thread(dev.post, "/api/readings", {"v": 3})
        assert answer == {"device": "sensor-1", "body": {"v": 3}}
    finally:
        await asyncio.to_thread(dev.close)
    with pytest.raises(DeviceAuthError):
        await asyncio.to_thread(DeviceClient("sensor-1", token + "x", mqtt_port=broker.port).connect)
    with pytest.raises(DeviceAuthError, match="401"):
        await asyncio.to_thread(
            DeviceClient("sensor-1", "nope.nope", http_base=http_base).post, "/api/readings", {"v": 1}
        )
