"""Playwright steps on the flow editor page: drag from the palette, wire ports, read the canvas."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any

NODE = ".sf-canvas .sf-node"


def canvas_box(page: Any) -> dict:
    return page.locator(".sf-canvas").bounding_box()


def drag_from_palette(page: Any, node_type: str, x: float, y: float) -> str:
    """Drag `node_type` from the palette to canvas point (x, y); the new node's id."""
    before = set(node_ids(page))
    item = page.locator(f'.sf-palette-node[data-type="{node_type}"]')
    item.scroll_into_view_if_needed()
    item.drag_to(page.locator(".sf-canvas"), target_position={"x": x, "y": y})
    page.wait_for_function(f"document.querySelectorAll({NODE!r}).length > {len(before)}", timeout=5000)
    added = [i for i in node_ids(page) if i not in before]
    assert len(added) == 1, added
    return added[0]


def node_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(NODE, "els => els.map(e => e.dataset.id)")


def node(page: Any, node_id: str) -> Any:
    return page.locator(f'.sf-node[data-id="{node_id}"]')


def center(locator: Any) -> tuple[float, float]:
    box = locator.bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def wire(page: Any, source: str, target: str, port: int = 0) -> None:
    """Drag from output `port` of `source` to the input port of `target`."""
    wires_before = page.locator(".sf-wire").count()
    sx, sy = center(node(page, source).locator(f'[data-port="{port}"]'))
    tx, ty = center(node(page, target).locator('[data-port="in"]'))
    page.mouse.move(sx, sy)
    page.mouse.down()
    for step in range(1, 6):
        page.mouse.move(sx + (tx - sx) * step / 5, sy + (ty - sy) * step / 5)
    page.mouse.up()
    page.wait_for_function(
        f"document.querySelectorAll('.sf-wire:not(.sf-temp)').length > {wires_before}", timeout=5000
    )


def fill(page: Any, testid: str, value: str) -> None:
    """Fill the Quasar input marked `data-testid=testid`."""
    field = page.get_by_test_id(testid)
    target = (
        field
        if field.evaluate("e => e.tagName") in ("INPUT", "TEXTAREA")
        else field.locator("input, textarea")
    )
    target.first.fill(value)


def field(page: Any, testid: str) -> Any:
    """The whole Quasar field (label, input, error message) around the input marked `testid`."""
    return page.locator("label.q-field", has=page.get_by_test_id(testid))


def open_properties(page: Any, node_id: str) -> Any:
    """Double-click the node and return its properties form once it is shown."""
    node(page, node_id).dblclick()
    form = page.get_by_test_id("properties")
    form.wait_for()
    return form


def cancel_properties(page: Any) -> None:
    """Cancel the open properties form, if any, and wait until it is gone."""
    forms = page.get_by_test_id("properties")
    if forms.count():
        forms.last.get_by_role("button", name="Cancel").click()
        forms.last.wait_for(state="detached")


def export_all(page: Any) -> list[dict]:
    """Open the export dialog, choose all flows, read the JSON, close."""
    page.get_by_test_id("export").click()
    dialog = page.get_by_test_id("export-dialog")
    dialog.get_by_text("all flows").click()
    page.wait_for_timeout(200)
    text = dialog.locator("textarea").input_value()
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="hidden")
    return json.loads(text)


def import_text(page: Any, text: str, new_tab: bool = False) -> None:
    page.get_by_test_id("import").click()
    dialog = page.get_by_test_id("import-dialog")
    dialog.locator("textarea").fill(text)
    if new_tab:
        dialog.get_by_text("new flow").click()
    dialog.get_by_test_id("import-confirm").click()
    dialog.wait_for(state="hidden")


# ----- measuring a big tab ---------------------------------------------------------------

BIG = 500


def big_flow() -> list[dict]:
    flows = [
        {"id": "smalltab", "type": "tab", "label": "small"},
        {"id": "bigtab", "type": "tab", "label": "big"},
    ]
    for i in range(BIG):
        col, row = divmod(i, 25)
        target = [[f"n{i + 1}"]] if i % 2 == 0 else [[]]
        flows.append(
            {
                "id": f"n{i}",
                "type": "change",
                "z": "bigtab",
                "name": f"node {i}",
                "x": 80 + col * 150,
                "y": 40 + row * 40,
                "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "x", "tot": "str"}],
                "wires": target,
            }
        )
    return flows


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def drag_timed(page, node_id: str, steps: int = 60) -> dict:
    """Drag `node_id` (with whatever is selected) by (3, 2) px per step; handler and frame timings."""
    page.evaluate("""() => {
        window.__sfDragStats = [];
        window.__sfFrames = [];
        window.__sfRecording = true;
        const tick = (t) => { window.__sfFrames.push(t); if (window.__sfRecording) requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
    }""")
    x, y = center(node(page, node_id))
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, steps + 1):
        page.mouse.move(x + step * 3, y + step * 2)
    page.mouse.up()
    return page.evaluate("""() => {
        window.__sfRecording = false;
        const f = window.__sfFrames;
        return {handlers: window.__sfDragStats, frames: f.slice(1).map((t, i) => t - f[i])};
    }""")


def report_drag(what: str, stats: dict) -> None:
    handlers, frames = stats["handlers"], stats["frames"]
    print(
        f"\n{what}, {len(handlers)} pointer moves: handler median {statistics.median(handlers):.2f} ms, "
        f"p95 {percentile(handlers, 0.95):.2f} ms, max {max(handlers):.2f} ms; "
        f"{len(frames)} frames, interval median {statistics.median(frames):.1f} ms, "
        f"p95 {percentile(frames, 0.95):.1f} ms, max {max(frames):.1f} ms"
    )


def screenshot_path(name: str, fallback_dir: Path) -> Path:
    """Where a browser test saves screenshot `name`: docs/screenshots when SOFIAFLOW_SCREENSHOTS=1 (to refresh the
    README's pictures), else `fallback_dir` (a tmp_path), so a test run leaves the tree clean."""
    if os.environ.get("SOFIAFLOW_SCREENSHOTS") == "1":
        folder = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
    else:
        folder = fallback_dir
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
