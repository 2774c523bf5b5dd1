"""Cluster benchmark: msgs/s of `mqtt in -> python function -> mqtt out` through Mosquitto for 1, 2 and 3 workers.

Each worker count gets a fresh cluster (tests/cluster_harness.py: Redis, PostgreSQL, Mosquitto with
deploy/mosquitto.conf and dynamic security, N `sofiaflow run` workers); the flow's mqtt-broker is the platform's
(shared subscription, a persistent session per worker). Two functions: a light one (sets the topic) and a
CPU-bound one (a loop calibrated to about 100 µs per message in this interpreter; the JavaScript one to about
100 µs in Node). Beside them: single-process sofiaflow (light flow) and Node-RED (.cache/nodered; both flows),
each a TCP client of a plain Mosquitto with the same in-flight window (max_inflight_messages 100). Loaded by
Mosquitto's C clients (`mosquitto_pub -l` sequence numbers, `mosquitto_sub` counts them back): every message is
counted (delivered distinct, lost, duplicates). Each row is the fastest of RUNS runs after a warm-up (losses and
duplicates summed over the runs).

msgs/s on a shared machine swings with whatever else runs there; the CPU seconds each process spends per 10,000
messages (summed over the measured runs, read from /proc) change far less. So beside msgs/s every row gives them:
each worker process and its sandbox worker (the process the python function runs in), Mosquitto, and the load
clients; and the cores the machine has, how many our processes kept busy and how many everything else did. From
those it says whether this machine can show the 2-worker aim at all: 2 workers at 1.6x the 1-worker rate need
1.6 x rate x (CPU per message of every process) cores, and one worker already keeps two processes busy (itself
and its sandbox worker). Last, the keyed path (tests/bench/cluster_keyed.py: partition on a real Redis, one
worker). In cluster mode it also counts the commands Redis ran (INFO commandstats) over the runs beside what the
same time took with no messages flowing (heartbeats, leases, deploy checks): nothing on the message path goes
to Redis. And the requests the sandbox workers served per 10,000 messages (their write calls, /proc/<pid>/io):
10,000 is a round trip to the sandbox per message, fewer is batching. Prints the tables; nothing is asserted.

Run: python tests/bench/cluster.py [count] [qos]     (default 20000 messages, QoS 1)
"""

from __future__ import annotations

import asyncio
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [
    str(HERE),
    str(TESTS),
    str(TESTS.parent),
]

from cluster_harness import Cluster, wait_until  # noqa: E402
from cluster_keyed import TARGET as KEYED_TARGET  # noqa: E402
from cluster_keyed import run as run_keyed  # noqa: E402
from cluster_load import tally  # noqa: E402
from embedded import Collector  # noqa: E402
from mqtt import bench_flow  # noqa: E402
from nodered import NodeRed, find_node_red, free_port  # noqa: E402
from redis_server import start_redis  # noqa: E402
from sofiaflow_server import SofiaflowServer  # noqa: E402

from sofiaflow.nodes.function.sandbox import CompiledScript  # noqa: E402
from sofiaflow.runtime.cluster.mqtt_sessions import LEASE_PREFIX, client_id  # noqa: E402
from tests.cluster_mosquitto import ADMIN, PLATFORM, start_mosquitto_dynsec  # noqa: E402

TARGET_S = 100e-6  # the CPU-bound function's work per message
LIGHT_PY = "msg['topic'] = 'bench/out'\nreturn msg"
LIGHT_JS = "msg.topic = 'bench/out';\nreturn msg;"


def cpu_py(n: int) -> str:
    return (
        f"s = 0\nfor i in range({n}):\n    s = (s * 31 + i) % 1000003\nmsg['topic'] = 'bench/out'\nreturn msg"
    )


def cpu_js(n: int) -> str:
    return f"let s = 0;\nfor (let i = 0; i < {n}; i++) {{ s = (s * 31 + i) % 1000003; }}\nmsg.topic = 'bench/out';\nreturn msg;"


