"""comment: a note on the canvas; does nothing at run time."""

from __future__ import annotations

from sofiaflow.runtime.api import Node, NodeConfig


class CommentConfig(NodeConfig):
    info: str = ""


class CommentNode(Node[CommentConfig]):
    type = "comment"
    category = "common"
    color = "#ffffff"
    inputs = 0
    outputs = 0
    Config = CommentConfig
    help = "A comment on the flow. It does nothing when the flow runs."
