"""The dead-letter routes: administrators see and handle every letter, a developer only those of flows they
own (403, audited, for the others); malformed ids are 400, missing ones 404; single-process mode has none."""

from __future__ import annotations

import httpx
import redis as redis_sync
from redis_server import redis_per_module  # noqa: F401 - the redis_url fixture

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "partition-pw-123"


async def _token(client: httpx.AsyncClient, user: str) -> dict[str, str]:
    answer = await client.post(
        "/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": user,
            "password": PASSWORD,
        },
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def test_single_mode_has_no_dead_letters(tmp_path):
    settings = Settings(data_dir=tmp_path, admin_password=PASSWORD, db_url=None, redis_url=None)
    runtime = Runtime(settings)
    await runtime.start()
    AuthService(runtime.db, settings).ensure_admin()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://t"
        ) as c:
            admin = await _token(c, "admin")
            assert (await c.get("/partitions/dead-letters", headers=admin)).json() == {
                "deadLetters": [],
                "count": 0,
            }
            answer = await c.post("/partitions/dead-letters/a:b:1-0/replay", headers=admin)
            assert answer.status_code == 404
    finally:
        await runtime.stop()


async def test_owners_and_administrators(tmp_path, redis_url):
    settings = Settings(data_dir=tmp_path, admin_password=PASSWORD, db_url=None, redis_url=redis_url)
    runtime = Runtime(settings)
    await runtime.start()
    auth = AuthService(runtime.db, settings)
    auth.ensure_admin()
    auth.add_user("dev", PASSWORD, "developer")
    runtime.ownership.claim_new([{"id": "mine", "type": "tab"}, {"id": "theirs", "type": "tab"}], "dev")
    runtime.ownership.share("theirs", owner="someone", shared=[])
    sync = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    fields = {
        "m": '{"payload": 1}',
        "partition": "3",
        "streamId": "3/1-0",
        "deliveries": "5",
        "error": "boom",
    }
    mine = sync.xadd("dlq:mine:n1", fields)
    theirs = sync.xadd("dlq:theirs:n2", fields)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(runtime)), base_url="http://t"
        ) as c:
            admin, dev = await _token(c, "admin"), await _token(c, "dev")
            assert (await c.get("/partitions/dead-letters")).status_code == 401
            every = (await c.get("/partitions/dead-letters", headers=admin)).json()
            assert every["count"] == 2
            own = (await c.get("/partitions/dead-letters", headers=dev)).json()
            assert [d["id"] for d in own["deadLetters"]] == [f"mine:n1:{mine}"]
            assert own["deadLetters"][0]["msg"] == {"payload": 1} and own["deadLetters"][0]["error"] == "boom"
            answer = await c.post(f"/partitions/dead-letters/theirs:n2:{theirs}/replay", headers=dev)
            assert answer.status_code == 403
            assert (
                await c.delete(f"/partitions/dead-letters/theirs:n2:{theirs}", headers=dev)
            ).status_code == 403
            answer = await c.post(f"/partitions/dead-letters/mine:n1:{mine}/replay", headers=dev)
            assert answer.status_code == 200, answer.text
            assert answer.json()["partition"] == 3
            assert sync.xlen("part:mine:n1:3") == 1 and sync.xlen("dlq:mine:n1") == 0
            assert (await c.delete(f"/partitions/dead-letters/theirs:n2:{theirs}", headers=admin)).json() == {
                "deleted": f"theirs:n2:{theirs}"
            }
            assert (await c.delete("/partitions/dead-letters/nonsense", headers=admin)).status_code == 400
            assert (
                await c.delete(f"/partitions/dead-letters/theirs:n2:{theirs}", headers=admin)
            ).status_code == 404
    finally:
        sync.close()
        await runtime.stop()
