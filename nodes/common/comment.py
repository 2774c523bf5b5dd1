"""comment: a note on the canvas; does nothing at run time."""

from __future__ import annotations

from pydantic import Field

from sofiaflow.runtime.api import Node, NodeConfig


class CommentConfig(NodeConfig):
    info: str = Field(
        "",
        title="Text",
        description="What the comment says (Markdown).",
        json_schema_extra={"x-widget": "code", "x-language": "mustache"},
    )


class CommentNode(Node[CommentConfig]):
    type = "comment"
    category = "common"
    color = "#ffffff"
    inputs = 0
    outputs = 0
    Config = CommentConfig
    help = "A comment on the flow. It does nothing when the flow runs."