def calibrate_py() -> int:
    """Iterations of cpu_py's body taking TARGET_S of CPU as the sandbox runs it (RestrictedPython's guarded
    loop costs about twice a plain one); the least CPU time of a few tries (other load only adds to it)."""
    n = 1000
    script = CompiledScript(cpu_py(n), time_limit=60.0)
    per_run = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(100):
            script.run({"msg": {"payload": "1"}})
        per_run = min(per_run, (time.process_time() - started) / 100)
    return max(1, int(n * TARGET_S / per_run))


def calibrate_js(node_red: str) -> int:
    """Iterations of cpu_js's loop taking TARGET_S in the Node that runs Node-RED."""
    node = shutil.which("node") or str(Path(node_red).resolve().parents[2] / "node")
    script = (
        "const n=100000;let t=process.hrtime.bigint();let s=0;"
        "for(let r=0;r<50;r++){for(let i=0;i<n;i++){s=(s*31+i)%1000003;}}"
        "const per=Number(process.hrtime.bigint()-t)/50/1e9;"
        f"console.log(Math.max(1,Math.round(n*{TARGET_S}/per)), s>=0)"
    )
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True, timeout=60)
    return int(out.stdout.split()[0])


IDLE_S = 20.0
"""After the publisher is done, stop waiting once nothing arrived for this long (a busy Node-RED writes nothing
while it works through its backlog)."""
RUNS = 3
"""Measured runs per row after the warm-up (the best is shown: other load on the machine only slows a run down)."""
PUBLISH_WINDOW = 1000
"""mosquitto_pub's QoS 1/2 in-flight window (-M; its default of 20 would be the bottleneck)."""


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process so far (0.0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / _TICK


def write_calls(pid: int) -> int:
    """write() system calls of one process so far (/proc/<pid>/io syscw; 0 when it cannot be read): a sandbox
    worker writes one answer per request, so this counts the requests it served."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("syscw:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the sandbox workers of a server, the node behind a node-red wrapper)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat[stat.rindex(")") + 2 :].split()[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def busy_cores_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat: all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - (values[4] if len(values) > 4 else 0)) / _TICK


def cores() -> int:
    return len(os.sched_getaffinity(0))


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the load clients, reaped by each run)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


Roles = Callable[[], dict[str, int]]
"""The processes to meter, by role ("w1", "w1 sandbox", "broker", ...) -> pid; asked at the start of each run."""


def run_load(port: int, count: int, qos: int, creds: list[str], roles: Roles | None = None) -> dict[str, Any]:
    """Publish sequence numbers 0..count-1 (mosquitto_pub -l); wait until every one is back or nothing came for
    IDLE_S seconds; count delivered (distinct), lost and duplicates; the CPU seconds of each of `roles`, of the
    load clients ("load clients") and of the whole machine ("machine") meanwhile."""
    pids = roles() if roles is not None else {}
    sub = Collector(port, qos, creds)
    time.sleep(1.0)  # let the subscription land
    lines = "".join(f"{i}\n" for i in range(count)).encode()
    before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    sandboxes = {role: pid for role, pid in pids.items() if "sandbox" in role}
    writes = {role: write_calls(pid) for role, pid in sandboxes.items()}
    clients, machine = children_cpu(), busy_cores_seconds()
    started = time.perf_counter()
    pub = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "bench/in", "-q", str(qos), "-l"]
        + ["-M", str(PUBLISH_WINDOW), "-i", f"bench-pub-{time.monotonic_ns()}", *creds],
        input=lines,
        capture_output=True,
        timeout=600,
    )
    if pub.returncode != 0:
        raise RuntimeError(f"mosquitto_pub failed: {pub.stderr.decode()}")
    sent = time.perf_counter()
    while len(sub.seqs) < count and time.perf_counter() - max(sub.last, sent) < IDLE_S:
        time.sleep(0.05)
    cpu = {role: cpu_seconds(pid) - before[role] for role, pid in pids.items()}
    requests = sum(write_calls(pid) - writes[role] for role, pid in sandboxes.items())
    machine = busy_cores_seconds() - machine
    wall = time.perf_counter() - started
    sub.stop()
    cpu["load clients"] = children_cpu() - clients
    counted = tally(range(count), sub.seqs)
    elapsed = max((sub.last if sub.seqs else sent) - started, 1e-9)
    return {
        "delivered": counted.delivered,
        "duplicates": counted.duplicates,
        "lost": len(counted.lost),
        "elapsed_s": elapsed,
        "msgs_per_s": counted.delivered / elapsed,
        "cpu": cpu,
        "sandbox_requests": requests,
        "machine": machine,
        "wall": wall,
        "count": count,
    }


def best_of(port: int, count: int, qos: int, creds: list[str], roles: Roles | None = None) -> dict[str, Any]:
    """Warm up, then RUNS runs: the fastest, with the losses and duplicates of every run; CPU seconds per 10,000
    messages of each role over every run ("cpu"), the cores our processes and everything else kept busy."""
    run_load(port, min(count, 2000), qos, creds)
    runs = [run_load(port, count, qos, creds, roles) for _ in range(RUNS)]
    fastest = dict(max(runs, key=lambda r: r["msgs_per_s"]))
    fastest["lost"] = sum(r["lost"] for r in runs)
    fastest["duplicates"] = sum(r["duplicates"] for r in runs)
    total = sum(r["count"] for r in runs)
    spent: dict[str, float] = {}
    for r in runs:
        for role, seconds in r["cpu"].items():
            spent[role] = spent.get(role, 0.0) + seconds
    fastest["cpu"] = {role: seconds * 10_000 / total for role, seconds in spent.items()}
    fastest["sandbox_requests_per_10k"] = sum(r["sandbox_requests"] for r in runs) * 10_000 / total
    wall = sum(r["wall"] for r in runs)
    ours = sum(spent.values())
    fastest["cores_ours"] = ours / wall
    fastest["cores_others"] = max(0.0, sum(r["machine"] for r in runs) - ours) / wall
    return fastest


def server_roles(servers: dict[str, int], broker: int, below: str = "sandbox") -> Roles:
    """Server processes by name, each process below one (its sandbox workers), and the broker."""

    def roles() -> dict[str, int]:
        found = {}
        for name, pid in servers.items():
            found[name] = pid
            children = descendants(pid)
            for i, child in enumerate(children):
                found[f"{name} {below}" + (f" {i + 1}" if len(children) > 1 else "")] = child
        found["broker"] = broker
        return found

    return roles


def with_function(flows: list[dict], body: str) -> list[dict]:
    for node in flows:
        if node.get("type") in ("python function", "function"):
            node["func"] = body
    return flows


def platform_flow(body: str, qos: str) -> list[dict]:
    """bench_flow with the platform's mqtt-broker (the cluster's Mosquitto, shared subscription)."""
    flows = with_function(bench_flow(0, True, qos), body)
    for node in flows:
        if node["type"] == "mqtt-broker":
            node.update(platform=True, broker="", port="")
    return flows


class PlainMosquitto:
    """Mosquitto on a free loopback port, anonymous, with deploy/mosquitto.conf's queue and in-flight window."""

    def __enter__(self) -> PlainMosquitto:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="sofiaflow-bench-mosq-"))
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\nmax_inflight_messages 100\n"
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
        self.proc.terminate()
        self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def measure_cluster(workers: int, body: str, count: int, qos: int) -> dict[str, Any]:
    broker = start_mosquitto_dynsec()
    env = {
        "SOFIAFLOW_MQTT_URL": broker.url,
        "SOFIAFLOW_MQTT_USERNAME": PLATFORM[0],
        "SOFIAFLOW_MQTT_PASSWORD": PLATFORM[1],
        "SOFIAFLOW_DYNSEC_USERNAME": ADMIN[0],
        "SOFIAFLOW_DYNSEC_PASSWORD": ADMIN[1],
    }
    try:
        with Cluster(workers=workers, mosquitto=False, env=env) as cluster:
            status, _, answer = cluster.workers[0].post(
                "/flows", {"flows": platform_flow(body, str(qos))}, headers={"Node-RED-API-Version": "v2"}
            )
            if status != 200:
                raise RuntimeError(f"deploy failed: {status} {answer}")
            redis = cluster.redis_client()
            broker_id = next(n["id"] for n in platform_flow(body, "1") if n["type"] == "mqtt-broker")
            wait_until(
                lambda: all(redis.get(LEASE_PREFIX + client_id(w.name, broker_id)) for w in cluster.workers),
                60,
                "every worker connected with its session",
            )
            idle_calls, idle_started = redis_calls(redis), time.monotonic()
            time.sleep(REDIS_IDLE_S)  # the subscriptions land; the workers' own Redis traffic meanwhile
            idle_rate = (redis_calls(redis) - idle_calls) / (time.monotonic() - idle_started)
            roles = server_roles({w.name: w.proc.pid for w in cluster.workers}, broker.proc.pid)
            calls, started = redis_calls(redis), time.monotonic()
            result = best_of(broker.port, count, qos, ["-u", PLATFORM[0], "-P", PLATFORM[1]], roles)
            calls, spent = redis_calls(redis) - calls - 1, time.monotonic() - started  # less our own INFO
            messages = min(count, 2000) + RUNS * count  # the warm-up's too
            result["redis_per_10k"] = calls * 10_000 / messages
            result["redis_timers_per_10k"] = idle_rate * spent * 10_000 / messages
            return result
    finally:
        broker.stop()


