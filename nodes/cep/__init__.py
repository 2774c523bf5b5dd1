"""Complex event processing: keyed windows and aggregates."""
