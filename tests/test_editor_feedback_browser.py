"""The editor tells a new user what happened: nodes that failed to start, config nodes kept once on import,
status after a reload, the help, info and config nodes sidebars. A real server, a real Chromium, controls
found by role, label or text. The tests run in file order on one page."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest
from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from editor_ui import node
from playwright.sync_api import TimeoutError as PlaywrightTimeout

API_FLOW = [
    {"id": "apitab0000000001", "type": "tab", "label": "orders api"},
    {
        "id": "apiorders0000001",
        "type": "api",
        "name": "orders",
        "version": 1,
        "state": "published",
        "description": "the orders",
    },
    {
        "id": "apiendpoint00001",
        "type": "api-endpoint",
        "z": "apitab0000000001",
        "x": 140,
        "y": 100,
        "name": "apiorders0000001",  # a name that happens to equal the api's id: import must keep it
        "api": "apiorders0000001",
        "method": "GET",
        "path": "/hello",
        "operation": "flow",
        "wires": [["apichange0000001"]],
    },
    {
        "id": "apichange0000001",
        "type": "change",
        "z": "apitab0000000001",
        "x": 360,
        "y": 100,
        "name": "",
        "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "hello", "tot": "str"}],
        "wires": [["apiresponse00001"]],
    },
    {
        "id": "apiresponse00001",
        "type": "http response",
        "z": "apitab0000000001",
        "x": 560,
        "y": 100,
        "name": "",
        "wires": [],
    },
]


@pytest.fixture(scope="module")
def page(editor_server, chromium):  # noqa: F811
    yield from editor_page(chromium, editor_server)


def _import(page, flows: list[dict], new_flow: bool = False) -> None:
    page.get_by_role("button", name="import").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_placeholder("Paste flow JSON here").fill(json.dumps(flows))
    if new_flow:
        dialog.get_by_text("new flow").click()
    dialog.get_by_role("button", name="Import", exact=True).click()
    dialog.wait_for(state="hidden")


def _deploy(page, server=None) -> None:
    """Press Deploy; with `server`, wait until the runtime's flows are the new ones."""
    before = _flows(server) if server is not None else None
    page.get_by_role("button", name=re.compile(r"^(cloud_upload)?\s*Deploy")).first.click()
    if server is not None:
        for _ in range(200):
            if _flows(server) != before:
                return
            page.wait_for_timeout(100)
        raise AssertionError("the deploy did not change the runtime's flows")


def _export_current(page) -> list[dict]:
    page.get_by_role("button", name="export").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("current flow").click()
    page.wait_for_timeout(300)
    text = dialog.locator("textarea").input_value()
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden")
    return json.loads(text)


def _flows(server) -> list[dict]:
    status, body = server.api("GET", "/flows")
    assert status == 200
    return body


def _call(server, key: str) -> tuple[int, str]:
    req = urllib.request.Request(
        f"{server.url}/api-manager/server/api/v1/orders/hello", headers={"X-OP-APIKey": key}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def _wait_answer(page, server, key: str) -> None:
    """The deploy is done when the API answers (bounded)."""
    for _ in range(100):
        if _call(server, key) == (200, "hello"):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"the API does not answer: {_call(server, key)}")


def test_a_node_that_fails_to_start_makes_the_deploy_warn_naming_it(page, editor_server):  # noqa: F811
    server = editor_server
    broken = [
        {
            "id": "brokenendpoint01",
            "type": "api-endpoint",
            "x": 200,
            "y": 200,
            "name": "lost orders",
            "api": "noSuchApiConfig1",
            "method": "GET",
            "path": "/lost",
            "operation": "flow",
            "wires": [[]],
        }
    ]
    _import(page, broken, new_flow=True)
    _deploy(page)
    alert = page.get_by_role("alert").filter(has_text="failed to start")
    alert.wait_for()
    assert "1 node(s) failed to start" in alert.inner_text()
    entry = alert.get_by_role("link", name=re.compile("lost orders"))
    assert "no api config node 'noSuchApiConfig1' is running" in entry.inner_text()
    assert page.get_by_text("Successfully deployed").count() == 0
    page.locator(".sf-canvas").click(position={"x": 700, "y": 600})  # select nothing
    entry.click()
    page.wait_for_selector('.sf-node.sf-selected[data-id="brokenendpoint01"]')

    # the status stays after a reload, before any new status event
    tab = next(n["z"] for n in _flows(server) if n["id"] == "brokenendpoint01")
    page.reload()
    page.locator(f'[data-tab="{tab}"]').click()
    node(page, "brokenendpoint01").locator(".sf-status-text").filter(has_text="start failed").wait_for()

    # the info sidebar on the selected node
    node(page, "brokenendpoint01").click()
    page.get_by_role("tab", name="info").click()
    info = page.get_by_role("table", name="information")
    info.get_by_text("brokenendpoint01").wait_for()
    assert "api-endpoint" in info.inner_text() and "start failed" in info.inner_text()

    # deleting the node and deploying clears the warning
    node(page, "brokenendpoint01").click()
    page.keyboard.press("Delete")
    node(page, "brokenendpoint01").wait_for(state="detached")
    _deploy(page)
    page.get_by_text("Successfully deployed").last.wait_for()
    assert page.get_by_role("alert").filter(has_text="failed to start").count() == 0