REDIS_IDLE_S = 3.0
"""Seconds the cluster's Redis traffic is counted with no messages flowing (heartbeats, leases, deploy checks)."""


def redis_calls(redis: Any) -> int:
    """Commands Redis has run so far (INFO commandstats, every command; the INFO asking counts once)."""
    return sum(int(stats["calls"]) for stats in redis.info("commandstats").values())


def measure_single(body: str, count: int, qos: int) -> dict[str, Any]:
    with (
        PlainMosquitto() as mosq,
        SofiaflowServer(with_function(bench_flow(mosq.port, True, str(qos)), body)) as server,
    ):
        time.sleep(1.5)  # the flow's client connects and subscribes
        return best_of(mosq.port, count, qos, [], server_roles({"server": server.proc.pid}, mosq.proc.pid))


def measure_nodered(body: str, count: int, qos: int) -> dict[str, Any]:
    with (
        PlainMosquitto() as mosq,
        NodeRed(with_function(bench_flow(mosq.port, False, str(qos)), body)) as red,
    ):
        time.sleep(1.5)
        return best_of(
            mosq.port, count, qos, [], server_roles({"Node-RED": red.proc.pid}, mosq.proc.pid, "child")
        )


def measure_keyed(count: int) -> dict[str, Any]:
    """tests/bench/cluster_keyed.py's keyed path (and the partition alone) in this process, with the CPU seconds
    per 10,000 messages of this process and of redis-server."""
    server = start_redis()
    try:
        asyncio.run(run_keyed(min(count, 2000), None))  # warm-up: the node modules load
        started = time.process_time()
        alone = asyncio.run(run_keyed(count, None))
        alone_cpu = time.process_time() - started
        redis_before, started = cpu_seconds(server.proc.pid), time.process_time()
        keyed = asyncio.run(run_keyed(count, server.url))
        keyed_cpu = time.process_time() - started
        redis_cpu = cpu_seconds(server.proc.pid) - redis_before
    finally:
        server.stop()
    per = 10_000 / count
    return {
        "alone": alone,
        "alone_cpu": alone_cpu * per,
        "keyed": keyed,
        "keyed_cpu": keyed_cpu * per,
        "redis_cpu": redis_cpu * per,
    }


