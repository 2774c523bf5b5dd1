"""Idle memory: RSS of `sofiaflow run` and of Node-RED, each idle with its editor after one editor page load.

sofiaflow runs with its shipped default flow (the IoT Broker flow, `flows/iot-broker.json`, with its MQTT
broker on a free port) and the editor; Node-RED with no flows (it ships
none). Each editor page is fetched once over HTTP (sofiaflow: the editor's login page, which builds a NiceGUI page;
Node-RED: its editor page), then the process is left alone for a few seconds and its RSS read from /proc.

Run: python tests/bench/idle.py [settle seconds]      (Node-RED figures need Node-RED from npm; see README)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import urllib.request  # noqa: E402

from nodered import NodeRed, find_node_red, free_port  # noqa: E402
from sofiaflow_server import SofiaflowServer  # noqa: E402

EDITOR_PAGE = "/editor/login"


def _load(url: str) -> int:
    with urllib.request.urlopen(url, timeout=60) as resp:
        body = resp.read()
        if resp.status != 200 or not body:
            raise RuntimeError(f"{url}: HTTP {resp.status}, {len(body)} bytes")
        return len(body)


def sofiaflow_idle(settle_s: float) -> dict:
    flows = json.loads((HERE.parents[1] / "flows" / "iot-broker.json").read_text())
    with SofiaflowServer(flows, mqtt_port=free_port()) as sf:
        time.sleep(settle_s)
        started = sf.rss_mb()
        page = _load(sf.url + EDITOR_PAGE)
        time.sleep(settle_s)
        return {"rss_mb_started": started, "rss_mb": sf.rss_mb(), "page_bytes": page}


def nodered_idle(settle_s: float) -> dict:
    with NodeRed([]) as nr:
        time.sleep(settle_s)
        started = nr.rss_bytes() / 2**20
        page = _load(nr.url + "/")
        time.sleep(settle_s)
        return {"rss_mb_started": started, "rss_mb": nr.rss_bytes() / 2**20, "page_bytes": page}


def main(argv: list[str]) -> int:
    settle = float(argv[1]) if len(argv) > 1 else 5.0
    ours = sofiaflow_idle(settle)
    theirs = nodered_idle(settle) if find_node_red() is not None else None
    print(f"idle RSS after one editor page load, {settle:g} s settled")
    print(f"  {'':<38} {'sofiaflow':>10} {'Node-RED':>10}")
    for label, key in (
        ("RSS once started, MiB", "rss_mb_started"),
        ("RSS after an editor page, MiB", "rss_mb"),
    ):
        other = f"{theirs[key]:>10.1f}" if theirs else f"{'not measured':>10}"
        print(f"  {label:<38} {ours[key]:>10.1f} {other}")
    if theirs is None:
        print(
            "  Node-RED was not found (npm install node-red@4.1.15; see tests/bench/nodered.py): not measured"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
