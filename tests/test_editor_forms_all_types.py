"""Every registered node type's edit form in a real Chromium against one real `sofiaflow run`.

One node of each type is imported (config nodes too, each used by a node that references it); each form is
opened by double-click (config nodes from the edit button beside the field that references them), and: every
visible control has an accessible name, no field asks for raw JSON unless its value is JSON data, and where the
form has a number field, a value that is not a number is refused on Done with the error on that field. Then:
mqtt in's qos stored as "high" is refused on Done on the qos field and by the deploy (naming node and
property); the mqtt-broker's "This platform's broker" hides server, port and TLS; a long code line does not
scroll the panel sideways. With SOFIAFLOW_SCREENSHOTS=1 key forms go to docs/screenshots/forms/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from editor_ui import export_all, import_text, node

from sofiaflow.editor.properties.schema import FieldSpec, form_fields
from sofiaflow.runtime.flows.registry import default_registry

REGISTRY = default_registry()
CLASSES = sorted(REGISTRY.types(), key=lambda c: c.type)
FLOW_TYPES = [c.type for c in CLASSES if not c.is_config_node and c.category != "internal"]
CONFIG_TYPES = [c.type for c in CLASSES if c.is_config_node]
SHOTS = {"mqtt in", "mqtt-broker", "python function", "api-endpoint", "change", "switch", "ontology-insert"}
COUNT = len(FLOW_TYPES) + len(CONFIG_TYPES)

UNNAMED = """els => els.filter(e => e.offsetParent !== null).filter(e => {
    const by = e.getAttribute('aria-labelledby');
    const name = e.getAttribute('aria-label')
        || (e.getAttribute('role') === 'checkbox' ? e.innerText : '')
        || (e.classList.contains('cm-content') ? e.closest('[role=group][aria-label]')?.getAttribute('aria-label') : '')
        || (by && by.split(' ').map(i => document.getElementById(i)?.innerText || '').join(' '))
        || e.closest('label')?.innerText
        || (e.id && document.querySelector(`label[for="${e.id}"]`)?.innerText) || '';
    return !name.trim();
}).map(e => e.outerHTML.slice(0, 160))"""
CONTROLS = "input:not([type=hidden]), textarea, [role=checkbox], [role=combobox], .cm-content"


def specs(node_type: str) -> list[FieldSpec]:
    cls = REGISTRY.find(node_type)
    return form_fields(node_type, cls.Config.model_json_schema())


def _referrers() -> dict[str, tuple[str, str]]:
    """config type -> (type that references it, field): flow node types first, then other config types."""
    out: dict[str, tuple[str, str]] = {}
    for kind in FLOW_TYPES + CONFIG_TYPES:
        for spec in specs(kind):
            if spec.widget == "config" and spec.config_type in CONFIG_TYPES:
                out.setdefault(spec.config_type, (kind, spec.key))
    return out


REFERRERS = _referrers()


def _flow() -> list[dict]:
    flow: list[dict] = [{"id": "formtab", "type": "tab", "label": "forms"}]
    for i, kind in enumerate(CONFIG_TYPES):
        flow.append({"id": f"cfg{i}", "type": kind, "name": f"{kind} one"})
    config_ids = {kind: f"cfg{i}" for i, kind in enumerate(CONFIG_TYPES)}
    for i, kind in enumerate(FLOW_TYPES):
        col, row = divmod(i, 15)
        item = {"id": f"fn{i}", "type": kind, "z": "formtab", "x": 100 + col * 165, "y": 40 + row * 48}
        item["wires"] = [[]] * max(REGISTRY.find(kind).outputs, 0)
        flow.append(item)
    for item in flow:  # each reference filled, so a config node's form opens from its edit button
        for spec in specs(item["type"]) if item["type"] != "tab" else []:
            if spec.widget == "config" and spec.config_type in config_ids:
                item[spec.key] = config_ids[spec.config_type]
    return flow


FLOW = _flow()
ID_OF = {n["type"]: n["id"] for n in FLOW if n.get("type") != "tab"}


@pytest.fixture(scope="module")
def page(editor_server, chromium):  # noqa: F811
    for p in editor_page(chromium, editor_server, width=1500, height=900):
        import_text(p, json.dumps(FLOW), new_tab=True)
        node(p, ID_OF[FLOW_TYPES[0]]).wait_for()
        yield p


def forms(page):
    return page.get_by_test_id("properties")


def open_form(page, kind: str):
    """Open `kind`'s form (a config type through the chain of forms referencing it); the topmost form."""
    if kind in REFERRERS and kind in CONFIG_TYPES:
        owner, key = REFERRERS[kind]
        top = open_form(page, owner)
        before = forms(page).count()
        top.get_by_test_id(f"prop-{key}-edit").click()
        page.wait_for_function(f"document.querySelectorAll('[data-testid=\"properties\"]').length > {before}")
        return forms(page).last
    node(page, ID_OF[kind]).dblclick()
    forms(page).first.wait_for()
    return forms(page).last


