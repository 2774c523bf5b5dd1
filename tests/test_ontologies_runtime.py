"""The runtime loads the bundled ontologies at start and serves them through the admin API."""

from __future__ import annotations

import httpx

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings


async def test_bundled_ontologies_are_loaded_and_served(tmp_path, registry):
    rt = Runtime(Settings(data_dir=tmp_path, admin_password="pw"), registry=registry)
    await rt.start()
    try:
        AuthService(rt.db, rt.settings).ensure_admin()
        app = create_app(rt)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            token = (
                await http.post(
                    "/auth/token",
                    data={
                        "client_id": "node-red-admin",
                        "grant_type": "password",
                        "scope": "*",
                        "username": "admin",
                        "password": "pw",
                    },
                )
            ).json()["access_token"]
            http.headers["Authorization"] = f"Bearer {token}"
            names = {o["name"] for o in (await http.get("/ontologies")).json()}
            assert {"ParkingSpot", "AirQualityStation", "BusPosition", "EnergyMeter"} <= names
            bad = await http.post("/ontologies/EnergyMeter/validate", json={"meterId": 5})
            assert bad.json()["valid"] is False and bad.json()["errors"]
        assert rt.startup_problems == []
        store = rt.engine.services["rtdb"]
        store.insert("EnergyMeter", [{"meterId": "m-1", "kwh": 1.5}])
        assert store.count("EnergyMeter", {"meterId": "m-1"}) == 1
    finally:
        await rt.stop()
