"""The help sidebar's documentation of a node type, rendered from its help text, schema and longer docs."""

from __future__ import annotations

from sofiaflow.editor.help import help_markdown
from sofiaflow.editor.palette import palette_types
from sofiaflow.runtime.flows.registry import default_registry


def test_python_function_help_says_msg_is_a_dict_with_an_example():
    types = palette_types(default_registry())
    text = help_markdown("python function", types["python function"])
    assert text.startswith("## python function")
    assert "**Python dict**" in text and 'msg["payload"]' in text and "```python" in text
    assert "### Properties" in text and "- **func**" in text


def test_config_references_credentials_and_unknown_types():
    entry = {
        "label": "thing",
        "category": "network",
        "help": "Does a thing.",
        "inputs": 1,
        "outputs": 1,
        "schema": {
            "properties": {
                "conn": {"type": "string", "x-config": "pool", "default": ""},
                "retries": {"type": "integer", "default": 3, "description": "how often"},
                "id": {"type": "string"},
            }
        },
        "credentials": {"password": "password"},
    }
    text = help_markdown("thing", entry)
    assert "- **conn** (string): a `pool` config node" in text
    assert "- **retries** (integer), default `3`: how often" in text and "**id**" not in text
    assert "**Credentials**" in text and "`password`" in text and "**Inputs:** 1" in text
    assert "not installed" in help_markdown("nowhere", None)
