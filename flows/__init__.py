"""Flow files shipped with sofiaflow (package data, read with importlib.resources)."""
