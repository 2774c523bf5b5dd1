"""The editor opened on worker A (real Chromium) shows, in its debug sidebar, what a debug node prints on
worker C, once (three real workers on PostgreSQL and Redis)."""

from __future__ import annotations

import types
from collections.abc import Iterator

import pytest
from cluster_harness import ADMIN_PASSWORD, Cluster, http, skip_unless_cluster
from editor_server import chromium, login  # noqa: F401 - pytest fixture
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_cluster_shared_editor import FLOWS

pytestmark = [skip_unless_cluster(), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with Cluster(workers=3, mosquitto=False) as started:
        yield started


def test_a_debug_node_on_worker_c_shows_once_in_the_editor_on_worker_a(cluster: Cluster, chromium) -> None:  # noqa: F811
    a, b, c = cluster.workers
    status, _, body = a.post("/flows", {"flows": FLOWS}, headers={"Node-RED-API-Version": "v2"})
    assert status == 200 and body.get("cluster", {}).get("pending", []) == [], body

    context = chromium.new_context(viewport={"width": 1400, "height": 850})
    try:
        page = context.new_page()
        page.set_default_timeout(30000)
        login(
            page, types.SimpleNamespace(editor_url=a.url + "/editor", user="admin", password=ADMIN_PASSWORD)
        )
        page.wait_for_selector(".sf-canvas")
        messages = page.get_by_test_id("debug-message")
        for attempt in range(30):  # until the sidebar listens: a message of A's own shows
            http("GET", f"{a.url}/say?x=probe-{attempt}", timeout=10)
            try:
                messages.filter(has_text=f"probe-{attempt}").first.wait_for(timeout=2000)
                break
            except PlaywrightTimeout:
                continue
        else:
            raise AssertionError("the debug sidebar on worker A never showed its own debug node's output")
        for worker, word in ((c, "said-on-c"), (b, "said-on-b"), (c, "last-on-c")):
            status, _, answer = http("GET", f"{worker.url}/say?x={word}", timeout=10)
            assert status == 200 and answer == "said", (status, answer)
        for word in ("said-on-c", "said-on-b", "last-on-c"):  # B's and C's may arrive in either order
            messages.filter(has_text=word).first.wait_for()
        assert messages.filter(has_text="said-on-c").count() == 1
        assert messages.filter(has_text="said-on-b").count() == 1
        assert messages.filter(has_text="last-on-c").count() == 1
    finally:
        context.close()