def cpu_line(cpu: dict[str, float]) -> str:
    parts = ", ".join(f"{role} {seconds:.2f}" for role, seconds in cpu.items())
    return f"{sum(cpu.values()):5.2f} = {parts}"


def ceiling(cpu: dict[str, float]) -> float:
    """msgs/s this flow could reach on this machine with nothing else running, from its measured CPU per 10,000
    messages: every process together fits in the cores, and no process does more than one core's work."""
    total = sum(cpu.values()) / 10_000
    busiest = max(cpu.values()) / 10_000
    return min(cores() / total, 1 / busiest) if total > 0 else 0.0


def two_worker_verdict(one: dict[str, Any], two: dict[str, Any]) -> list[str]:
    """Whether this machine can show 2 workers at 1.6x one worker on the CPU-bound flow, from measured CPU."""
    per_msg_1 = sum(one["cpu"].values()) / 10_000
    per_msg_2 = sum(two["cpu"].values()) / 10_000
    top_1, top_2 = ceiling(one["cpu"]), ceiling(two["cpu"])
    need = 1.6 * top_1 * per_msg_2
    lines = [
        f"  one worker keeps two processes busy (itself and its sandbox worker): {per_msg_1 * 1e6:,.0f} us CPU per "
        f"message over every process, the busiest {max(one['cpu'].values()) * 100:,.0f} us",
        f"  with nothing else running, {cores()} cores carry at most {top_1:,.0f} msgs/s on one worker and "
        f"{top_2:,.0f} on two ({per_msg_2 * 1e6:,.0f} us per message): {top_2 / top_1:.2f}x",
    ]
    if top_2 < 1.6 * top_1:
        lines.append(
            f"  this machine cannot show the 2-worker aim: 1.6x one worker's ceiling needs {need:.2f} cores "
            f"(it has {cores()}), whatever the runtime does"
        )
    else:
        lines.append(f"  the cores hold the 2-worker aim ({need:.2f} of {cores()} needed)")
    busy = two["cores_ours"] + two["cores_others"]
    if two["cores_others"] > 0.25 * cores():
        lines.append(
            f"  during the 2-worker runs everything else kept {two['cores_others']:.2f} of {cores()} cores busy "
            f"({busy:.2f} in all): msgs/s there measure the share the scheduler gave us; compare CPU per message"
        )
    return lines


