"""The monitoring page in cluster mode shows a workers table (every live worker: address, flow revision, uptime,
load, last heartbeat, what it leads), in a real Chromium against a worker of a two-worker cluster; in a single
process there is no such table (tests/test_editor_pages.py). The rows' formatting is checked without a browser."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from cluster_harness import ADMIN_PASSWORD, Cluster, skip_unless_cluster
from editor_server import EDITOR_PATH, chromium, login  # noqa: F401 - pytest fixture

from sofiaflow.editor.pages._format import NONE
from sofiaflow.editor.pages.monitoring import worker_rows

pytestmark = pytest.mark.timeout(180)


def test_worker_rows_show_each_heartbeat():
    now = 1_800_000_000.0
    beat = {
        "id": "w1",
        "address": "10.0.0.5:1880",
        "rev": "abcdef0123456789",
        "revision": 7,
        "uptime": 3725.0,
        "msgs_per_s": 12.5,
        "cpu": 37.4,
        "memory": 150 * 1024 * 1024,
        "heartbeat": now - 0.4,
        "leads": ["singletons"],
    }
    [row] = worker_rows([beat], now)
    assert row == {
        "id": "w1",
        "address": "10.0.0.5:1880",
        "revision": "7 (abcdef01)",
        "uptime": "1 h 02 min",
        "rate": "12.5",
        "cpu": "37 %",
        "memory": "150.0 MB",
        "heartbeat": "0.4 s ago",
        "leads": "singletons",
    }
    [bare] = worker_rows([{"id": "w2"}], now)
    assert bare["leads"] == bare["revision"] == bare["address"] == NONE


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(workers=2, mosquitto=False) as started:
        yield started


@skip_unless_cluster()
def test_the_monitoring_page_lists_the_workers(cluster, chromium):  # noqa: F811
    worker = cluster.workers[0]
    server = SimpleNamespace(editor_url=worker.url + EDITOR_PATH, user="admin", password=ADMIN_PASSWORD)
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        login(page, server, "/monitoring")
        table = page.get_by_test_id("worker-table")
        for name in ("w1", "w2"):
            table.locator("tbody tr", has_text=name).wait_for(timeout=15000)
        leader = cluster.workers[0].get("/cluster")[2]["leader"]
        row = table.locator("tbody tr", has_text=leader)
        deadline = time.monotonic() + 10
        while "singletons" not in row.inner_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "singletons" in row.inner_text()
        assert f"127.0.0.1:{cluster.workers[1].port}" in table.inner_text()
    finally:
        context.close()
