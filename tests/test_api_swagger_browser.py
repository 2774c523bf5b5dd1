"""The API Manager on a real `sofiaflow run` server: Swagger UI (served from the swagger-ui-bundle package, no
CDN) loads in headless Chromium, lists every published API and calls one with an API key; plain HTTP calls get
401 without a key and 429 past the quota."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "api-test-password"
REPO = Path(__file__).resolve().parents[1]
SCHEMA = {
    "type": "object",
    "required": ["sensor", "value"],
    "properties": {"sensor": {"type": "string"}, "value": {"type": "number"}, "zone": {"type": "string"}},
}
FLOWS = [
    {"id": "t", "type": "tab", "label": "apis"},
    {
        "id": "readings",
        "type": "api",
        "name": "readings",
        "version": 1,
        "state": "published",
        "description": "Readings by zone",
        "quota": 0,
    },
    {"id": "limited", "type": "api", "name": "limited", "version": 3, "state": "published", "quota": 3},
    {
        "id": "byZone",
        "type": "api-endpoint",
        "z": "t",
        "api": "readings",
        "method": "GET",
        "path": "/byZone",
        "operation": "query",
        "ontology": "Reading",
        "query": '{"zone": "{$zone}"}',
        "parameters": [{"name": "zone", "in": "query", "type": "string", "required": True}],
        "wires": [],
    },
    {
        "id": "add",
        "type": "api-endpoint",
        "z": "t",
        "api": "readings",
        "method": "POST",
        "path": "/",
        "operation": "insert",
        "ontology": "Reading",
        "wires": [],
    },
    {
        "id": "all",
        "type": "api-endpoint",
        "z": "t",
        "api": "limited",
        "method": "GET",
        "path": "/",
        "operation": "query",
        "ontology": "Reading",
        "wires": [],
    },
]


class Server:
    """`sofiaflow run` as a subprocess on a free port; `call` sends JSON with the admin token or given headers."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = Path(tempfile.mkdtemp(prefix="sofiaflow-api-"))
        env = {
            **os.environ,
            "SOFIAFLOW_ADMIN_PASSWORD": PASSWORD,
            "SOFIAFLOW_EDITOR": "0",
            "SOFIAFLOW_DEFAULT_FLOWS": "none",
            "SOFIAFLOW_ONTOLOGIES_DIR": "",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sofiaflow.runtime.cli",
                "run",
                "--data-dir",
                str(self.data_dir),
                "--port",
                str(self.port),
                "--mqtt-port",
                "0",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.token = ""
        deadline = time.monotonic() + 60
        while not self.token:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sofiaflow exited: {self.proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sofiaflow did not start within 60 s")
            try:
                form = urllib.parse.urlencode(
                    {
                        "client_id": "node-red-admin",
                        "grant_type": "password",
                        "scope": "*",
                        "username": "admin",
                        "password": PASSWORD,
                    }
                ).encode()
                with urllib.request.urlopen(f"{self.url}/auth/token", form, timeout=5) as resp:
                    self.token = json.loads(resp.read())["access_token"]
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)

    def call(
        self, method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], object]:
        data = json.dumps(body).encode() if body is not None else None
        sent = {"Content-Type": "application/json"}
        sent.update(headers if headers is not None else {"Authorization": f"Bearer {self.token}"})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, answer_headers, raw = resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            status, answer_headers, raw = err.code, dict(err.headers), err.read()
        return status, {k.lower(): v for k, v in answer_headers.items()}, json.loads(raw) if raw else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def server():
    srv = Server()
    try:
        assert srv.call("POST", "/ontologies", {"name": "Reading", "schema": SCHEMA})[0] == 201
        status, _, answer = srv.call("POST", "/flows", FLOWS)
        assert status in (200, 204), answer
        status, _, key = srv.call("POST", "/api-keys", {"label": "browser"})
        assert status == 201
        srv.key = key["key"]
        yield srv
    finally:
        srv.stop()


def test_a_real_server_serves_calls_with_keys_and_quotas(server):
    base = "/api-manager/server/api"
    assert server.call("GET", f"{base}/v1/readings/byZone?zone=n", headers={})[0] == 401
    assert server.call("GET", f"{base}/v1/readings/byZone?zone=n", headers={"X-OP-APIKey": "nope"})[0] == 401
    key = {"X-OP-APIKey": server.key}
    assert (
        server.call("POST", f"{base}/v1/readings/", {"sensor": "a", "value": 1, "zone": "n"}, key)[0] == 201
    )
    status, _, page = server.call("GET", f"{base}/v1/readings/byZone?zone=n", headers=key)
    assert status == 200 and page["total"] == 1 and page["items"][0]["sensor"] == "a"
    statuses = [server.call("GET", f"{base}/v3/limited/", headers=key)[0] for _ in range(3)]
    assert statuses == [200, 200, 200]
    status, headers, body = server.call("GET", f"{base}/v3/limited/", headers=key)
    assert status == 429 and int(headers["retry-after"]) >= 1 and "quota" in body["message"]


def test_swagger_ui_loads_every_api_and_calls_one_with_a_key(server):
    required = os.environ.get("SOFIAFLOW_REQUIRE_SERVERS") == "1"
    try:
        import playwright.sync_api as playwright_api
    except ImportError:
        if required:
            pytest.fail("Playwright is required (SOFIAFLOW_REQUIRE_SERVERS=1) but not installed")
        pytest.skip("Playwright is not installed")
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail(f"Chromium is required (SOFIAFLOW_REQUIRE_SERVERS=1) but {CHROMIUM} is missing")
        pytest.skip("Chromium is not installed")
    outside: list[str] = []
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server.url) else None)
            page.goto(f"{server.url}/api-manager/swagger")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            options = page.locator(".topbar select option").all_inner_texts()
            assert sorted(options) == ["limited v3", "readings v1"]
            assert page.locator(".info .title").first.inner_text().startswith("limited")
            page.locator(".topbar select").select_option(label="readings v1")
            page.wait_for_selector("[data-path='/byZone']", timeout=20_000)
            assert set(page.locator(".opblock-summary-path").all_inner_texts()) == {"/byZone", "/"}

            page.click("button.authorize")
            page.fill(".auth-container input", server.key)
            page.click(".auth-btn-wrapper button.authorize")
            page.click("button.btn-done")
            page.click("[data-path='/byZone'] button.opblock-summary-control, [data-path='/byZone']")
            page.click(".try-out__btn")
            page.fill("tr[data-param-name='zone'] input", "n")
            page.click(".execute")
            page.wait_for_selector(".live-responses-table tbody .response-col_status", timeout=20_000)
            status = (
                page.locator(".live-responses-table tbody .response-col_status").first.inner_text().strip()
            )
            assert status == "200"
            assert '"total": 1' in page.locator(".live-responses-table .microlight").first.inner_text()
        finally:
            browser.close()
    assert outside == []  # every file came from the server itself
