"""Data: the config DB, ontologies and their schemas, the real-time DB (rtdb/) and history (history/)."""
