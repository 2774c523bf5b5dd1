"""The marks the editor keeps on nodes: a deploy problem's mark lasts while the node is as it was refused;
the statuses a page starts from are the running nodes' current ones; a cleared highlight reaches the canvas."""

from __future__ import annotations

from types import SimpleNamespace

from sofiaflow.editor.workspace import Workspace

FLOWS = [
    {"id": "t1", "type": "tab", "label": "one"},
    {"id": "fn", "type": "python function", "z": "t1", "x": 1, "y": 1, "func": "return msg", "wires": [[]]},
    {"id": "other", "type": "debug", "z": "t1", "x": 1, "y": 1, "wires": []},
]


class _Canvas:
    def __init__(self) -> None:
        self.highlights: list[str] = []
        self.shown = 0

    def set_highlight(self, node_id: str) -> None:
        self.highlights.append(node_id)

    def show(self, tab: str, views: list[dict]) -> None:
        self.shown += 1

    def on(self, *_args) -> None:
        pass


def _workspace(running: dict | None = None) -> Workspace:
    runtime = SimpleNamespace(flows=FLOWS, rev="r1", deployer=SimpleNamespace(running=running or {}))
    return Workspace(runtime, {}, "admin")


def test_undoing_the_typo_a_deploy_refused_clears_its_mark():
    ws = _workspace()
    ws.doc.update("fn", {"func": "retrun msg"})
    ws.invalid = {"fn", "gone"}
    assert ws.invalid == {"fn"}
    ws.doc.undo()
    assert ws.invalid == set(), "the node is no longer what was refused"
    ws.doc.redo()
    assert ws.invalid == {"fn"}, "the typo is back, and so is its mark"
    ws.doc.update("fn", {"func": "return msg"})
    assert ws.invalid == set()


def test_a_page_starts_from_the_statuses_the_running_nodes_show():
    running = {
        "fn": SimpleNamespace(last_status={"fill": "red", "shape": "ring", "text": "start failed: x"}),
        "other": SimpleNamespace(last_status={}),
    }
    ws = _workspace(running)
    assert ws.statuses == {"fn": {"fill": "red", "shape": "ring", "text": "start failed: x"}}


def test_clearing_the_highlight_reaches_the_canvas():
    ws = _workspace()
    canvas = _Canvas()
    ws.canvas = canvas
    ws.focus("fn")
    assert ws.highlight == "fn" and canvas.highlights == ["fn"]
    ws.clear_highlight()
    assert ws.highlight == "" and canvas.highlights == ["fn", ""]