def test_export_delete_import_deploy_keeps_one_config_node_and_the_same_url(page, editor_server):  # noqa: F811
    _import(page, API_FLOW, new_flow=True)
    _deploy(page, editor_server)
    page.get_by_text("Successfully deployed").last.wait_for()
    status, made = editor_server.api("POST", "/api-keys", {"label": "editor test"})
    assert status in (200, 201), made
    key = made["key"]
    _wait_answer(page, editor_server, key)
    page.locator('[data-tab="apitab0000000001"]').click()
    exported = _export_current(page)
    assert sorted(n["type"] for n in exported) == sorted(n["type"] for n in API_FLOW)

    for keep_configs in (True, False):
        page.get_by_text("identical config node(s) already here reused").wait_for(state="detached")
        page.locator('[data-tab="apitab0000000001"]').click()
        # the menu is open (by role) before its item is clicked: a click on a redrawn button opens nothing
        menu = page.get_by_role("menu")
        for _ in range(5):
            if not menu.is_visible():
                page.get_by_role("button", name="Flow menu: rename, disable, delete", exact=True).click()
            try:
                menu.wait_for(timeout=5000)
                break
            except PlaywrightTimeout:
                continue
        menu.get_by_role("menuitem", name="Delete", exact=True).click()
        dialog = page.get_by_role("dialog")
        offered = dialog.get_by_role("checkbox", name=re.compile("also delete api 'orders'"))
        offered.wait_for()
        if keep_configs:
            offered.click()  # keep the api config node: the import must reuse it
        dialog.get_by_role("button", name="Delete flow").click()
        dialog.wait_for(state="hidden")
        _deploy(page, editor_server)
        page.get_by_text("Successfully deployed").last.wait_for()
        apis = [n for n in _flows(editor_server) if n.get("type") == "api"]
        assert len(apis) == (1 if keep_configs else 0)

        _import(page, exported)
        if keep_configs:
            page.get_by_text("1 identical config node(s) already here reused").first.wait_for()
        _deploy(page, editor_server)
        page.get_by_text("Successfully deployed").last.wait_for()
        flows = _flows(editor_server)
        assert [n["id"] for n in flows if n.get("type") == "api"] == ["apiorders0000001"]
        endpoint = next(n for n in flows if n.get("type") == "api-endpoint")
        assert endpoint["name"] == "apiorders0000001" and endpoint["api"] == "apiorders0000001"
        _wait_answer(page, editor_server, key)
        page.wait_for_timeout(300)
        assert page.get_by_role("alert").filter(has_text="failed to start").count() == 0


def test_the_config_nodes_sidebar_lists_users_and_deletes_unused_ones(page):
    page.get_by_role("tab", name="config nodes").click()
    orders = page.get_by_role("group", name="api 'orders'")
    orders.get_by_text("1 user").wait_for()
    page.locator(".sf-canvas").click(position={"x": 700, "y": 600})
    orders.get_by_role("link", name="api-endpoint 'apiorders0000001'").click()
    page.wait_for_selector('.sf-node.sf-selected[data-id="apiendpoint00001"]')

    orders.get_by_role("link", name="api 'orders'").click()
    form = page.get_by_role("dialog").filter(has_text="Edit api node")
    form.wait_for()
    form.get_by_role("button", name="Cancel").click()
    form.wait_for(state="hidden")

    _import(page, [{"id": "spareapi00000001", "type": "api", "name": "spare", "version": 2}])
    spare = page.get_by_role("group", name="api 'spare'")
    spare.get_by_text("unused").wait_for()
    spare.get_by_role("button", name="delete api 'spare'").click()
    spare.wait_for(state="detached")


def test_a_successful_deploy_clears_the_highlight(page):
    flow = [
        {
            "id": "hlinject0000001",
            "type": "inject",
            "x": 120,
            "y": 300,
            "name": "press",
            "props": [{"p": "payload"}],
            "payload": "hi",
            "payloadType": "str",
            "wires": [["hldebug00000001"]],
        },
        {
            "id": "hldebug00000001",
            "type": "debug",
            "x": 360,
            "y": 300,
            "name": "seen here",
            "active": True,
            "tosidebar": True,
            "complete": "payload",
            "targetType": "msg",
            "wires": [],
        },
    ]
    _import(page, flow, new_flow=True)
    _deploy(page)
    page.get_by_text("Successfully deployed").last.wait_for()
    page.get_by_role("tab", name="debug").click()
    node(page, "hlinject0000001").locator('[data-role="button"]').click()
    page.get_by_role("button", name="Show node seen here").first.click()
    page.wait_for_selector('.sf-node.sf-highlight[data-id="hldebug00000001"]')
    _deploy(page)
    page.get_by_text("Successfully deployed").last.wait_for()
    page.wait_for_selector(".sf-node.sf-highlight", state="detached")


def test_the_help_sidebar_documents_the_python_function(page):
    page.get_by_role("tab", name="help").click()
    page.get_by_label("Search node types").fill("python")
    page.get_by_role("listitem").filter(has_text="python function").first.click()
    doc = page.locator(".sf-help")
    doc.get_by_role("heading", name="python function").wait_for()
    text = doc.inner_text()
    assert "msg is a Python dict" in text
    assert 'msg["payload"]' in text and "return msg" in text
    assert "Properties" in text
