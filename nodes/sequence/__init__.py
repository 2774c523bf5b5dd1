"""sofiaflow built-in nodes."""
