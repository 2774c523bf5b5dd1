"""The flow canvas element (a NiceGUI custom element: canvas.py + canvas.js)."""

from sofiaflow.editor.canvas.canvas import FlowCanvas, node_size

__all__ = ["FlowCanvas", "node_size"]
