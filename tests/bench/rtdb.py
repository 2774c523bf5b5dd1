"""Real-time DB benchmark: inserts/s (one by one and in batches of 1,000) and query latency on
100,000 documents with and without an index, per backend (SQLite, PostgreSQL, SecantusDB over the
MongoDB wire protocol), all on this machine.

Run: python tests/bench/rtdb.py [documents]
"""

from __future__ import annotations

import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# this folder holds http.py: keep it behind the standard library on sys.path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE.parent))

from rtdb_servers import start_postgres, start_secantus  # noqa: E402

from sofiaflow.runtime.data.rtdb import open_store  # noqa: E402

SINGLE = 2_000
QUERIES = 200


def _doc(i: int, rng: random.Random) -> dict:
    return {
        "sensorId": f"s-{i % 5000}",
        "measure": rng.uniform(-10, 40),
        "zone": rng.choice("ABCDEFGH"),
        "seq": i,
        "location": {"type": "Point", "coordinates": [rng.uniform(-4, -3), rng.uniform(40, 41)]},
    }


def _latency(store, name: str, rng: random.Random) -> float:
    times = []
    for _ in range(QUERIES):
        target = f"s-{rng.randrange(5000)}"
        started = time.perf_counter()
        store.find(name, {"sensorId": target, "measure": {"$gt": 0}}, limit=50)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(url: str, documents: int) -> dict:
    rng = random.Random(7)
    store = open_store(url)
    try:
        for name in ("bench_single", "bench_plain", "bench_indexed"):
            store.drop(name)
        store.ensure_collection("bench_single")
        started = time.perf_counter()
        for i in range(SINGLE):
            store.insert("bench_single", [_doc(i, rng)])
        single = SINGLE / (time.perf_counter() - started)
        # the same with an idempotency key each (a unique index on it decides)
        store.drop("bench_single")
        store.ensure_collection("bench_single")
        started = time.perf_counter()
        for i in range(SINGLE):
            store.insert("bench_single", [_doc(i, rng)], keys=[f"dev-{i % 5000}/{i}"])
        keyed = SINGLE / (time.perf_counter() - started)
        store.ensure_collection("bench_plain")
        docs = [_doc(i, rng) for i in range(documents)]
        started = time.perf_counter()
        for at in range(0, documents, 1000):
            store.insert("bench_plain", docs[at : at + 1000])
        batched = documents / (time.perf_counter() - started)
        store.drop("bench_plain")
        store.ensure_collection("bench_plain")
        started = time.perf_counter()
        for at in range(0, documents, 1000):
            chunk = docs[at : at + 1000]
            store.insert("bench_plain", chunk, keys=[f"dev/{at + n}" for n in range(len(chunk))])
        keyed_batched = documents / (time.perf_counter() - started)
        store.ensure_collection("bench_indexed", indexes=["sensorId"])
        for at in range(0, documents, 1000):
            store.insert("bench_indexed", [dict(d) for d in docs[at : at + 1000]])
        plain = _latency(store, "bench_plain", rng)
        indexed = _latency(store, "bench_indexed", rng)
        for name in ("bench_single", "bench_plain", "bench_indexed"):
            store.drop(name)
        return {
            "single": single,
            "keyed": keyed,
            "batched": batched,
            "keyed_batched": keyed_batched,
            "plain_ms": plain,
            "indexed_ms": indexed,
        }
    finally:
        store.close()


def main(argv: list[str]) -> int:
    # a SIGTERM (e.g. from `timeout`) still runs the finally blocks that stop the servers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    documents = int(argv[1]) if len(argv) > 1 else 100_000
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(("SQLite", measure(f"sqlite:///{tmp}/rt.db", documents)))
    for label, start in (("PostgreSQL", start_postgres), ("SecantusDB (MongoDB wire)", start_secantus)):
        try:
            server = start()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a missing server (a pytest skip) is reported, not fatal
            print(f"{label}: not measured ({exc})")
            continue
        try:
            rows.append((label, measure(server.url, documents)))
        finally:
            server.stop()
    print(
        f"real-time DB, {documents:,} documents; query: sensorId equality + measure > 0, median of {QUERIES}"
    )
    print("  inserts/s: one by one and in batches of 1,000, without and with an idempotency key each")
    print(
        f"  {'backend':<26} {'(1)':>8} {'(1) key':>8} {'(1,000)':>8} {'(1,000) key':>12} {'query ms':>9} "
        f"{'indexed ms':>11}"
    )
    for label, r in rows:
        print(
            f"  {label:<26} {r['single']:>8,.0f} {r['keyed']:>8,.0f} {r['batched']:>8,.0f} "
            f"{r['keyed_batched']:>12,.0f} {r['plain_ms']:>9.2f} {r['indexed_ms']:>11.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
