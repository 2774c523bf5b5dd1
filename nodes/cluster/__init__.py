"""Nodes for a cluster of workers (they work alone too)."""
