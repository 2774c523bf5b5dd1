"""The property form of a node (generated from its config model's JSON schema)."""

from sofiaflow.editor.properties.form import PropertyForm

__all__ = ["PropertyForm"]
