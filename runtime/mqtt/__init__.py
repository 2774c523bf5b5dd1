"""The embedded MQTT broker, acknowledgements after processing, and MQTT topic matching."""
