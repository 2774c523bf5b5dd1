"""A device talking to sofiaflow: publishes readings over MQTT, takes commands, posts over HTTP.

Create the device first (its topics must cover `sensors/<name>/#`), e.g. with the admin API:

    POST /devices  {"name": "sensor-1", "topics": ["sensors/{device}/#"]}   -> answers with a token once

then run:

    python examples/device_example.py --name sensor-1 --token <token> --count 5
    python examples/device_example.py --name sensor-1 --token <token> --http-path /api/readings

It publishes `{"temperature": ..., "seq": n}` to `sensors/<name>/telemetry` (QoS 1) every `--interval`
seconds, prints whatever arrives on `sensors/<name>/commands` (a flow's `mqtt out` can send there), and,
with `--http-path`, also POSTs each reading to that device-only route (an `http in` node with device auth).
The token may come from the environment variable SOFIAFLOW_DEVICE_TOKEN instead of `--token`.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from sofiaflow.runtime.client import DeviceAuthError, DeviceClient, DeviceClientError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="sensor-1", help="device name (the MQTT username)")
    parser.add_argument("--token", default=os.environ.get("SOFIAFLOW_DEVICE_TOKEN"), help="device token")
    parser.add_argument("--mqtt-host", default="127.0.0.1")
    parser.add_argument("--mqtt-port", type=int, default=1883)
    parser.add_argument("--http-base", default="http://127.0.0.1:1880")
    parser.add_argument("--http-path", default="", help="device-only route to POST each reading to")
    parser.add_argument("--count", type=int, default=5, help="readings to send (0 = until Ctrl-C)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("give --token or set SOFIAFLOW_DEVICE_TOKEN")

    base = f"sensors/{args.name}"
    try:
        with DeviceClient(args.name, args.token, args.mqtt_host, args.mqtt_port, args.http_base) as device:
            device.subscribe(
                f"{base}/commands", lambda topic, payload: print(f"command on {topic}: {payload!r}")
            )
            print(f"connected to {args.mqtt_host}:{args.mqtt_port} as {args.name}")
            seq = 0
            while args.count == 0 or seq < args.count:
                seq += 1
                reading = {"temperature": round(20 + random.uniform(-2, 2), 2), "seq": seq, "ts": time.time()}
                device.publish(f"{base}/telemetry", reading)
                print(f"published {reading}")
                if args.http_path:
                    print(f"POST {args.http_path} -> {device.post(args.http_path, json=reading)!r}")
                time.sleep(args.interval)
    except DeviceAuthError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except DeviceClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
