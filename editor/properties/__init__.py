"""The property form of a node (generated from its config model's JSON schema)."""

from .form import PropertyForm

__all__ = ["PropertyForm"]
