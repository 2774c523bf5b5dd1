"""In a real browser: a node whose config its model refuses shows a warning mark named by the reason, before any
deploy; fixing it in the form removes the mark; every node on the canvas and in the palette shows its type's icon,
drawn by the Material icon font the editor serves itself (an unknown ligature would be drawn as wide text)."""

from __future__ import annotations

import json

import pytest
from editor_server import chromium, editor_page, editor_server  # noqa: F401 - pytest fixtures
from editor_ui import import_text, node, screenshot_path

from sofiaflow.editor.node_icons import BY_CATEGORY, BY_TYPE, DEFAULT_ICON

FLOW = [
    {
        "id": "mqttbadqos000001",
        "type": "mqtt in",
        "name": "sensor feed",
        "topic": "sensors/#",
        "qos": "high",
        "datatype": "auto-detect",
        "broker": "",
        "x": 200,
        "y": 120,
        "wires": [["debugmark0000001"]],
    },
    {"id": "debugmark0000001", "type": "debug", "name": "show", "x": 450, "y": 120, "wires": []},
    {"id": "injectmark000001", "type": "inject", "name": "tick", "x": 200, "y": 220, "wires": [[]]},
]

# An icon whose ligature the font knows is drawn as one glyph about 1em wide; unknown names stay as wide text
# (measured on the text itself: a Quasar icon's box is 1em whatever it holds).
_ICON_WIDTHS_JS = """sel => [...document.querySelectorAll(sel)].map(e => {
  const range = document.createRange();
  range.selectNodeContents(e);
  const r = range.getBoundingClientRect();
  return {icon: e.dataset.icon, width: r.width, size: parseFloat(getComputedStyle(e).fontSize),
          font: getComputedStyle(e).fontFamily};
})"""


@pytest.fixture(scope="module")
def page(editor_server, chromium):  # noqa: F811
    yield from editor_page(chromium, editor_server)


def test_an_invalid_config_is_marked_before_deploy_and_the_mark_goes_when_fixed(page, tmp_path):
    import_text(page, json.dumps(FLOW), new_tab=True)
    mqtt = node(page, "mqttbadqos000001")
    mqtt.wait_for()
    mark = mqtt.get_by_role("img", name="Invalid configuration: qos: QoS must be 0, 1 or 2, not 'high'")
    mark.wait_for()
    assert "QoS must be 0, 1 or 2" in mark.get_attribute("title")
    assert "invalid configuration" in mqtt.get_attribute("aria-label")
    page.wait_for_function("document.fonts.check('16px \"Material Icons\"')")
    page.screenshot(path=str(screenshot_path("editor-marks.png", tmp_path)))
    assert (
        node(page, "debugmark0000001").get_by_role("img", name="Invalid configuration", exact=False).count()
        == 0
    )

    mqtt.dblclick()
    form = page.get_by_test_id("properties")
    form.wait_for()
    page.get_by_test_id("prop-qos").click()
    page.get_by_role("option", name="1 - at least once").click()
    page.get_by_test_id("properties-done").click()
    form.wait_for(state="hidden")
    mark.wait_for(state="detached")
    assert "invalid" not in mqtt.get_attribute("aria-label")

    page.locator(".sf-canvas").focus()
    page.keyboard.press("Control+z")
    mqtt.get_by_role("img", name="Invalid configuration", exact=False).wait_for()


def test_nodes_and_palette_entries_show_their_type_s_icon(page):
    if node(page, "mqttbadqos000001").count() == 0:
        import_text(page, json.dumps(FLOW), new_tab=True)
    expected = {
        "mqttbadqos000001": "settings_input_antenna",
        "debugmark0000001": "bug_report",
        "injectmark000001": "arrow_forward",
    }
    for node_id, icon in expected.items():
        element = node(page, node_id).locator(f'.sf-icon[data-icon="{icon}"]')
        element.wait_for()
        assert element.inner_text() == icon
    page.wait_for_function("document.fonts.status === 'loaded'")
    page.wait_for_function("document.fonts.check('16px \"Material Icons\"')")
    drawn = page.evaluate(_ICON_WIDTHS_JS, ".sf-canvas .sf-icon") + page.evaluate(
        _ICON_WIDTHS_JS, ".sf-palette-node .sf-palette-icon"
    )
    palette_types = page.eval_on_selector_all(".sf-palette-node", "els => els.map(e => e.dataset.type)")
    assert len(drawn) >= len(palette_types) + 3 and len(palette_types) > 30
    wide = [d for d in drawn if not 0 < d["width"] <= 1.5 * d["size"]]
    assert not wide, f"icons not drawn as one glyph (unknown ligature or font missing): {wide}"
    assert all("Material Icons" in d["font"] for d in drawn)


def test_every_name_in_the_icon_table_is_a_glyph_of_the_served_font(page):
    names = sorted({*BY_TYPE.values(), *BY_CATEGORY.values(), DEFAULT_ICON})
    page.evaluate(
        """names => { const box = document.createElement('div'); box.id = 'sf-icon-probe';
        for (const name of names) { const i = document.createElement('i'); i.className = 'material-icons';
          i.dataset.icon = name; i.textContent = name; i.style.fontSize = '16px'; box.appendChild(i); }
        document.body.appendChild(box); }""",
        names,
    )
    page.wait_for_function("document.fonts.check('16px \"Material Icons\"')")
    drawn = page.evaluate(_ICON_WIDTHS_JS, "#sf-icon-probe i")
    page.evaluate("() => document.getElementById('sf-icon-probe').remove()")
    assert len(drawn) == len(names)
    wide = [d["icon"] for d in drawn if not 0 < d["width"] <= 1.5 * d["size"]]
    assert not wide, f"not glyphs of the Material Icons font: {wide}"
