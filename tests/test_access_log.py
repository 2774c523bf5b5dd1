"""The access log (runtime/http/access_log.py): the line, the middleware, the setting, and a real `sofiaflow run`
writing it to a file, with secrets masked everywhere it logs a request target."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onesait_server import REPO, free_port
from websockets.sync.client import connect as ws_connect

from sofiaflow.runtime.http.access_log import (
    MASK,
    AccessLog,
    access_line,
    open_access_log,
    redact_target,
    request_target,
)

LINE = re.compile(
    r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (?P<client>\S+) "(?P<method>[A-Z]+) (?P<target>\S+) HTTP/(?P<v>[\d.]+)" '
    r"(?P<status>\d{3}) (?P<size>\d+) (?P<ms>\d+\.\d)$"
)


def _scope(raw_path: bytes, query: bytes = b"", method: str = "GET") -> dict:
    return {
        "type": "http",
        "method": method,
        "http_version": "1.1",
        "path": raw_path.decode("latin-1"),
        "raw_path": raw_path,
        "query_string": query,
        "client": ("127.0.0.1", 50412),
        "headers": [],
    }


def test_the_line_has_time_client_request_status_bytes_and_milliseconds():
    line = access_line(
        _scope(b"/join", b"token=abc&clientPlatform=p"), 200, 164, 0.00093, "2026-12-06T22:30:01Z"
    )
    assert line == (
        '2026-12-06T22:30:01Z 127.0.0.1:50412 "GET /join?token=***&clientPlatform=p HTTP/1.1" 200 164 0.9\n'
    )
    assert access_line({**_scope(b"/x"), "client": None}, 404, 0, 0.0, "t").startswith(
        't - "GET /x HTTP/1.1"'
    )


def test_a_target_cannot_forge_a_line_nor_break_the_quotes():
    target = request_target(_scope(b'/a"b\n2026-01-01T00:00:00Z 1.2.3.4:1 "GET /x', b"q=\xc3\xa9 \r"))
    assert "\n" not in target and "\r" not in target and '"' not in target and " " not in target
    assert target.startswith("/a%22b%0A2026") and target.endswith("?q=%C3%A9%20%0D")
    assert request_target({"path": "/plain"}) == "/plain"  # no raw_path (another server): the decoded path


def test_secrets_are_masked_even_percent_encoded_or_after_the_quoting():
    assert request_target(_scope(b"/a", b"%74oken=x&page=2&X-Api-Key=y&sessionKey=z")) == (
        "/a?%74oken=***&page=2&X-Api-Key=***&sessionKey=***"
    )
    # quoting a target (here for its space) happens before the masking, so the value is still masked
    assert request_target(_scope(b"/a b", b"password=p w")) == "/a%20b?password=***"
    assert redact_target("/a?page=2&q=token") == "/a?page=2&q=token"


_PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=12)
_SECRET_NAME = st.sampled_from(
    [
        "token",
        "access_token",
        "apiKey",
        "X-OP-APIKey",
        "password",
        "sessionKey",
        "client_secret",
        "auth",
        "jwt",
    ]
)
_SECRET = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ", min_size=8, max_size=24)


@settings(max_examples=200, deadline=None)
@given(
    path=st.lists(_PLAIN, min_size=1, max_size=4),
    plain=st.lists(st.tuples(_PLAIN, _PLAIN), max_size=4),
    secrets=st.lists(st.tuples(_SECRET_NAME, _SECRET), min_size=1, max_size=3),
    order=st.randoms(use_true_random=False),
)
def test_a_secret_query_value_never_reaches_the_line(path, plain, secrets, order):
    pairs = [f"{n}={v}" for n, v in plain + secrets]
    order.shuffle(pairs)
    scope = _scope(("/" + "/".join(path)).encode(), "&".join(pairs).encode())
    line = access_line(scope, 200, 10, 0.001, "2026-12-06T22:30:01Z")
    for _name, secret in secrets:
        assert secret not in line
    for name, _secret in secrets:
        assert f"{name}={MASK}" in line
    for name, value in plain:
        assert f"{name}={value}" in line or f"{name}={MASK}" in line  # a plain name may look secret: `..key`
    assert LINE.match(line.rstrip("\n")), line


async def _app(scope, receive, send):
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": b"abc", "more_body": True})
    await send({"type": "http.response.body", "body": b"defg"})


async def _call(app, path: str, query: bytes = b"") -> list[dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    await app(_scope(path.encode(), query), receive, send)
    return sent


class _Counting(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_the_middleware_writes_one_line_per_request_once_per_loop_turn():
    out = _Counting()
    logged = AccessLog(_app, out)
    assert logged.app is _app  # NiceGUI follows `.app` to find its server

    async def main():
        # the five requests are answered in the same turn of the loop (nothing they await suspends)
        answers = await asyncio.gather(*(_call(logged, f"/r{i}", b"token=SECRETVALUE") for i in range(5)))
        await asyncio.sleep(0)
        return answers

    answers = asyncio.run(main())
    assert out.writes == 1
    assert [m["type"] for m in answers[0]] == [
        "http.response.start",
        "http.response.body",
        "http.response.body",
    ]
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and "SECRETVALUE" not in out.getvalue()
    for i, line in enumerate(sorted(lines, key=lambda x: LINE.match(x)["target"])):
        m = LINE.match(line)
        assert m and m["target"] == f"/r{i}?token=***" and m["status"] == "201" and m["size"] == "7", line


def test_a_request_whose_app_fails_is_logged_as_the_500_the_server_answers():
    out = io.StringIO()
    logged = AccessLog(_app, out)

    async def main():
        with pytest.raises(RuntimeError, match="boom"):
            await _call(logged, "/boom")
        await asyncio.sleep(0)

    asyncio.run(main())
    m = LINE.match(out.getvalue().rstrip("\n"))
    assert m and m["target"] == "/boom" and m["status"] == "500" and m["size"] == "0"


def test_other_scopes_pass_through_unlogged():
    out = io.StringIO()
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["type"])

    logged = AccessLog(app, out)

    async def main():
        await logged({"type": "lifespan"}, None, None)
        await logged({"type": "websocket", "path": "/comms"}, None, None)
        await asyncio.sleep(0)

    asyncio.run(main())
    assert seen == ["lifespan", "websocket"] and out.getvalue() == ""


def test_the_setting(tmp_path):
    for off in ("off", "OFF", "0", "false", "none"):
        assert open_access_log(off) is None
    for on in ("on", "1", "stdout", ""):
        assert open_access_log(on) is sys.stdout
    assert open_access_log("stderr") is sys.stderr
    path = tmp_path / "access.log"
    path.write_text("kept\n")
    stream = open_access_log(str(path))
    logged = AccessLog(_app, stream)
    logged._add("new\n")
    logged.close()  # no loop: written at once; its own file is closed
    assert stream.closed and path.read_text() == "kept\nnew\n"
    with pytest.raises(ValueError, match=r"SOFIAFLOW_ACCESS_LOG: cannot open '.*missing/access\.log'"):
        open_access_log(str(tmp_path / "missing" / "access.log"))


def _run(data, env: dict, out_path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    full = {
        **os.environ,
        "SOFIAFLOW_ADMIN_PASSWORD": "access-log-password",
        "SOFIAFLOW_DEFAULT_FLOWS": "none",
    }
    full.pop("SOFIAFLOW_ONTOLOGIES_DIR", None)
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sofiaflow.runtime.cli",
                "run",
                "--data-dir",
                str(data),
                "--port",
                str(port),
                "--mqtt-port",
                "0",
            ],
            env={**full, **env},
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return proc, port


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_a_real_server_logs_requests_to_the_file_and_never_a_secret(tmp_path):
    access = tmp_path / "access.log"
    out_path = tmp_path / "stdout.log"
    proc, port = _run(tmp_path / "d", {"SOFIAFLOW_ACCESS_LOG": str(access)}, out_path)
    base = f"http://127.0.0.1:{port}"
    secret = "S3cretDeviceToken4711"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, out_path.read_text()[-3000:]
            try:
                httpx.get(f"{base}/settings", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        answer = httpx.get(
            f"{base}/iot-broker/rest/client/join", params={"token": secret, "p": "x"}, timeout=10
        )
        httpx.get(f"{base}/flows", params={"access_token": secret + "b", "apiKey": secret + "c"}, timeout=10)
        # uvicorn logs WebSocket handshakes, query included, on its own logger: masked as well
        with ws_connect(f"ws://127.0.0.1:{port}/comms?access_token={secret}d", open_timeout=10):
            pass
        deadline = time.monotonic() + 20
        while "access_token=***&apiKey=***" not in (access.read_text() if access.exists() else ""):
            assert time.monotonic() < deadline, access.read_text() if access.exists() else "no access log"
            time.sleep(0.1)
        while "/comms?access_token=***" not in out_path.read_text():
            assert time.monotonic() < deadline, out_path.read_text()[-3000:]
            time.sleep(0.1)
    finally:
        _stop(proc)
    lines = access.read_text().splitlines()
    joins = [LINE.match(x) for x in lines if "/iot-broker/rest/client/join" in x]
    assert len(joins) == 1 and joins[0]["target"] == "/iot-broker/rest/client/join?token=***&p=x", lines
    assert joins[0]["status"] == str(answer.status_code) and int(joins[0]["size"]) == len(answer.content)
    assert all(LINE.match(x) for x in lines), lines
    out = out_path.read_text()
    assert secret not in access.read_text() and secret not in out
    assert "GET /flows" not in out  # the requests went to the file, not to standard output


def test_access_log_off_logs_no_request_and_a_bad_path_stops_the_start(tmp_path):
    out_path = tmp_path / "stdout.log"
    proc, port = _run(tmp_path / "d", {"SOFIAFLOW_ACCESS_LOG": "off"}, out_path)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, out_path.read_text()[-3000:]
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/settings", timeout=2).status_code in (200, 401)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
    finally:
        _stop(proc)
    assert "/settings" not in out_path.read_text()

    bad = tmp_path / "no-such-dir" / "access.log"
    proc, _port = _run(tmp_path / "d2", {"SOFIAFLOW_ACCESS_LOG": str(bad)}, tmp_path / "bad.log")
    try:
        assert proc.wait(60) == 1
    finally:
        _stop(proc)
    assert (
        f"error: SOFIAFLOW_ACCESS_LOG: cannot open '{bad}' for appending"
        in (tmp_path / "bad.log").read_text()
    )