def main(argv: list[str]) -> int:
    count = int(argv[1]) if len(argv) > 1 else 20_000
    qos = int(argv[2]) if len(argv) > 2 else 1
    for tool in ("mosquitto", "mosquitto_pub", "mosquitto_sub", "mosquitto_ctrl", "redis-server", "postgres"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists() and tool != "postgres":
            print(f"{tool} is not installed: not measured")
            return 1
    node_red = find_node_red()
    n_py = calibrate_py()
    n_js = calibrate_js(node_red) if node_red else 0
    load_before = os.getloadavg()
    flows = {"light": (LIGHT_PY, LIGHT_JS), "cpu ~100us": (cpu_py(n_py), cpu_js(n_js))}
    rows: list[tuple[str, str, dict[str, Any] | None]] = []
    for name, (py, js) in flows.items():
        for workers in (1, 2, 3):
            rows.append(
                (
                    name,
                    f"cluster, {workers} worker{'s' if workers > 1 else ''}",
                    measure_cluster(workers, py, count, qos),
                )
            )
        if name == "light":
            rows.append((name, "single process", measure_single(py, count, qos)))
        rows.append((name, "Node-RED", measure_nodered(js, count, qos) if node_red else None))
    keyed = measure_keyed(count)
    load_after = os.getloadavg()
    print(
        f"mqtt in -> function -> mqtt out through Mosquitto, QoS {qos}, {count:,} messages "
        f"(cpu loop: {n_py} Python iterations ~ {TARGET_S * 1e6:.0f} us of CPU in the sandbox / {n_js} JavaScript)"
    )
    print(
        f"  {cores()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after; best of {RUNS} runs, "
        "lost and dups over all of them; cores busy: ours (every process below) / everything else on the machine"
    )
    print(
        f"  {'flow':<12}{'runtime':<20}{'msgs/s':>9}{'delivered':>11}{'lost':>7}{'dups':>7}{'seconds':>9}"
        f"{'cores ours/else':>17}"
    )
    by: dict[tuple[str, str], dict[str, Any]] = {}
    for name, runtime, r in rows:
        if r is None:
            print(f"  {name:<12}{runtime:<20}  not installed, not measured")
            continue
        by[name, runtime] = r
        print(
            f"  {name:<12}{runtime:<20}{r['msgs_per_s']:>9,.0f}{r['delivered']:>11,}{r['lost']:>7,}"
            f"{r['duplicates']:>7,}{r['elapsed_s']:>9.2f}{r['cores_ours']:>11.2f} / {r['cores_others']:.2f}"
        )
    print(
        "CPU seconds per 10,000 messages (over every measured run), total = by process; ceiling: msgs/s the "
        f"{cores()} cores would carry with nothing else running (all processes within the cores, none over one)"
    )
    for name, runtime, r in rows:
        if r is not None:
            print(f"  {name:<12}{runtime:<20}ceiling {ceiling(r['cpu']):>7,.0f}   {cpu_line(r['cpu'])}")
    print(
        "Sandbox requests per 10,000 messages (the sandbox workers' answers, all of them together): 10,000 is one "
        "round trip per message, fewer is batching"
    )
    for name, runtime, r in rows:
        if r is not None and any("sandbox" in role for role in r["cpu"]):
            print(f"  {name:<12}{runtime:<20}{r['sandbox_requests_per_10k']:>8,.0f}")
    print(
        "Redis commands per 10,000 messages in cluster mode (every worker, over the runs; timers: what the same "
        "time with no messages took)"
    )
    for name, runtime, r in rows:
        if r is not None and "redis_per_10k" in r:
            print(
                f"  {name:<12}{runtime:<20}{r['redis_per_10k']:>8,.0f}   timers {r['redis_timers_per_10k']:,.0f}, "
                f"so {max(0.0, r['redis_per_10k'] - r['redis_timers_per_10k']):,.0f} with the messages"
            )
    one, two = by.get(("cpu ~100us", "cluster, 1 worker")), by.get(("cpu ~100us", "cluster, 2 workers"))
    if one and two:
        print(
            f"cpu-bound: 2 workers / 1 worker = {two['msgs_per_s'] / one['msgs_per_s']:.2f}x msgs/s (aim 1.6x)"
        )
        for line in two_worker_verdict(one, two):
            print(line)
    single, cluster1 = by.get(("light", "single process")), by.get(("light", "cluster, 1 worker"))
    if single and cluster1:
        print(
            f"light: 1 cluster worker / single process = {cluster1['msgs_per_s'] / single['msgs_per_s']:.2f}x "
            f"msgs/s (aim >= 0.80x); CPU per message {sum(cluster1['cpu'].values()) * 100:,.0f} us / "
            f"{sum(single['cpu'].values()) * 100:,.0f} us (all processes), the server process "
            f"{cluster1['cpu'].get('w1', 0.0) * 100:,.0f} us / {single['cpu'].get('server', 0.0) * 100:,.0f} us"
        )
    print(
        f"keyed path (partition -> sink on Redis streams, 1 worker, tests/bench/cluster_keyed.py): "
        f"{keyed['keyed']:,.0f} msgs/s (aim {KEYED_TARGET:,.0f}); partition alone {keyed['alone']:,.0f} msgs/s"
    )
    print(
        f"  CPU seconds per 10,000 messages: worker {keyed['keyed_cpu']:.2f} + redis-server "
        f"{keyed['redis_cpu']:.2f} (alone: {keyed['alone_cpu']:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
