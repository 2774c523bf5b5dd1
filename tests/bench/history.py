"""History benchmark: moving 100,000 expired instances from the real-time DB (SQLite) to Parquet, and
query latency on the history: a whole scan, one day (pruned by time), and one id.

Run: python tests/bench/history.py [documents]
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]
sys.path.insert(0, str(HERE.parents[1]))

from sofiaflow.runtime.data.config_db import connect  # noqa: E402
from sofiaflow.runtime.data.history import HistoryMover, HistoryStore  # noqa: E402
from sofiaflow.runtime.data.ontologies import OntologyRegistry  # noqa: E402
from sofiaflow.runtime.data.rtdb import open_store  # noqa: E402

DAY = 24 * 3600 * 1000
DAYS = 10
REPEAT = 5
SCHEMA = {"type": "object", "properties": {"sensorId": {"type": "string"}, "measure": {"type": "number"}}}


def _median_ms(fn) -> float:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main(argv: list[str]) -> int:
    documents = int(argv[1]) if len(argv) > 1 else 100_000
    rng = random.Random(3)
    now = int(time.time() * 1000)
    with tempfile.TemporaryDirectory() as tmp:
        db = connect(f"sqlite:///{tmp}/config.db")
        registry = OntologyRegistry(db)
        registry.create("Reading", SCHEMA, realtime_window_days=1, history=True)
        store = open_store(f"sqlite:///{tmp}/rt.db")
        store.ensure_collection("Reading")
        docs = [
            {
                "sensorId": f"s-{i % 5000}",
                "measure": rng.uniform(-10, 40),
                "contextData": {"timestampMillis": now - 2 * DAY - (i % DAYS) * DAY - i, "source": "mqtt"},
            }
            for i in range(documents)
        ]
        for at in range(0, documents, 1000):
            store.insert("Reading", docs[at : at + 1000])
        history = HistoryStore(Path(tmp) / "history")
        started = time.perf_counter()
        report = HistoryMover(registry, store, history).run()
        seconds = time.perf_counter() - started
        assert report.moved == {"Reading": documents} and store.count("Reading", {}) == 0, report.as_dict()
        some_id = history.find("Reading", {}, limit=1)[0]["_id"]
        day_start = now - 5 * DAY
        scan = _median_ms(lambda: history.find("Reading", {"sensorId": "s-42"}))
        one_day = _median_ms(
            lambda: history.find(
                "Reading",
                {
                    "sensorId": "s-42",
                    "contextData.timestampMillis": {"$gte": day_start, "$lt": day_start + DAY},
                },
            )
        )
        by_id = _median_ms(lambda: history.find("Reading", {"_id": some_id}))
        size = sum(p.stat().st_size for p in history.files("Reading")) / 1e6
        store.close()
        db.dispose()
    print(f"history, {documents:,} instances over {DAYS} days (SQLite real-time DB, batches of 5,000)")
    print(
        f"  move to Parquet: {documents / seconds:,.0f} instances/s ({seconds:.1f} s), {size:.1f} MB on disk"
    )
    print(f"  {'query (median of ' + str(REPEAT) + ')':<40} {'ms':>8}")
    print(f"  {'sensorId equality, every day':<40} {scan:>8.1f}")
    print(f"  {'sensorId equality, one day (pruned)':<40} {one_day:>8.1f}")
    print(f"  {'_id equality':<40} {by_id:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
