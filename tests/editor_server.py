"""Shared fixtures for browser tests: a real `sofiaflow run` server and a headless Chromium.

    from editor_server import chromium, editor_server  # noqa: F401  (pytest fixtures)

    def test_x(editor_server, chromium):
        page = chromium.new_page()
        login(page, editor_server)

`editor_server` (module scope) runs `sofiaflow run` as a subprocess on a free 127.0.0.1 port with a
temporary data dir, the admin password set, no embedded MQTT broker and no default flows; it waits until the admin API
and the editor answer, and stops the process by pid at teardown. `chromium` (module scope) is Debian's
Chromium driven by Playwright, headless.
"""

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from ports import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "editor-test-password"
EDITOR_PATH = "/editor"
START_TIMEOUT = 60.0
REPO = Path(__file__).resolve().parents[1]


@dataclass
class EditorServer:
    """A running `sofiaflow run`: `url` (base, no trailing slash), `password` of user "admin"."""

    url: str
    password: str
    data_dir: Path
    proc: subprocess.Popen
    user: str = "admin"
    _token: str = field(default="", repr=False)

    @property
    def editor_url(self) -> str:
        return self.url + EDITOR_PATH

    def token(self) -> str:
        """A bearer token for the admin API (fetched once)."""
        if not self._token:
            data = urllib.parse.urlencode(
                {
                    "client_id": "node-red-admin",
                    "grant_type": "password",
                    "scope": "*",
                    "username": self.user,
                    "password": self.password,
                }
            ).encode()
            with urllib.request.urlopen(f"{self.url}/auth/token", data, timeout=5) as resp:
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    def api(
        self, method: str, path: str, body: object = None, headers: dict | None = None
    ) -> tuple[int, object]:
        """Call the admin API with the token; (status, JSON body or text)."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.url}{path}",
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token()}",
                "Content-Type": "application/json",
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, text = resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            status, text = err.code, err.read().decode()
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text


def _ready(url: str, editor: bool) -> bool:
    paths = ["/auth/login"] + ([EDITOR_PATH + "/login"] if editor else [])
    for path in paths:
        try:
            with urllib.request.urlopen(url + path, timeout=5) as resp:
                if resp.status != 200:
                    return False
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
    return True


def start_server(env: dict[str, str] | None = None, flows_file: str | Path | None = None) -> EditorServer:
    """Start `sofiaflow run` and wait until it answers; stop it with `stop_server`."""
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="sofiaflow-editor-"))
    full_env = {
        **os.environ,
        "SOFIAFLOW_ADMIN_PASSWORD": PASSWORD,
        "SOFIAFLOW_MQTT_PORT": "0",
        "SOFIAFLOW_DATA_DIR": str(data_dir),
        "SOFIAFLOW_DEFAULT_FLOWS": "",
        **(env or {}),
    }
    args = [
        sys.executable,
        "-m",
        "sofiaflow.runtime.cli",
        "run",
        "--data-dir",
        str(data_dir),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--mqtt-port",
        "0",
    ]
    if flows_file is not None:
        args += ["--flows", str(flows_file)]
    log = open(data_dir / "server.log", "wb")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(args, env=full_env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = EditorServer(url=f"http://127.0.0.1:{port}", password=PASSWORD, data_dir=data_dir, proc=proc)
    editor = full_env.get("SOFIAFLOW_EDITOR", "1") != "0"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = server_log(server)
            stop_server(server)
            raise RuntimeError(f"sofiaflow exited with {proc.returncode}: {output[-3000:]}")
        if _ready(server.url, editor):
            return server
        time.sleep(0.2)
    output = server_log(server)
    stop_server(server)
    raise RuntimeError(f"sofiaflow did not answer within {START_TIMEOUT}s: {output[-3000:]}")


def server_log(server: EditorServer) -> str:
    """What the server printed so far."""
    try:
        return (server.data_dir / "server.log").read_text(errors="replace")
    except OSError:
        return ""


def stop_server(server: EditorServer) -> None:
    """SIGTERM the server's pid (SIGKILL after 10 s) and remove its data dir."""
    if server.proc.poll() is None:
        os.kill(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(server.proc.pid, signal.SIGKILL)
            server.proc.wait(5)
    shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def editor_server() -> Iterator[EditorServer]:
    """One real server per test module, with the editor mounted."""
    server = start_server()
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """One headless Chromium (Playwright `Browser`) per test module; fails when Chromium is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is required for the browser tests (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def editor_page(
    browser: object, server: EditorServer, width: int = 1400, height: int = 850
) -> Iterator[object]:
    """A logged-in page on the flow editor in a fresh browser context (closed afterwards)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10000)
    login(page, server)
    page.wait_for_selector(".sf-canvas")
    try:
        yield page
    finally:
        context.close()


def login(page: object, server: EditorServer, path: str = "") -> None:
    """Open the editor's login page in `page`, log in as admin, and wait for `path` (under the editor) to load."""
    page.goto(f"{server.editor_url}/login?redirect_to={urllib.parse.quote(EDITOR_PATH + (path or '/'))}")
    page.get_by_label("Username").fill(server.user)
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/login" not in url, timeout=15000)
