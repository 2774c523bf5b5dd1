"""A real server with two developers (ana, bob) and devices of each owner on the embedded broker: the set-up the
broker tenancy tests share. Devices: `ana-dev` (plant/ana/#), `bob-dev` (plant/bob/#), `<who>-watch`
(watch/<who>/#) and `admin-watch` (ownerless)."""

from __future__ import annotations

from typing import Any

import httpx

PASSWORDS = {"ana": "ana-password-1", "bob": "bob-password-1"}
DEVICES = (
    ("ana-dev", ["plant/ana/#"], "ana"),
    ("bob-dev", ["plant/bob/#"], "bob"),
    ("ana-watch", ["watch/ana/#"], "ana"),
    ("bob-watch", ["watch/bob/#"], "bob"),
    ("admin-watch", ["watch/admin/#"], None),
)


def broker_config(config_id: str, mqtt_port: int) -> dict[str, Any]:
    """An mqtt-broker config node pointing at the server's embedded broker."""
    return {
        "id": config_id,
        "type": "mqtt-broker",
        "broker": "127.0.0.1",
        "port": str(mqtt_port),
        "autoConnect": True,
        "protocolVersion": 4,
        "keepalive": 60,
        "cleansession": True,
    }


def add_developers_and_devices(srv: Any) -> dict[str, str]:
    """Create ana and bob (developers) and the devices; the devices' tokens by name."""
    for who, password in PASSWORDS.items():
        answer = srv.admin.post("/users", json={"username": who, "password": password, "role": "developer"})
        assert answer.status_code == 201, answer.text
    tokens = {}
    for name, topics, owner in DEVICES:
        answer = srv.admin.post("/devices", json={"name": name, "topics": topics, "owner": owner})
        assert answer.status_code == 201, answer.text
        tokens[name] = answer.json()["token"]
    return tokens


def deploy_as_developers(srv: Any, tab: Any) -> dict[str, httpx.Client]:
    """Log ana and bob in and have each deploy `tab(who, mqtt_port)`; their API clients by name."""
    users = {}
    form = {"client_id": "node-red-admin", "grant_type": "password", "scope": "*"}
    for who, password in PASSWORDS.items():
        answer = httpx.post(
            f"{srv.base}/auth/token", data={**form, "username": who, "password": password}, timeout=10
        )
        token = answer.json()["access_token"]
        users[who] = httpx.Client(base_url=srv.base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        answer = users[who].post("/flows", json=tab(who, srv.mqtt_port))
        assert answer.status_code in (200, 204), answer.text
    return users
