"""Vocabulary of type aliases shared by the runtime and node modules."""

from __future__ import annotations

from typing import Any

Msg = dict[str, Any]
"""A message: a plain dict carrying at least `_msgid`, and by convention `payload` and `topic`."""

FlowJSON = list[dict[str, Any]]
"""A flow set as Node-RED stores it: one flat list of node objects."""

NodeDict = dict[str, Any]
"""One object of a flow set, exactly as imported."""
