"""Cluster mode: many `sofiaflow run` workers as one platform, on PostgreSQL, Redis and an external MQTT broker.

Single-process mode (no `SOFIAFLOW_REDIS_URL`) loads nothing from here."""
