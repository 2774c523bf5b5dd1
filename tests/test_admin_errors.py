"""Unexpected errors in the admin API answer 500 with an incident id, never the error's own text."""

from __future__ import annotations

import logging

import httpx

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "pw-for-errors"


async def test_an_unexpected_error_hides_its_text_and_logs_it(tmp_path, caplog):
    runtime = Runtime(Settings(data_dir=tmp_path / "data", admin_password=PASSWORD, db_url=None))
    await runtime.start()
    try:
        AuthService(runtime.db, runtime.settings).ensure_admin()
        app = create_app(runtime)

        @app.get("/test-boom")
        async def boom() -> None:
            raise RuntimeError("SELECT secret FROM users WHERE password = 'hunter2'")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            r = await http.post(
                "/auth/token",
                data={
                    "client_id": "node-red-admin",
                    "grant_type": "password",
                    "scope": "*",
                    "username": "admin",
                    "password": PASSWORD,
                },
            )
            http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
            with caplog.at_level(logging.ERROR):
                r = await http.get("/test-boom")
        assert r.status_code == 500
        body = r.json()
        assert body["code"] == "unexpected_error" and "hunter2" not in r.text and "SELECT" not in r.text
        assert body["incident"] in body["message"]
        logged = [rec for rec in caplog.records if body["incident"] in rec.getMessage()]
        assert logged and "hunter2" in logging.Formatter().formatException(logged[0].exc_info)
    finally:
        await runtime.stop()
