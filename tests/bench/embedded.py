"""Embedded broker against Mosquitto: device -> broker -> `mqtt in -> python function -> mqtt out` -> device.

The same `sofiaflow run` server and flow; only the broker differs: the runtime's embedded broker (amqtt, the
flow on its in-process path, devices authenticated by token) or Debian's Mosquitto (the flow a TCP client).
Loaded by Mosquitto's C clients: `mosquitto_pub -l` sends sequence numbers, `mosquitto_sub` reads them back.
Every message is counted: delivered (distinct sequence numbers), duplicates and losses. Beside the rates, the CPU
seconds per 10,000 messages of the sofiaflow server, of its sandbox worker (the python function) and of Mosquitto:
the steady figure on a shared machine (tests/bench/cpu.py).

Run: python tests/bench/embedded.py [count] [qos ...]     (default 50000 messages, QoS 0 and 1)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

from cpu import CpuMeter, per_10k  # noqa: E402
from mqtt import Mosquitto, bench_flow  # noqa: E402
from nodered import free_port  # noqa: E402
from sofiaflow_server import SofiaflowServer  # noqa: E402

IDLE_S = 5.0  # after the publisher is done, stop waiting once nothing arrived for this long


class Collector:
    """mosquitto_sub on bench/out; collects the sequence numbers it prints."""

    def __init__(self, port: int, qos: int, creds: list[str]) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/out", "-q", str(qos)]
            + ["-i", f"bench-sub-{time.monotonic_ns()}"]
            + creds,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.seqs: list[int] = []
        self.bad = 0
        self.last = time.perf_counter()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.seqs.append(int(line))
            except ValueError:
                self.bad += 1
            self.last = time.perf_counter()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._reader.join(10)


def run_load(port: int, count: int, qos: int, creds: list[str], pids: tuple[int, ...] = ()) -> dict:
    """Publish sequence numbers 0..count-1; wait until all are back or nothing came for IDLE_S seconds.
    `pids`: processes whose CPU seconds (with their children's) are counted, as "cpu" {pid: {server,
    workers}}."""
    sub = Collector(port, qos, creds)
    time.sleep(1.0)  # let the subscription land
    if sub.proc.poll() is not None:
        raise RuntimeError(f"mosquitto_sub exited: {sub.proc.stderr.read().decode()}")  # type: ignore[union-attr]
    lines = "".join(f"{i}\n" for i in range(count)).encode()
    meters = {pid: CpuMeter(pid) for pid in pids}
    started = time.perf_counter()
    pub = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/in", "-q", str(qos), "-l"]
        + ["-i", f"bench-pub-{time.monotonic_ns()}"]
        + creds,
        input=lines,
        capture_output=True,
        timeout=600,
    )
    if pub.returncode != 0:
        raise RuntimeError(f"mosquitto_pub failed: {pub.stderr.decode()}")
    sent = time.perf_counter()
    while len(sub.seqs) < count and time.perf_counter() - max(sub.last, sent) < IDLE_S:
        time.sleep(0.05)
    cpu = {pid: meter.spent() for pid, meter in meters.items()}
    sub.stop()
    seqs = sub.seqs
    distinct = set(seqs)
    last = sub.last if seqs else sent
    elapsed = max(last - started, 1e-9)
    return {
        "delivered": len(distinct),
        "duplicates": len(seqs) - len(distinct),
        "lost": count - len(distinct & set(range(count))),
        "publish_s": sent - started,
        "elapsed_s": elapsed,
        "msgs_per_s": len(distinct) / elapsed,
        "in_order": seqs == sorted(seqs),
        "cpu": cpu,
    }


def measure(broker: str, count: int, qos: int, warmup: int = 2000) -> dict:
    if broker == "mosquitto":
        with Mosquitto() as mosq, SofiaflowServer(bench_flow(mosq.port, True, str(qos)), mqtt_port=0) as sf:
            time.sleep(1.5)  # the flow's client connects and subscribes
            run_load(mosq.port, warmup, qos, [])
            result = run_load(mosq.port, count, qos, [], (sf.proc.pid, mosq.proc.pid))
            result["rss_mb"] = sf.rss_mb()
            spent = result["cpu"]
            result["server_cpu"] = per_10k(spent[sf.proc.pid]["server"], count)
            result["worker_cpu"] = per_10k(spent[sf.proc.pid]["workers"], count)
            result["broker_cpu"] = per_10k(spent[mosq.proc.pid]["server"], count)
            return result
    port = free_port()
    with SofiaflowServer(bench_flow(port, True, str(qos)), mqtt_port=port) as sf:
        status, body = sf.request("POST", "/devices", {"name": "bench", "topics": ["bench/#"]})
        if status != 201:
            raise RuntimeError(f"device not created: {status} {body}")
        creds = ["-u", "bench", "-P", json.loads(body)["token"]]
        time.sleep(1.0)
        run_load(port, warmup, qos, creds)
        result = run_load(port, count, qos, creds, (sf.proc.pid,))
        result["rss_mb"] = sf.rss_mb()
        spent = result["cpu"][sf.proc.pid]
        result["server_cpu"] = per_10k(spent["server"], count)
        result["worker_cpu"] = per_10k(spent["workers"], count)
        result["broker_cpu"] = 0.0  # in the server process
        return result


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 50_000
    levels = [int(q) for q in argv[2:]] or [0, 1]
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install mosquitto mosquitto-clients): not measured")
            return 1
    print(f"device -> broker -> mqtt in -> python function -> mqtt out -> device, {count:,} messages")
    print(
        f"  {'QoS':<4}{'broker':<11}{'msgs/s':>9}{'delivered':>11}{'lost':>8}{'dups':>6}"
        f"{'order':>7}{'pub s':>7}{'total s':>8}{'RSS MB':>8}{'CPU s/10k: server':>19}{'worker':>8}{'broker':>8}"
    )
    for qos in levels:
        rows = {name: measure(name, count, qos) for name in ("embedded", "mosquitto")}
        for name, r in rows.items():
            print(
                f"  {qos:<4}{name:<11}{r['msgs_per_s']:>9,.0f}{r['delivered']:>11,}{r['lost']:>8,}"
                f"{r['duplicates']:>6,}{'yes' if r['in_order'] else 'no':>7}{r['publish_s']:>7.2f}"
                f"{r['elapsed_s']:>8.2f}{r['rss_mb']:>8.0f}{r['server_cpu']:>19.3f}{r['worker_cpu']:>8.3f}"
                f"{r['broker_cpu']:>8.3f}"
            )
        ratio = rows["embedded"]["msgs_per_s"] / max(rows["mosquitto"]["msgs_per_s"], 1e-9)
        print(f"  QoS {qos}: embedded / Mosquitto = {ratio:.2f}x msgs/s")
        ours = rows["embedded"]["server_cpu"] + rows["embedded"]["worker_cpu"]
        theirs = sum(rows["mosquitto"][k] for k in ("server_cpu", "worker_cpu", "broker_cpu"))
        print(
            f"  QoS {qos}: CPU s per 10k messages, server + worker (+ Mosquitto): embedded {ours:.3f},"
            f" with Mosquitto {theirs:.3f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
