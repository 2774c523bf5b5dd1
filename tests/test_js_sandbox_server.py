"""A real server with JavaScript function nodes in sandbox workers: a V8 memory bomb and an interval flood
stop neither the server nor other flows, and the admin API keeps answering within 200 ms throughout."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.api_sampler import API_BOUND, ApiSampler
from tests.onesait_server import start


def http_in(id_, tab, url, target):
    return {"id": id_, "type": "http in", "z": tab, "url": url, "method": "get", "wires": [[target]]}


def function(id_, tab, body, target):
    return {"id": id_, "type": "function", "z": tab, "func": body, "outputs": 1, "wires": [[target]]}


def response(id_, tab):
    return {"id": id_, "type": "http response", "z": tab, "wires": []}


BOMB = (
    "if (msg.payload.kind === 'bomb') { new Array(1e9).fill(0); } msg.payload = 'bomb node ok'; return msg;"
)
FLOOD = (
    "setInterval(function () { var end = Date.now() + 900; while (Date.now() < end) {} }, 1);"
    "msg.payload = 'armed'; return msg;"
)
FLOWS = [
    {"id": "tb", "type": "tab", "label": "bomb"},
    http_in("hb", "tb", "/bomb", "fb"),
    function("fb", "tb", BOMB, "rb"),
    response("rb", "tb"),
    {"id": "cb", "type": "catch", "z": "tb", "scope": None, "wires": [["eb"]]},
    {
        "id": "eb",
        "type": "change",
        "z": "tb",
        "wires": [["rb"]],
        "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "error.message", "tot": "msg"}],
    },
    {"id": "ta", "type": "tab", "label": "add"},
    http_in("ha", "ta", "/add", "fa"),
    function("fa", "ta", "msg.payload = Number(msg.payload.n) + 1; return msg;", "ra"),
    response("ra", "ta"),
    {"id": "tf", "type": "tab", "label": "flood"},
    http_in("hf", "tf", "/flood", "ff"),
    function("ff", "tf", FLOOD, "rf"),
    response("rf", "tf"),
    {"id": "sf", "type": "status", "z": "tf", "scope": ["ff"], "wires": [["kf"]]},
    {
        "id": "kf",
        "type": "change",
        "z": "tf",
        "wires": [[]],
        "rules": [{"t": "set", "p": "floodStatus", "pt": "global", "to": "status.text", "tot": "msg"}],
    },
]


@pytest.fixture
def server(tmp_path):
    srv = start(tmp_path / "data", default_flows="")
    yield srv
    srv.stop()


def test_a_memory_bomb_and_an_interval_flood_stop_neither_the_server_nor_other_flows(server):
    assert server.admin.post("/flows", json=FLOWS).status_code in (200, 204)
    web = httpx.Client(base_url=server.base, timeout=60)
    try:
        assert web.get("/add", params={"n": 1}).text == "2"
        with ApiSampler(server.base, dict(server.admin.headers)) as sampler:
            time.sleep(0.3)
            answers: dict[str, str] = {}
            bomb = threading.Thread(
                target=lambda: answers.update(bomb=web.get("/bomb", params={"kind": "bomb"}).text)
            )
            bomb.start()
            time.sleep(0.5)
            assert (
                web.get("/add", params={"n": 41}).text == "42"
            )  # another tenant-less tab, same worker or not
            bomb.join(60)
            assert answers["bomb"] == "function: JavaScript ran out of memory"
            assert server.proc.poll() is None
            assert web.get("/bomb", params={"kind": "fine"}).text == "bomb node ok"
            assert web.get("/add", params={"n": 2}).text == "3"

            assert web.get("/flood").text == "armed"
            status = None
            for _ in range(100):  # bounded: the flood is cleared within a few seconds
                time.sleep(0.1)
                status = server.admin.get("/context/global/floodStatus").json().get("msg")
                if status and "stopped" in status:
                    break
            assert status == "stopped: timers took over half of the time"
            assert web.get("/add", params={"n": 5}).text == "6"
            time.sleep(0.5)
        assert server.proc.poll() is None
        assert len(sampler.times) > 40
        assert max(sampler.times) < API_BOUND, sorted(sampler.times)[-5:]
    finally:
        web.close()
