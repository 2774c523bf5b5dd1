"""QoS 1 into `mqtt in -> ontology-insert` on the embedded broker of a real `sofiaflow run`: how fast a device's
messages are acknowledged (PUBACK) and stored, for a few paho inflight windows.

    python -m tests.bench.mqtt_ack [messages]

Prints one table row per window: acknowledged messages a second (first publish to last PUBACK), and the
seconds until all were stored.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import mqtt_ack_harness as h  # noqa: E402
from onesait_server import free_port  # noqa: E402


def run(count: int, inflight: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port, mqtt_port = free_port(), free_port()
        proc = h.launch(Path(tmp), port, mqtt_port)
        device = None
        try:
            admin = h.admin_client(port)
            assert admin.post("/flows", json=h.insert_flow("127.0.0.1", mqtt_port)).status_code == 204
            token = admin.post(
                "/devices",
                json={
                    "name": "bench",
                    "topics": ["sensors/{device}/#"],
                    "ontologies": {h.ONTOLOGY: "INSERT"},
                },
            ).json()["token"]
            device = h.Device(mqtt_port, "bench", token, client_id=f"bench-{inflight}", inflight=inflight)
            device.start()
            started = time.monotonic()
            for seq in range(count):
                device.publish(seq)
            assert device.wait_acked(count, 300), f"{device.acked_count()} of {count} acknowledged"
            acked = time.monotonic() - started
            while len(set(h.stored_sequences(admin))) < count and time.monotonic() - started < 300:
                time.sleep(0.2)
            return count / acked, time.monotonic() - started
        finally:
            if device is not None:
                device.close()
            h.stop(proc)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    print(f"{'paho inflight':>14} {'acked msgs/s':>13} {'all stored (s)':>15}")
    for inflight in (20, 100, 1000):
        rate, stored = run(count, inflight)
        print(f"{inflight:>14} {rate:>13.0f} {stored:>15.1f}")


if __name__ == "__main__":
    main()
