"""Example ontologies shipped with sofiaflow, as JSON Schema (package data, read with importlib.resources)."""
