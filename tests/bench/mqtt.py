"""MQTT benchmark: msgs/s end to end through `mqtt in -> function -> mqtt out`, Mosquitto as the
broker, loaded by Mosquitto's C clients (`mosquitto_pub -l`, `mosquitto_sub -C`), sofiaflow beside
Node-RED (its function node in JavaScript) on the same machine.

Run: python tests/bench/mqtt.py [count]
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

from nodered import NodeRed, find_node_red, free_port  # noqa: E402
from sofiaflow_server import SofiaflowServer  # noqa: E402

JS = "msg.topic = 'bench/out';\nreturn msg;"
PY = "msg['topic'] = 'bench/out'\nreturn msg"


def bench_flow(port: int, python: bool, qos: str = "0") -> list[dict]:
    fn = (
        {"type": "python function", "func": PY}
        if python
        else {
            "type": "function",
            "func": JS,
            "timeout": 0,
            "noerr": 0,
            "initialize": "",
            "finalize": "",
            "libs": [],
        }
    )
    tab = "m0000000000000t1"
    return [
        {"id": tab, "type": "tab", "label": "bench", "disabled": False, "info": ""},
        {
            "id": "m00000000000000b",
            "type": "mqtt-broker",
            "name": "bench broker",
            "broker": "127.0.0.1",
            "port": str(port),
            "clientid": "",
            "autoConnect": True,
            "usetls": False,
            "protocolVersion": "4",
            "keepalive": "60",
            "cleansession": True,
            "autoUnsubscribe": True,
            "birthTopic": "",
            "closeTopic": "",
            "willTopic": "",
        },
        {
            "id": "m000000000000001",
            "type": "mqtt in",
            "z": tab,
            "name": "",
            "topic": "bench/in",
            "qos": qos,
            "datatype": "utf8",
            "broker": "m00000000000000b",
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "x": 100,
            "y": 100,
            "wires": [["m000000000000002"]],
        },
        {
            "id": "m000000000000002",
            "z": tab,
            "name": "",
            "outputs": 1,
            "x": 300,
            "y": 100,
            "wires": [["m000000000000003"]],
            **fn,
        },
        {
            "id": "m000000000000003",
            "type": "mqtt out",
            "z": tab,
            "name": "",
            "topic": "",
            "qos": qos,
            "retain": "",
            "broker": "m00000000000000b",
            "x": 500,
            "y": 100,
            "wires": [],
        },
    ]


class Mosquitto:
    """Debian's mosquitto on a free loopback port, with a queue large enough not to drop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sofiaflow-mosq-"))
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Mosquitto:
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 1000000\nmax_inflight_messages 0\n"
        )
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def run_load(port: int, count: int, timeout: float = 120.0) -> dict:
    """Publish `count` messages with mosquitto_pub -l; time until mosquitto_sub has them all back."""
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            "bench/out",
            "-C",
            str(count),
            "-W",
            str(int(timeout)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # let the subscription land
    lines = "".join(f"m{i}\n" for i in range(count)).encode()
    started = time.perf_counter()
    subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/in", "-l"],
        input=lines,
        check=True,
        timeout=timeout,
    )
    out, _ = sub.communicate(timeout=timeout + 5)
    elapsed = time.perf_counter() - started
    got = out.count(b"\n")
    return {"received": got, "elapsed_s": elapsed, "msgs_per_s": got / elapsed}


def measure(runtime: str, count: int) -> dict:
    with Mosquitto() as broker:
        if runtime == "sofiaflow":
            server = SofiaflowServer(bench_flow(broker.port, python=True))
        else:
            server = NodeRed(bench_flow(broker.port, python=False))
        with server:
            time.sleep(1.5)  # the flow's client connects and subscribes
            run_load(broker.port, min(count, 2000))  # warm up
            return run_load(broker.port, count)


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 100_000
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed (apt-get install mosquitto mosquitto-clients): not measured")
            return 1
    ours = measure("sofiaflow", count)
    theirs = measure("nodered", count) if find_node_red() else None
    print(f"mqtt in -> function -> mqtt out, QoS 0, Mosquitto, {count:,} messages (mosquitto_pub -l)")
    print(f"  {'':<12} {'msgs/s':>10} {'received':>10} {'seconds':>8}")
    for name, r in (("sofiaflow", ours), ("Node-RED", theirs)):
        if r is None:
            print(f"  {name:<12} not installed, not measured")
        else:
            print(f"  {name:<12} {r['msgs_per_s']:>10,.0f} {r['received']:>10,} {r['elapsed_s']:>8.2f}")
    if theirs:
        print(f"  ratio {ours['msgs_per_s'] / theirs['msgs_per_s']:.2f}x msgs/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
