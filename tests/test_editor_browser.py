"""The editor in a real Chromium against one real `sofiaflow run` (one server, one browser for the module).

Login and the admin API beside the editor; the main scenario (drag inject, change and debug from the
palette, wire them, edit the change rule, deploy, inject, see the changed message, then export, clear,
import and get the same flow back; with SOFIAFLOW_SCREENSHOTS=1 it also writes docs/screenshots/editor.png); canvas and form
behaviour; a Node-RED export drawn at its own x/y; and a tab of 500 nodes opened and dragged, with
the timings printed (run with -s: click-to-painted time, pointer-move handler times recorded by
canvas.js, frame intervals seen by requestAnimationFrame). The tests run in file order on one page.
"""

from __future__ import annotations

import json
import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from editor_ui import (
    BIG,
    big_flow,
    canvas_box,
    center,
    drag_from_palette,
    drag_timed,
    export_all,
    field,
    fill,
    import_text,
    node,
    node_ids,
    report_drag,
    screenshot_path,
    wire,
)

EXPORT = Path(__file__).parent / "fixtures" / "nodered" / "nodered-export.json"


@pytest.fixture(scope="module")
def page(editor_server, chromium):  # noqa: F811
    yield from editor_page(chromium, editor_server)


# ----- login, and the admin API beside the editor ----------------------------------------


