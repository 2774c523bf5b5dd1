"""MQTT nodes: mqtt-broker, mqtt in and mqtt out, and the MQTT client they use for external brokers."""
