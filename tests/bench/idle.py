"""Idle memory: RSS of `sofiaflow run` and of Node-RED, each idle with its editor after one editor page load.

sofiaflow runs with its shipped default flow (the IoT Broker flow, `flows/iot-broker.json`, with its MQTT
broker on a free port) and the editor; Node-RED with no flows (it ships
none). Each editor page is fetched once over HTTP (sofiaflow: the editor's login page, which builds a NiceGUI page;
Node-RED: its editor page), then the process is left alone for a few seconds and the RSS of its whole process tree
(the server and any process under it, such as sandbox workers) read from /proc. Each system runs several times, one
after the other, each in a fresh data directory; the table gives the median run and the range, and the processes
and threads of the last run.

Run: python tests/bench/idle.py [runs] [settle seconds]      (Node-RED figures need Node-RED from npm; see README)
"""

from __future__ import annotations

import json
import os
import statistics
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


def _status(pid: int) -> dict[str, int]:
    fields = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "Threads"):
                fields[key] = int(value.split()[0])
    return fields


def _tree(root: int) -> list[int]:
    """`root` and every live process under it (from each process's parent in /proc/<pid>/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, ()))
    return out


def tree_memory(root: int) -> dict[str, float]:
    """RSS (MiB) summed over the process tree of `root`, its process count and thread count."""
    rss = threads = procs = 0
    for pid in _tree(root):
        try:
            status = _status(pid)
        except OSError:  # ended meanwhile
            continue
        rss += status.get("VmRSS", 0)
        threads += status.get("Threads", 0)
        procs += 1
    return {"rss_mb": rss / 1024, "processes": procs, "threads": threads}


def sofiaflow_idle(settle_s: float) -> dict:
    flows = json.loads((HERE.parents[1] / "flows" / "iot-broker.json").read_text())
    with SofiaflowServer(flows, mqtt_port=free_port()) as sf:
        time.sleep(settle_s)
        started = tree_memory(sf.proc.pid)
        page = _load(sf.url + EDITOR_PAGE)
        time.sleep(settle_s)
        return {"started": started, "idle": tree_memory(sf.proc.pid), "page_bytes": page}


def nodered_idle(settle_s: float) -> dict:
    with NodeRed([]) as nr:
        time.sleep(settle_s)
        started = tree_memory(nr.proc.pid)
        page = _load(nr.url + "/")
        time.sleep(settle_s)
        return {"started": started, "idle": tree_memory(nr.proc.pid), "page_bytes": page}


def _figure(runs: list[dict] | None, key: str) -> str:
    if not runs:
        return f"{'not measured':>22}"
    values = [run[key]["rss_mb"] for run in runs]
    return f"{statistics.median(values):>8.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 3
    settle = float(argv[2]) if len(argv) > 2 else 5.0
    ours = [sofiaflow_idle(settle) for _ in range(count)]
    theirs = [nodered_idle(settle) for _ in range(count)] if find_node_red() is not None else None
    print(f"idle RSS of the whole process tree, MiB: median of {count} runs (range), {settle:g} s settled")
    print(f"  {'':<34} {'sofiaflow':>22} {'Node-RED':>22}")
    for label, key in (("once started", "started"), ("after one editor page load", "idle")):
        print(f"  {label:<34} {_figure(ours, key)} {_figure(theirs, key)}")
    for name, runs in (("sofiaflow", ours), ("Node-RED", theirs)):
        if runs:
            last = runs[-1]["idle"]
            print(f"  {name}: {last['processes']} process(es), {last['threads']} threads (last run)")
    if theirs is None:
        print(
            "  Node-RED was not found (npm install node-red@4.1.15; see tests/bench/nodered.py): not measured"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
