"""The pre-deploy warning mark: a node whose properties its config model refuses carries the reason in its view;
the mark goes when the node is fixed (edit or undo) and comes back on redo; each node is checked once per state."""

from __future__ import annotations

from types import SimpleNamespace

from sofiaflow.editor.palette import palette_types
from sofiaflow.editor.workspace import Workspace
from sofiaflow.runtime.flows.registry import default_registry

MQTT = {
    "id": "m1",
    "type": "mqtt in",
    "z": "t1",
    "topic": "sensors/#",
    "qos": "high",
    "datatype": "auto-detect",
    "broker": "",
    "x": 200,
    "y": 100,
    "wires": [[]],
}
FLOWS = [
    {"id": "t1", "type": "tab", "label": "one"},
    MQTT,
    {"id": "d1", "type": "debug", "z": "t1", "x": 400, "y": 100, "wires": []},
]


class _CountingRegistry:
    """The default registry, counting how often a type's config class is looked up for a check."""

    def __init__(self) -> None:
        self.inner = default_registry()
        self.finds = 0

    def find(self, name: str):
        self.finds += 1
        return self.inner.find(name)

    def describe(self) -> list[dict]:
        return self.inner.describe()


class _Canvas:
    def __init__(self) -> None:
        self.views: list[dict] = []

    def show(self, tab: str, views: list[dict]) -> None:
        self.views = views

    def on(self, *_args) -> None:
        pass

    def by_id(self, node_id: str) -> dict:
        return next(v for v in self.views if v["id"] == node_id)


def _workspace() -> tuple[Workspace, _Canvas, _CountingRegistry]:
    registry = _CountingRegistry()
    runtime = SimpleNamespace(flows=[dict(n) for n in FLOWS], rev="r1", registry=registry, deployer=None)
    ws = Workspace(runtime, palette_types(registry.inner), "admin")
    canvas = _Canvas()
    ws.attach(canvas)
    return ws, canvas, registry


def test_an_invalid_config_is_marked_with_its_reason_and_the_mark_goes_when_fixed():
    ws, canvas, _ = _workspace()
    ws.redraw()
    assert canvas.by_id("m1")["problem"] == "qos: QoS must be 0, 1 or 2, not 'high'"
    assert canvas.by_id("d1")["problem"] == ""
    ws.doc.update("m1", {"qos": "1"})
    ws.redraw()
    assert canvas.by_id("m1")["problem"] == ""
    ws.doc.undo()
    ws.redraw()
    assert "QoS must be 0, 1 or 2" in canvas.by_id("m1")["problem"]
    ws.doc.redo()
    ws.redraw()
    assert canvas.by_id("m1")["problem"] == ""


def test_imported_and_pasted_nodes_are_checked():
    ws, canvas, _ = _workspace()
    ws.doc.import_flows(
        [{"id": "i1", "type": "inject", "repeat": "soon", "x": 1, "y": 1, "wires": [[]]}], "t1"
    )
    ws.redraw()
    imported = [v for v in canvas.views if v["type"] == "inject"]
    assert len(imported) == 1 and "repeat" in imported[0]["problem"]


def test_each_node_is_checked_once_per_state():
    ws, canvas, registry = _workspace()
    ws.redraw()
    first = registry.finds
    assert first == 2
    for _ in range(5):
        ws.redraw()
    assert registry.finds == first, "unchanged nodes are not checked again"
    ws.doc.update("d1", {"name": "seen"})
    ws.redraw()
    assert registry.finds == first + 1, "only the edited node is checked again"


def test_views_carry_the_icon_of_their_type():
    ws, canvas, _ = _workspace()
    ws.redraw()
    assert canvas.by_id("m1")["icon"] == "settings_input_antenna"
    assert canvas.by_id("d1")["icon"] == "bug_report"


def test_a_config_class_that_fails_marks_its_node_instead_of_breaking_the_canvas():
    ws, canvas, registry = _workspace()

    class Broken:
        class Config:
            @staticmethod
            def model_validate(_node):
                raise TypeError("cannot read this")

    registry.find = lambda name: Broken if name == "debug" else registry.inner.find(name)
    ws.redraw()
    assert canvas.by_id("d1")["problem"] == "config: TypeError: cannot read this"
