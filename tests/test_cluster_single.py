"""Single-process mode (no SOFIAFLOW_REDIS_URL): `GET /cluster` answers this one worker with mode "single", the
health route answers without a token, nothing of the cluster package is loaded, and the flow store's sequence
and compare-and-set work on SQLite."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from sofiaflow.runtime.errors import StaleRevisionError
from sofiaflow.runtime.flows.store import FlowStore, revision_of
from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "single-pw-123"


@pytest.fixture
async def client(tmp_path):
    settings = Settings(data_dir=tmp_path, admin_password=PASSWORD, db_url=None, redis_url=None)
    runtime = Runtime(settings)
    await runtime.start()
    AuthService(runtime.db, settings).ensure_admin()
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as anon:
            yield anon
    finally:
        await runtime.stop()


async def _token(client) -> str:
    answer = await client.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": "admin",
            "password": PASSWORD,
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


async def test_get_cluster_in_single_mode_lists_this_worker(client):
    headers = {"Authorization": f"Bearer {await _token(client)}"}
    body = (await client.get("/cluster", headers=headers)).json()
    assert body["mode"] == "single"
    [me] = body["workers"]
    assert me["id"] == body["self"] == body["leader"]
    assert me["rev"] == revision_of([]) and me["memory"] > 0
    assert (await client.get("/cluster")).status_code == 401


async def test_health_needs_no_token(client):
    answer = await client.get("/cluster/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok" and answer.json()["worker"] is None


def test_single_mode_loads_nothing_of_the_cluster_package(tmp_path):
    code = (
        "import asyncio, sys\n"
        "from sofiaflow.runtime.runtime import Runtime\n"
        "from sofiaflow.runtime.settings import Settings\n"
        "from pathlib import Path\n"
        "async def main():\n"
        f"    r = Runtime(Settings(data_dir=Path({str(tmp_path)!r})))\n"
        "    await r.start()\n"
        "    await r.stop()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('sofiaflow.runtime.cluster.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_flow_store_sequence_and_compare_and_set(tmp_path):
    from sofiaflow.runtime.data.config_db import connect

    store = FlowStore(connect(f"sqlite:///{tmp_path / 'c.db'}"))
    assert store.head() is None
    first = store.save([{"id": "a", "type": "tab"}], "full")
    head = store.head()
    assert head.rev == first and head.deploy_type == "full"
    store.expected_rev = first
    second = store.save([{"id": "b", "type": "tab"}], "nodes")
    assert store.head().seq > head.seq
    assert store.load_seq(store.head().seq) == [{"id": "b", "type": "tab"}]
    store.expected_rev = first  # stale now: refused, nothing saved
    with pytest.raises(StaleRevisionError) as refused:
        store.save([{"id": "c", "type": "tab"}], "full")
    assert refused.value.current == second
    assert store.head().rev == second