def close_all(page) -> None:
    """Cancel every open form, topmost first, then wait once for all to be gone."""
    for index in reversed(range(forms(page).count())):
        forms(page).nth(index).get_by_role("button", name="Cancel").click()
    page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 0")


def shot(page, form, name: str, tmp_path: Path) -> None:
    if os.environ.get("SOFIAFLOW_SCREENSHOTS") != "1":
        return
    folder = Path(__file__).resolve().parents[1] / "docs" / "screenshots" / "forms"
    folder.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(300)
    form.screenshot(path=str(folder / f"{name.replace(' ', '-')}.png"))


def test_the_walk_covers_every_registered_type():
    assert set(FLOW_TYPES) | set(CONFIG_TYPES) == {c.type for c in CLASSES if c.category != "internal"}
    unreachable = [k for k in CONFIG_TYPES if k not in REFERRERS]
    assert not unreachable, f"config types no field references: {unreachable}"


@pytest.mark.parametrize("kind", FLOW_TYPES + CONFIG_TYPES)
def test_every_form_opens_with_labelled_fields_and_refuses_bad_numbers(page, kind, tmp_path):
    form = open_form(page, kind)
    try:
        form.get_by_test_id("prop-name").wait_for()
        unnamed = form.locator(CONTROLS).evaluate_all(UNNAMED)
        assert not unnamed, f"{kind}: controls without an accessible name: {unnamed}"
        for spec in specs(kind):
            if spec.widget == "json":
                assert isinstance(spec.default, (dict, list)), (kind, spec.key)
        if kind in SHOTS:
            shot(page, form, kind, tmp_path)
        numbers = [s for s in specs(kind) if s.widget in ("number", "integer") and not s.show_if]
        if numbers:
            spec = numbers[0]
            box = form.get_by_test_id(f"prop-{spec.key}")
            box.fill("twelve")
            form.get_by_test_id("properties-done").click()
            field = form.locator("label.q-field", has=page.get_by_test_id(f"prop-{spec.key}"))
            field.filter(has_text="is not a").wait_for()
            assert "q-field--error" in (field.get_attribute("class") or "")
            assert form.is_visible()
    finally:
        close_all(page)


