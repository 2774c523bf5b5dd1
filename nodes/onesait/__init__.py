"""onesait / Sofia2 IoT Broker as nodes: SSAP over REST and MQTT, the SSAP processor and its answers."""
