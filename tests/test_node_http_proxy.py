"""http proxy with a real `http request`: requests go through a real forward proxy (Debian's tinyproxy) started
here on 127.0.0.1, and `noproxy` hosts reach the server directly."""

from __future__ import annotations

import asyncio
import http.server
import socket
import subprocess
import threading
import time

import pytest
from ports import free_port

from sofiaflow.runtime.testing import FlowTester
from tests.conftest import require_binary


class _Origin(http.server.BaseHTTPRequestHandler):
    seen: list[dict[str, str]]

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.seen.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})  # type: ignore[attr-defined]
        body = f"origin {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def origin():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    httpd.daemon_threads = True
    httpd.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)


class Tinyproxy:
    def __init__(self, binary: str, root, basic_auth: tuple[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = root / "tinyproxy.log"
        conf = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 30",
            f'LogFile "{self.log}"',
            "LogLevel Connect",
            "MaxClients 20",
            "Allow 127.0.0.1",
            'ViaProxyName "sofiaflow-test-proxy"',
        ]
        if basic_auth:
            conf.append(f"BasicAuth {basic_auth[0]} {basic_auth[1]}")
        self.conf = root / "tinyproxy.conf"
        self.conf.write_text("\n".join(conf) + "\n")
        self.proc = subprocess.Popen(
            [binary, "-d", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"tinyproxy did not start: {self.proc.stderr.read()!r}") from None  # type: ignore[union-attr]
                time.sleep(0.05)
        self.url = f"http://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture
def tinyproxy_binary() -> str:
    return require_binary("tinyproxy")


@pytest.fixture
def proxy(tinyproxy_binary, tmp_path):
    p = Tinyproxy(tinyproxy_binary, tmp_path)
    yield p
    p.stop()


def flows(url: str, proxy: dict) -> list[dict]:
    request = {
        "id": "req",
        "type": "http request",
        "z": "t",
        "name": "",
        "method": "GET",
        "ret": "txt",
        "paytoqs": "ignore",
        "url": url,
        "tls": "",
        "persist": False,
        "proxy": proxy["id"],
        "insecureHTTPParser": False,
        "authType": "",
        "senderr": False,
        "headers": [],
        "x": 1,
        "y": 1,
        "wires": [[]],
    }
    done = {"id": "d", "type": "complete", "z": "t", "scope": ["req"], "uncaught": False, "x": 1, "y": 1}
    done["wires"] = [[]]
    return [{"id": "t", "type": "tab", "label": "t"}, request, done, proxy]


def proxy_node(url: str, noproxy: list[str] | None = None) -> dict:
    return {"id": "px", "type": "http proxy", "name": "", "url": url, "noproxy": noproxy or []}


async def get(registry, url: str, proxy: dict, credentials: dict | None = None) -> dict:
    creds = {"px": credentials} if credentials else None
    async with FlowTester(flows(url, proxy), registry, credentials=creds) as t:
        t.inject("req", {})
        deadline = time.monotonic() + 15
        while not t.outputs("d")[0]:
            assert time.monotonic() < deadline, "timed out waiting"
            await asyncio.sleep(0.01)
        [out] = t.outputs("req")[0]
        return out


async def test_requests_go_through_the_proxy(registry, origin, proxy):
    port = origin.server_address[1]
    out = await get(registry, f"http://127.0.0.1:{port}/via", proxy_node(proxy.url))
    assert out["statusCode"] == 200 and out["payload"] == "origin /via"
    [seen] = origin.seen
    assert "sofiaflow-test-proxy" in seen.get("via", ""), seen  # tinyproxy adds its Via header
    assert f"http://127.0.0.1:{port}/via" in proxy.log_text()  # and logs the request it forwarded


async def test_a_proxy_url_without_a_scheme_is_taken_as_http(registry, origin, proxy):
    port = origin.server_address[1]
    out = await get(registry, f"http://127.0.0.1:{port}/bare", proxy_node(f"127.0.0.1:{proxy.port}"))
    assert out["payload"] == "origin /bare"
    assert "sofiaflow-test-proxy" in origin.seen[0].get("via", "")


async def test_noproxy_hosts_bypass_the_proxy(registry, origin, proxy):
    port = origin.server_address[1]
    node = proxy_node(proxy.url, ["localhost"])
    out = await get(registry, f"http://localhost:{port}/direct", node)
    assert out["payload"] == "origin /direct"
    out = await get(registry, f"http://127.0.0.1:{port}/proxied", node)
    assert out["payload"] == "origin /proxied"
    direct, proxied = origin.seen
    assert direct["path"] == "/direct" and "via" not in direct
    assert proxied["path"] == "/proxied" and "sofiaflow-test-proxy" in proxied.get("via", "")
    log = proxy.log_text()
    assert "/proxied" in log and "/direct" not in log


async def test_proxy_credentials_are_sent(registry, origin, tinyproxy_binary, tmp_path):
    p = Tinyproxy(tinyproxy_binary, tmp_path, basic_auth=("dev", "pw"))
    try:
        port = origin.server_address[1]
        url = f"http://127.0.0.1:{port}/auth"
        out = await get(registry, url, proxy_node(p.url), {"username": "dev", "password": "pw"})
        assert out["statusCode"] == 200 and out["payload"] == "origin /auth"
        out = await get(registry, url, proxy_node(p.url), {"username": "dev", "password": "wrong"})
        assert out["statusCode"] == 401 or out["statusCode"] == 407
        assert [s["path"] for s in origin.seen] == ["/auth"]  # the refused one never reached the server
    finally:
        p.stop()
