"""Network nodes: MQTT, HTTP and WebSocket endpoints."""
