"""The APIs and API keys pages in a real Chromium against a real `sofiaflow run`: a flow publishes an API, the
APIs page lists it (URL, state, Swagger link, call counts), a key is created on the API keys page and shown once
(with a copy button), the API answers with it, the call is counted and the key's last use shown, then the key is
revoked on the page and the API answers 401. A developer sees only their own keys. With SOFIAFLOW_SCREENSHOTS=1 the
pages are saved as docs/screenshots/apis.png and api-keys.png."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from editor_server import EDITOR_PATH, chromium, editor_server, login  # noqa: F401 - pytest fixtures
from editor_ui import screenshot_path

FLOWS = [
    {"id": "t", "type": "tab", "label": "APIs"},
    {"id": "hello", "type": "api", "name": "hello", "version": 2, "state": "published", "quota": 0},
    {
        "id": "hi",
        "type": "api-endpoint",
        "z": "t",
        "api": "hello",
        "method": "GET",
        "path": "/hi",
        "operation": "flow",
        "wires": [["answer"]],
    },
    {
        "id": "answer",
        "type": "change",
        "z": "t",
        "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "hi there", "tot": "str"}],
        "wires": [["res"]],
    },
    {"id": "res", "type": "http response", "z": "t", "statusCode": "", "headers": {}, "wires": []},
]
API_PATH = "/api-manager/server/api/v2/hello/hi"


def call(server, key: str) -> tuple[int, str]:
    req = urllib.request.Request(server.url + API_PATH, headers={"X-OP-APIKey": key})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def poll(check, timeout: float = 15.0, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(every)


def cells(row) -> list[str]:
    return [c.strip() for c in row.locator("td").all_inner_texts()]


def test_apis_and_keys_pages_create_show_once_call_count_and_revoke(editor_server, chromium, tmp_path):  # noqa: F811
    status, body = editor_server.api("POST", "/flows", FLOWS)
    assert status == 204, body
    context = chromium.new_context(viewport={"width": 1500, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        login(page, editor_server, "/apis")
        table = page.get_by_role("region", name="APIs")
        row = table.locator("tbody tr", has_text="hello v2")
        row.wait_for()
        texts = cells(row)
        assert texts[:5] == ["hello v2", "published", "–", "/api-manager/server/api/v2/hello", "GET /hi"]
        assert texts[6] == "0"
        assert (
            page.get_by_role("link", name="Swagger UI: try the APIs")
            .get_attribute("href")
            .endswith("/api-manager/swagger")
        )

        # create a key: shown once, with a copy button
        page.get_by_role("button", name="API keys", exact=True).click()
        page.wait_for_url(f"**{EDITOR_PATH}/api-keys")
        page.get_by_label("Label (what the key is for)").fill("dashboard")
        page.get_by_role("button", name="Create key").click()
        dialog = page.get_by_role("dialog")
        key = dialog.get_by_label("API key", exact=True).input_value()
        assert key.startswith("sfk_") and len(key) > 30
        dialog.get_by_role("button", name="Copy API key").click()
        assert poll(lambda: page.evaluate("navigator.clipboard.readText()") == key)
        dialog.get_by_role("button", name="Done").click()
        dialog.wait_for(state="hidden")
        keys = page.get_by_role("region", name="API keys")
        key_row = keys.locator("tbody tr", has_text="dashboard")
        key_row.wait_for()
        assert cells(key_row)[1] == "admin"
        assert cells(key_row)[3] == "never"
        assert cells(key_row)[4] == "active"

        # the API answers with the key; the page counts it
        assert call(editor_server, key) == (200, "hi there")
        page.reload()
        key_row = page.get_by_role("region", name="API keys").locator("tbody tr", has_text="dashboard")
        key_row.wait_for()
        assert key not in page.content()  # shown once: never again
        assert cells(key_row)[3] not in ("never", "")
        page.get_by_role("button", name="APIs", exact=True).click()
        poll(
            lambda: (
                cells(page.get_by_role("region", name="APIs").locator("tbody tr", has_text="hello v2"))[6]
                == "1"
            )
        )
        assert (
            cells(page.get_by_role("region", name="APIs").locator("tbody tr", has_text="hello v2"))[7] == "1"
        )
        page.screenshot(path=str(screenshot_path("apis.png", tmp_path)), full_page=True)

        # revoke: the API refuses the key
        page.get_by_role("button", name="API keys", exact=True).click()
        page.wait_for_url(f"**{EDITOR_PATH}/api-keys")
        page.get_by_role("button", name="Revoke dashboard").click()
        page.get_by_role("dialog").get_by_role("button", name="Revoke", exact=True).click()
        page.get_by_role("dialog").wait_for(state="hidden")
        key_row = page.get_by_role("region", name="API keys").locator("tbody tr", has_text="dashboard")
        poll(lambda: cells(key_row)[4].startswith("revoked"))
        assert page.get_by_role("button", name="Revoke dashboard").count() == 0
        assert call(editor_server, key)[0] == 401
        page.screenshot(path=str(screenshot_path("api-keys.png", tmp_path)), full_page=True)
    finally:
        context.close()


def test_a_developer_sees_and_revokes_only_their_own_keys(editor_server, chromium):  # noqa: F811
    status, body = editor_server.api(
        "POST", "/users", {"username": "dev1", "password": "dev1-password-long", "role": "developer"}
    )
    assert status in (200, 201), body
    status, admin_key = editor_server.api("POST", "/api-keys", {"label": "admin-only"})
    assert status == 201, admin_key
    context = chromium.new_context(viewport={"width": 1400, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        page.goto(f"{editor_server.editor_url}/login?redirect_to={EDITOR_PATH}/api-keys")
        page.get_by_label("Username").fill("dev1")
        page.get_by_label("Password").fill("dev1-password-long")
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"**{EDITOR_PATH}/api-keys")
        page.get_by_label("Label (what the key is for)").fill("mine")
        page.get_by_role("button", name="Create key").click()
        page.get_by_role("dialog").get_by_role("button", name="Done").click()
        keys = page.get_by_role("region", name="API keys")
        keys.locator("tbody tr", has_text="mine").wait_for()
        assert keys.locator("tbody tr", has_text="admin-only").count() == 0
        assert page.get_by_role("switch", name="Everyone's keys").count() == 0
        assert page.get_by_role("button", name="Revoke mine").count() == 1
    finally:
        context.close()


class _Service:
    """What api_rows reads of the API Manager: its APIs, call counts and URLs."""

    def __init__(self) -> None:
        from sofiaflow.runtime.api_manager import ApiManager
        from sofiaflow.runtime.api_manager.model import ApiSpec

        self.urls = ApiManager.urls
        self._apis = [
            (ApiSpec("open", 1, state="published", owner="ana"), []),
            (ApiSpec("draft", 1, state="development", owner="ana"), []),
            (ApiSpec("other", 2, state="development", owner="bob"), []),
        ]

    def apis(self):
        return self._apis

    def stats(self):
        return [
            {"api": "open", "version": 1, "status": {"200": 3, "401": 1}},
            {"api": "draft", "version": 1, "status": {"500": 2}},
            {"api": "other", "version": 2, "status": {"200": 1}},
        ]


def test_who_sees_which_apis_and_counts():
    from sofiaflow.editor.pages.apis import api_rows

    service = _Service()
    admin = {r["api"]: r for r in api_rows(service, "root", "administrator")}
    assert set(admin) == {"open v1", "draft v1", "other v2"}
    assert (admin["open v1"]["calls"], admin["open v1"]["ok"], admin["open v1"]["refused"]) == (4, 3, 1)
    assert admin["draft v1"]["failed"] == 2
    ana = {r["api"]: r for r in api_rows(service, "ana", "developer")}
    assert set(ana) == {"open v1", "draft v1"}  # bob's development API is not hers to see
    assert ana["open v1"]["calls"] == 4 and ana["open v1"]["url"] == "/api-manager/server/api/v1/open"
    bob = {r["api"]: r for r in api_rows(service, "bob", "developer")}
    assert set(bob) == {"open v1", "other v2"}
    assert bob["open v1"]["calls"] == "–"  # another's API: no counts
    assert bob["other v2"]["calls"] == 1
    user = {r["api"]: r for r in api_rows(service, "carl", "user")}
    assert set(user) == {"open v1"} and user["open v1"]["calls"] == "–"