def _get(url: str) -> tuple[int, str, str]:
    """(status, final URL, body) without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as resp:
            return resp.status, resp.headers.get("Location", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location", ""), err.read().decode()


def test_pages_without_a_login_redirect_to_the_login_page(editor_server):  # noqa: F811
    status, location, _ = _get(editor_server.url + "/editor/")
    assert status in (302, 303, 307) and location.startswith("/editor/login?redirect_to=")
    assert location.endswith("redirect_to=/editor/")
    status, location, _ = _get(editor_server.url + "/editor")
    assert status in (302, 307) and location == "/editor/"


def test_the_admin_api_and_the_flows_own_404_still_answer(editor_server):  # noqa: F811
    status, _, body = _get(editor_server.url + "/auth/login")
    assert status == 200 and "type" in json.loads(body)
    assert editor_server.api("GET", "/flows")[0] == 200
    assert editor_server.api("GET", "/nodes")[0] == 200
    status, _, body = _get(editor_server.url + "/no-such-thing")
    assert status == 404 and "no-such-thing" in body


def test_wrong_password_is_refused_then_login_and_logout(editor_server, chromium):  # noqa: F811
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(10000)
    page.goto(editor_server.url + "/editor/")
    page.wait_for_url("**/editor/login**")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    page.get_by_test_id("login-error").filter(has_text="invalid username or password").wait_for()

    page.get_by_label("Password").fill(editor_server.password)
    page.get_by_label("Password").press("Enter")
    page.wait_for_selector(".sf-canvas")
    assert page.url.rstrip("/").endswith("/editor")

    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("logout").click()
    page.wait_for_url("**/editor/login**")
    page.goto(editor_server.url + "/editor/")
    page.wait_for_url("**/editor/login**")
    context.close()


def test_the_login_page_redirects_only_within_the_site(editor_server, chromium):  # noqa: F811
    context = chromium.new_context()
    page = context.new_page()
    page.set_default_timeout(10000)
    page.goto(editor_server.url + "/editor/login?redirect_to=//example.invalid/x")
    page.get_by_label("Password").fill(editor_server.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_selector(".sf-canvas")
    assert page.url.startswith(editor_server.url + "/editor")
    context.close()


# ----- the main scenario ------------------------------------------------------------


def _empty_spot(page) -> tuple[float, float]:
    box = page.locator(".sf-canvas").bounding_box()
    return box["x"] + box["width"] - 150, box["y"] + box["height"] - 150


def _without_positions(flows: list[dict]) -> dict[str, dict]:
    return {n["id"]: n for n in flows}


def test_build_deploy_inject_and_see_the_changed_message(page, editor_server, tmp_path):  # noqa: F811
    inject = drag_from_palette(page, "inject", 120, 120)
    change = drag_from_palette(page, "change", 320, 200)
    debug = drag_from_palette(page, "debug", 540, 120)
    wire(page, inject, change)
    wire(page, change, debug)

    node(page, change).dblclick()
    form = page.get_by_test_id("properties")
    form.wait_for()
    fill(page, "prop-rules-0-to", "changed by the rule")
    page.get_by_test_id("properties-done").click()
    form.wait_for(state="hidden")

    assert page.locator(".sf-node.sf-changed").count() == 3, "new nodes are marked as changed"
    page.get_by_test_id("deploy").filter(has_text="· 3").wait_for()
    page.get_by_test_id("deploy").click()
    page.get_by_text("Successfully deployed").wait_for()
    page.wait_for_function("document.querySelectorAll('.sf-node.sf-changed').length === 0")
    status, flows = editor_server.api("GET", "/flows")
    assert status == 200
    deployed = _without_positions(flows)
    assert deployed[inject]["wires"] == [[change]] and deployed[change]["wires"] == [[debug]]
    assert deployed[change]["rules"][0]["to"] == "changed by the rule"
    assert deployed[change]["rules"][0]["tot"] == "str"

    node(page, inject).locator('[data-role="button"]').click()
    message = page.get_by_test_id("debug-message").filter(has_text="changed by the rule")
    message.wait_for()
    assert "msg.payload" in message.inner_text() or "payload" in message.inner_text()
    page.mouse.click(*_empty_spot(page))  # nothing selected
    hide = page.add_style_tag(content=".q-notifications { display: none !important; }")
    page.screenshot(path=str(screenshot_path("editor.png", tmp_path)))
    hide.evaluate("e => e.remove()")


def test_export_clear_import_gives_the_same_flow_back(page):
    exported = export_all(page)
    assert {n["type"] for n in exported} >= {"tab", "inject", "change", "debug"}

    page.locator(".sf-canvas").click(position={"x": 700, "y": 500})
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.wait_for_function("document.querySelectorAll('.sf-canvas .sf-node').length === 0")
    assert node_ids(page) == []

    import_text(page, json.dumps([n for n in exported if n["type"] != "tab"]))
    page.wait_for_function("document.querySelectorAll('.sf-canvas .sf-node').length === 3")
    assert export_all(page) == exported


# ----- canvas and forms -------------------------------------------------------------


def _count(page, n: int) -> None:
    page.wait_for_function(f"document.querySelectorAll('.sf-canvas .sf-node').length === {n}")


def _band(page, x0: float, y0: float, x1: float, y1: float) -> None:
    box = canvas_box(page)
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    page.mouse.move(box["x"] + (x0 + x1) / 2, box["y"] + (y0 + y1) / 2)
    page.mouse.move(box["x"] + x1, box["y"] + y1)
    page.mouse.up()


def test_rubber_band_copy_paste_undo_redo_and_delete(page):
    page.get_by_test_id("tab-add").click()  # a tab of its own
    _count(page, 0)
    first = drag_from_palette(page, "inject", 100, 100)
    second = drag_from_palette(page, "debug", 300, 100)
    drag_from_palette(page, "debug", 300, 400)
    _count(page, 3)
    _band(page, 20, 60, 420, 160)
    page.wait_for_function("document.querySelectorAll('.sf-node.sf-selected').length === 2")
    assert set(page.eval_on_selector_all(".sf-node.sf-selected", "els => els.map(e => e.dataset.id)")) == {
        first,
        second,
    }

    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    _count(page, 5)
    page.keyboard.press("Control+z")
    _count(page, 3)
    page.keyboard.press("Control+y")
    _count(page, 5)
    page.get_by_test_id("undo").click()
    _count(page, 3)

    _band(page, 20, 60, 420, 160)
    page.keyboard.press("Delete")
    _count(page, 1)
    page.keyboard.press("Control+z")
    _count(page, 3)
    assert set(node_ids(page)) >= {first, second}


def test_moving_a_node_saves_its_position_and_a_selected_wire_can_be_deleted(page):
    ids = node_ids(page)
    inject = next(i for i in ids if node(page, i).get_attribute("data-type") == "inject")
    debug = next(i for i in ids if node(page, i).get_attribute("data-type") == "debug")
    x0, y0 = int(node(page, inject).get_attribute("data-x")), int(node(page, inject).get_attribute("data-y"))
    x, y = center(node(page, inject))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 20, y + 50, steps=5)
    page.mouse.up()
    page.wait_for_function(
        f"document.querySelector('.sf-node[data-id=\"{inject}\"]').dataset.y === '{y0 + 50}'"
    )
    assert node(page, inject).get_attribute("data-x") == str(x0 + 20)

    wire(page, inject, debug)
    path = page.locator(f'[data-wire="{inject}:0:{debug}"]')
    # click the middle of the wire's curve
    box = path.bounding_box()
    point = page.evaluate(
        """(key) => {
        const p = document.querySelector(`[data-wire="${key}"]`);
        const m = p.getPointAtLength(p.getTotalLength() / 2);
        const r = p.ownerSVGElement.getBoundingClientRect();
        return {x: r.left + m.x, y: r.top + m.y};
    }""",
        f"{inject}:0:{debug}",
    )
    assert box is not None
    page.mouse.click(point["x"], point["y"])
    page.wait_for_selector(".sf-wire.sf-selected")
    page.keyboard.press("Delete")
    path.wait_for(state="detached")


def test_tabs_add_rename_disable_and_delete(page):
    tabs_before = page.locator('[data-testid="tab"]').count()
    page.get_by_test_id("tab-add").click()
    page.wait_for_function(f"document.querySelectorAll('[data-testid=\"tab\"]').length === {tabs_before + 1}")
    _count(page, 0)
    page.get_by_test_id("tab-menu").click()
    page.get_by_test_id("tab-rename").click()
    fill(page, "tab-name", "Renamed flow")
    page.get_by_test_id("tab-name-done").click()
    tab = page.locator('[data-testid="tab"]', has_text="Renamed flow")
    tab.wait_for()
    page.get_by_test_id("tab-menu").click()
    page.get_by_test_id("tab-disable").click()
    page.locator(".sf-tab-disabled", has_text="Renamed flow").wait_for()
    page.get_by_test_id("tab-menu").click()
    page.get_by_test_id("tab-delete").click()
    tab.wait_for(state="detached")
    assert page.locator('[data-testid="tab"]').count() == tabs_before


def test_invalid_values_are_shown_on_their_field_and_not_saved(page):
    inject = drag_from_palette(page, "inject", 500, 300)
    node(page, inject).dblclick()
    form = page.get_by_test_id("properties")
    form.wait_for()
    fill(page, "prop-repeat", "every minute")
    page.get_by_test_id("prop-props-0-v-type").click()
    page.get_by_role("option", name="{}", exact=True).click()
    fill(page, "prop-props-0-v", "{not json")
    page.get_by_test_id("properties-done").click()
    field(page, "prop-repeat").filter(has_text="is not a number").wait_for()
    field(page, "prop-props-0-v").filter(has_text="invalid JSON").wait_for()
    assert form.is_visible()

    fill(page, "prop-repeat", "5")
    fill(page, "prop-props-0-v", '{"a": 1}')
    page.get_by_test_id("properties-done").click()
    form.wait_for(state="hidden")
    page.get_by_test_id("export").click()
    dialog = page.get_by_test_id("export-dialog")
    dialog.get_by_text("all flows").click()
    page.wait_for_timeout(200)
    saved = {n["id"]: n for n in json.loads(dialog.locator("textarea").input_value())}[inject]
    dialog.get_by_role("button", name="Close").click()
    assert saved["repeat"] == 5 and saved["payload"] == '{"a": 1}' and saved["payloadType"] == "json"


def test_python_function_code_is_edited_in_a_python_code_editor(page):
    func = drag_from_palette(page, "python function", 600, 420)
    node(page, func).dblclick()
    editor = page.get_by_test_id("prop-func")
    editor.locator(".cm-editor").wait_for()
    assert editor.locator(".cm-content").get_attribute("data-language") in ("python", None)
    page.get_by_role("button", name="Cancel").click()


def test_the_palette_lists_every_registered_type_and_filters(page, editor_server):  # noqa: F811
    status, sets = editor_server.api("GET", "/nodes")
    assert status == 200
    registered = {  # a node set's `palette` holds each of its types' palette entry
        t
        for s in sets
        for t, entry in s["palette"].items()
        if not entry["config"] and entry["category"] not in ("config", "internal")
    }
    shown = set(page.eval_on_selector_all(".sf-palette-node", "els => els.map(e => e.dataset.type)"))
    assert shown == registered
    search = page.get_by_test_id("palette-search")
    search.fill("mqtt out")
    page.wait_for_function(
        f"[...document.querySelectorAll('.sf-palette-node')]"
        f".filter(e => e.offsetParent !== null).length < {len(shown) // 2}"
    )
    visible = page.eval_on_selector_all(
        ".sf-palette-node", "els => els.filter(e => e.offsetParent !== null).map(e => e.dataset.type)"
    )
    assert "mqtt out" in visible and "inject" not in visible
    search.fill("")


def test_a_config_node_is_created_in_place_from_the_form(page):
    mqtt = drag_from_palette(page, "mqtt in", 150, 480)
    node(page, mqtt).dblclick()
    page.get_by_test_id("properties").wait_for()
    page.get_by_test_id("prop-broker").click()
    page.get_by_role("option", name="add new mqtt-broker...").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 2")
    page.get_by_test_id("properties").last.get_by_test_id("prop-name").fill(
        "local broker"
    )  # the new config node
    page.get_by_test_id("properties-done").last.click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 1")
    page.get_by_test_id("properties-done").click()
    page.get_by_test_id("properties").wait_for(state="hidden")
    flows = {n["id"]: n for n in export_all(page)}
    broker = flows[flows[mqtt]["broker"]]
    assert broker["type"] == "mqtt-broker" and broker["name"] == "local broker" and "x" not in broker
    # undo both saves, the new config node and the drop: nothing of this is left to deploy
    for _ in range(4):
        page.get_by_test_id("undo").click()
    node(page, mqtt).wait_for(state="detached")
    assert broker["id"] not in {n["id"] for n in export_all(page)}


def test_status_badges_and_wire_activity_come_from_the_running_flow(page, editor_server):  # noqa: F811
    flow = [
        {
            "id": "statusinject0001",
            "type": "inject",
            "x": 120,
            "y": 300,
            "name": "go",
            "props": [{"p": "payload"}],
            "payload": "hello",
            "payloadType": "str",
            "wires": [["statusdebug00001"]],
        },
        {
            "id": "statusdebug00001",
            "type": "debug",
            "x": 360,
            "y": 300,
            "name": "shows status",
            "active": True,
            "tosidebar": True,
            "tostatus": True,
            "complete": "payload",
            "targetType": "msg",
            "statusVal": "payload",
            "statusType": "auto",
            "wires": [],
        },
    ]
    import_text(page, json.dumps(flow), new_tab=True)
    page.get_by_test_id("deploy-mode").click()
    page.get_by_test_id("deploy-mode-nodes").click()
    page.get_by_test_id("deploy").filter(has_text="Modified Nodes").wait_for()
    page.get_by_test_id("deploy").click()
    page.get_by_text("Successfully deployed").last.wait_for()
    node(page, "statusinject0001").locator('[data-role="button"]').click()
    node(page, "statusdebug00001").locator(".sf-status-text").filter(has_text="hello").wait_for()
    page.wait_for_selector(
        '.sf-wire.sf-active[data-wire="statusinject0001:0:statusdebug00001"]', state="attached"
    )

    # the debug sidebar: the message, then clear, then a filter on the selected nodes
    messages = page.get_by_test_id("debug-message")
    messages.filter(has_text="hello").first.wait_for()
    page.get_by_test_id("debug-clear").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"debug-message\"]').length === 0")
    page.get_by_test_id("debug-filter").click()
    page.get_by_role("option", name="selected nodes").click()
    page.locator(".sf-canvas").click(position={"x": 700, "y": 600})  # select nothing
    node(page, "statusinject0001").locator('[data-role="button"]').click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"debug-message\"]').length === 1")
    assert not messages.first.is_visible(), "filtered out: its debug node is not selected"
    page.get_by_test_id("debug-filter").click()
    page.get_by_role("option", name="all nodes").click()
    messages.first.wait_for()


def test_import_by_upload_and_export_to_a_file(page, tmp_path):
    flow = [
        {"id": "uploadedcomment1", "type": "comment", "name": "from a file", "x": 200, "y": 60, "wires": []}
    ]
    upload = tmp_path / "flow.json"
    upload.write_text(json.dumps(flow))
    page.get_by_test_id("import").click()
    dialog = page.get_by_test_id("import-dialog")
    dialog.locator("input[type=file]").set_input_files(str(upload))
    page.wait_for_function(
        "document.querySelector('[data-testid=\"import-dialog\"] textarea').value.length > 0"
    )
    dialog.get_by_text("new flow").click()
    dialog.get_by_test_id("import-confirm").click()
    node(page, "uploadedcomment1").wait_for()

    page.get_by_test_id("export").click()
    export = page.get_by_test_id("export-dialog")
    export.get_by_text("current flow").click()
    with page.expect_download() as download:
        export.get_by_role("button", name="Download").click()
    saved = json.loads(Path(download.value.path()).read_text())
    export.get_by_role("button", name="Close").click()
    assert [n for n in saved if n["type"] != "tab"] == [dict(flow[0], z=saved[0]["id"])]
    assert saved[0]["type"] == "tab"


def test_ontology_fields_offer_the_runtime_s_ontologies(page, editor_server):  # noqa: F811
    status, ontologies = editor_server.api("GET", "/ontologies")
    assert status == 200
    names = {
        o["name"] for o in (ontologies if isinstance(ontologies, list) else ontologies.get("ontologies", []))
    }
    assert names, "the bundled ontologies are loaded"
    insert = drag_from_palette(page, "ontology-insert", 650, 500)
    node(page, insert).dblclick()
    page.get_by_test_id("prop-ontology").click()
    page.get_by_role("option").first.wait_for()
    offered = set(page.get_by_role("option").all_inner_texts())
    assert names <= offered
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_test_id("undo").click()
    node(page, insert).wait_for(state="detached")


def test_deploy_problems_link_to_their_node(page):
    bad = {
        "id": "badrepeat00000001",
        "type": "inject",
        "x": 200,
        "y": 500,
        "name": "bad repeat",
        "repeat": "soon",
        "props": [{"p": "payload"}],
        "payload": "",
        "payloadType": "date",
        "wires": [[]],
    }
    import_text(page, json.dumps([bad]))
    page.get_by_test_id("deploy").click()
    problems = page.get_by_test_id("deploy-problems")
    problems.wait_for()
    assert "repeat" in problems.inner_text()
    problems.get_by_text("bad repeat").click()
    page.wait_for_selector('.sf-node.sf-highlight[data-id="badrepeat00000001"]')
    assert "sf-invalid" in node(page, "badrepeat00000001").get_attribute("class")


# ----- a Node-RED export ------------------------------------------------------------

# Each drawn node's anchor in canvas pixels (pan 0, zoom 1 on a freshly opened tab): the centre, or
# the top-left corner for groups, exactly as Node-RED reads x and y.
_POSITIONS_JS = """() => {
  const canvas = document.querySelector('.sf-canvas').getBoundingClientRect();
  return [...document.querySelectorAll('.sf-canvas .sf-node')].map(e => {
    const r = e.getBoundingClientRect();
    const group = e.classList.contains('sf-group');
    return {id: e.dataset.id, x: (group ? r.left : r.left + r.width / 2) - canvas.left,
            y: (group ? r.top : r.top + r.height / 2) - canvas.top};
  });
}"""


def test_every_node_of_a_nodered_export_is_drawn_at_its_x_y(page):
    flows = json.loads(EXPORT.read_text())
    import_text(page, EXPORT.read_text())
    containers = [n for n in flows if n["type"] in ("tab", "subflow")]
    placed = {n["id"]: n for n in flows if "x" in n and "y" in n}
    seen: set[str] = set()
    for container in containers:
        page.locator(f'[data-tab="{container["id"]}"]').click()
        expected = {i for i, n in placed.items() if n.get("z") == container["id"]}
        page.wait_for_function(f"document.querySelectorAll('.sf-canvas .sf-node').length === {len(expected)}")
        drawn = {p["id"]: p for p in page.evaluate(_POSITIONS_JS)}
        assert set(drawn) == expected, container["id"]
        for node_id in expected:
            node = placed[node_id]
            assert abs(drawn[node_id]["x"] - node["x"]) <= 1 and abs(drawn[node_id]["y"] - node["y"]) <= 1, (
                node["type"],
                node_id,
                drawn[node_id],
                node["x"],
                node["y"],
            )
        seen |= expected
    assert seen == set(placed), "every node with x/y sits on a tab or subflow"

    # nothing was renamed or lost on the way in
    exported = {n["id"]: n for n in export_all(page)}
    for node in flows:
        assert node["id"] in exported
        assert exported[node["id"]].get("wires") == node.get("wires")
        assert (exported[node["id"]].get("x"), exported[node["id"]].get("y")) == (
            node.get("x"),
            node.get("y"),
        )


# ----- 500 nodes on a tab (run with -s for the numbers) -----------------------------------


def test_opening_a_tab_of_500_nodes_is_quick(page, editor_server):  # noqa: F811
    status, body = editor_server.api("POST", "/flows", big_flow())
    assert status in (200, 204), body
    page.reload()
    page.wait_for_selector(".sf-canvas")
    started = time.perf_counter()
    page.locator('[data-tab="bigtab"]').click()
    page.wait_for_function(f"document.querySelectorAll('.sf-canvas .sf-node').length === {BIG}")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    elapsed = time.perf_counter() - started
    wires = page.locator(".sf-wire").count()
    print(f"\nopen tab with {BIG} nodes, {wires} wires: {elapsed * 1000:.0f} ms (click to drawn and painted)")
    assert wires == BIG // 2
    assert elapsed < 10, "opening a 500-node tab took far too long"


def test_dragging_one_node_among_500_stays_smooth(page):
    page.locator(".sf-canvas").click(position={"x": 5, "y": 5})
    stats = drag_timed(page, "n1")
    report_drag(f"drag 1 node on a tab of {BIG}", stats)
    assert len(stats["handlers"]) >= 30
    assert statistics.median(stats["frames"]) < 100
    page.wait_for_function("document.querySelector('.sf-node[data-id=\"n1\"]').dataset.x === '260'")


def test_dragging_500_selected_nodes_stays_smooth(page):
    page.locator(".sf-canvas").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+a")
    stats = drag_timed(page, "n0")
    report_drag(f"drag all {BIG} nodes", stats)
    assert len(stats["handlers"]) >= 30
    assert statistics.median(stats["frames"]) < 100
    # the drop was saved as one move of every node
    page.wait_for_function("document.querySelector('.sf-node[data-id=\"n0\"]').dataset.x === '260'")
    page.wait_for_function("document.querySelector('.sf-node[data-id=\"n1\"]').dataset.x === '440'")


def test_credentials_are_typed_in_the_form_and_go_with_the_deploy_only(page, editor_server):  # noqa: F811
    mqtt = drag_from_palette(page, "mqtt in", 150, 560)
    node(page, mqtt).dblclick()
    page.get_by_test_id("properties").wait_for()
    page.get_by_test_id("prop-broker").click()
    page.get_by_role("option", name="add new mqtt-broker...").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 2")
    broker_form = page.get_by_test_id("properties").last
    broker_form.get_by_test_id("prop-name").fill("with login")
    broker_form.get_by_test_id("prop-broker").fill("127.0.0.1")
    broker_form.get_by_test_id("cred-user").fill("device-7")
    broker_form.get_by_test_id("cred-password").fill("s3cret-pw")
    page.get_by_test_id("properties-done").last.click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 1")
    page.get_by_test_id("prop-topic").fill("sensors/#")
    page.get_by_test_id("properties-done").click()
    page.get_by_test_id("properties").wait_for(state="hidden")
    exported = export_all(page)
    assert not any("credentials" in n for n in exported) and "s3cret-pw" not in json.dumps(exported)
    broker_id = {n["id"]: n for n in exported}[mqtt]["broker"]

    page.get_by_test_id("deploy").click()
    page.get_by_text("Successfully deployed").or_(page.get_by_test_id("deploy-problems")).last.wait_for()
    assert not page.get_by_test_id("deploy-problems").count(), page.get_by_test_id(
        "deploy-problems"
    ).inner_text()
    status, view = editor_server.api("GET", f"/credentials/mqtt-broker/{broker_id}")
    assert status == 200 and view == {"user": "device-7", "has_password": True}
    status, flows = editor_server.api("GET", "/flows")
    assert "s3cret-pw" not in json.dumps(flows) and not any("credentials" in n for n in flows)

    # reopened: the user is shown, the password is not, and leaving it empty keeps it
    node(page, mqtt).dblclick()
    page.get_by_test_id("properties").wait_for()
    page.get_by_test_id("properties").locator("button").filter(
        has=page.locator("i", has_text="edit")
    ).first.click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 2")
    broker_form = page.get_by_test_id("properties").last
    assert broker_form.get_by_test_id("cred-user").input_value() == "device-7"
    assert broker_form.get_by_test_id("cred-password").input_value() == ""
    assert "s3cret-pw" not in page.content()
    page.get_by_test_id("properties-done").last.click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 1")
    page.get_by_test_id("properties-done").click()
    assert editor_server.api("GET", f"/credentials/mqtt-broker/{broker_id}")[1]["has_password"] is True


def test_the_import_dialog_reports_what_will_not_run_before_importing(page):
    flow = [
        {"id": "rpt1", "type": "inject", "x": 100, "y": 100, "wires": [["rpt2"]]},
        {
            "id": "rpt2",
            "type": "function",
            "x": 300,
            "y": 100,
            "func": "return msg;",
            "outputs": 1,
            "libs": [{"var": "fs", "module": "fs"}],
            "wires": [["rpt3"]],
        },
        {"id": "rpt3", "type": "ui_button", "x": 500, "y": 100, "name": "dashboard button", "wires": [[]]},
    ]
    page.get_by_test_id("import").click()
    dialog = page.get_by_test_id("import-dialog")
    dialog.locator("textarea").fill(json.dumps(flow))
    dialog.get_by_test_id("report-cannot-run").filter(has_text="2 cannot run").wait_for()
    assert "1 runs" in dialog.get_by_test_id("report-runs").inner_text()
    entries = dialog.get_by_test_id("report-entry").all_inner_texts()
    assert any("ui_button dashboard button" in e and "not installed" in e for e in entries), entries
    assert any("function rpt2" in e and "libs" in e for e in entries), entries
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="hidden")
    assert "rpt1" not in {n["id"] for n in export_all(page)}  # nothing imported