def test_mqtt_in_qos_high_is_refused_on_done_and_by_the_deploy(page, editor_server):  # noqa: F811
    bad = {"id": "badqos", "type": "mqtt in", "z": "formtab", "x": 900, "y": 700, "topic": "t", "qos": "high"}
    bad["name"] = "bad qos"
    bad["broker"] = ID_OF["mqtt-broker"]
    bad["wires"] = [[]]
    import_text(page, json.dumps([bad]))
    node(page, "badqos").wait_for()
    page.get_by_test_id("deploy").click()
    problems = page.get_by_test_id("deploy-problems")
    problems.filter(has_text="bad qos · qos").wait_for()
    assert "'high'" in problems.inner_text() and "0, 1 or 2" in problems.inner_text()
    problems.get_by_role("button", name="Close").click()
    problems.wait_for(state="hidden")
    node(page, "badqos").dblclick()
    form = forms(page).last
    qos = form.locator("label.q-field", has=page.get_by_test_id("prop-qos"))
    assert "high" in qos.inner_text()
    form.get_by_test_id("properties-done").click()
    qos.filter(has_text="not one of").wait_for()
    qos.click()
    page.get_by_role("option", name="1 - at least once").click()
    form.get_by_test_id("properties-done").click()
    form.wait_for(state="hidden")
    saved = {n["id"]: n for n in export_all(page)}["badqos"]
    assert saved["qos"] == "1"  # a string as Node-RED stores it


def test_the_platform_broker_checkbox_hides_server_port_and_tls(page):
    form = open_form(page, "mqtt-broker")
    try:
        server = form.get_by_test_id("prop-broker")
        server.wait_for()
        form.get_by_role("checkbox", name="This platform's broker").click()
        server.wait_for(state="hidden")
        assert not form.get_by_test_id("prop-port").is_visible()
        assert not form.get_by_role("checkbox", name="Use TLS").is_visible()
        form.get_by_role("checkbox", name="Retain the will message").wait_for()
        form.get_by_test_id("properties-done").click()
        page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 1")
        forms(page).last.get_by_test_id("properties-done").click()
        forms(page).last.wait_for(state="detached")
    finally:
        close_all(page)
    saved = {n["id"]: n for n in export_all(page)}[ID_OF["mqtt-broker"]]
    assert saved["platform"] is True and saved["willRetain"] == "false"


def test_a_long_code_line_does_not_scroll_the_panel_sideways(page):
    form = open_form(page, "python function")
    try:
        editor = form.get_by_test_id("prop-func").locator(".cm-content")
        editor.click()
        page.keyboard.type("x = '" + "long " * 120 + "'")
        widths = form.locator(".q-scrollarea__container").first.evaluate(
            "e => [e.scrollWidth, e.clientWidth]"
        )
        assert widths[0] <= widths[1] + 1, widths
        assert form.get_by_text("msg is a dict", exact=False).or_(form.get_by_text("`msg` is a dict")).count()
    finally:
        close_all(page)


def test_api_endpoint_parameters_are_rows_and_its_api_is_created_in_place(page):
    form = open_form(page, "api-endpoint")
    try:
        form.get_by_test_id("prop-parameters-add").click()
        form.get_by_test_id("prop-parameters-0-name").fill("zone")
        form.get_by_test_id("prop-api").click()
        page.get_by_role("option", name="add new api...").click()
        page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 2")
        forms(page).last.get_by_test_id("prop-name").fill("buildings")
        forms(page).last.get_by_test_id("properties-done").click()
        page.wait_for_function("document.querySelectorAll('[data-testid=\"properties\"]').length === 1")
        form.get_by_test_id("properties-done").click()
        form.wait_for(state="hidden")
    finally:
        close_all(page)
    flows = {n["id"]: n for n in export_all(page)}
    endpoint = flows[ID_OF["api-endpoint"]]
    assert endpoint["parameters"] == [{"name": "zone", "type": "string", "in": "query", "required": False}]
    assert flows[endpoint["api"]]["type"] == "api" and flows[endpoint["api"]]["name"] == "buildings"


def test_the_help_button_shows_the_node_type_s_help(page):
    """The help sidebar when the editor has one, else a dialog: either way the debug node's help is shown."""
    form = open_form(page, "debug")
    try:
        form.get_by_test_id("properties-help").click()
        page.get_by_text("in the debug sidebar", exact=False).last.wait_for()
        dialog = page.get_by_test_id("help-dialog")
        if dialog.count():
            dialog.get_by_role("button", name="Close").click()
            dialog.wait_for(state="detached")
    finally:
        close_all(page)
