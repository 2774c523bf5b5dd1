"""Three workers started at the same moment on a fresh config DB: they take turns (the first creates the tables
and user admin), all become healthy and list each other; one leader among them."""

from __future__ import annotations

import pytest
from cluster_harness import Cluster, skip_unless_cluster, wait_until

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(180)]


def test_workers_started_together_on_a_fresh_database_all_join():
    with Cluster(workers=3, mosquitto=False, together=True) as cluster:
        for worker in cluster.workers:
            assert worker.alive()
            view = wait_until(
                lambda w=worker: (v := w.get("/cluster")[2]) and len(v["workers"]) == 3 and v,
                10,
                f"{worker.name} lists the three workers",
            )
            assert {w["id"] for w in view["workers"]} == {"w1", "w2", "w3"}
            assert sum(1 for w in view["workers"] if w["leads"]) == 1
        log = "\n".join(w.tail(100000) for w in cluster.workers)
        assert "IntegrityError" not in log and "Traceback" not in log
