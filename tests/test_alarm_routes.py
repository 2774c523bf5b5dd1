"""`/alarms` on a real server (uvicorn on a loopback port): ana's and bob's flows raise alarms; each developer
lists, reads, acknowledges, clears and deletes only their own (someone else's is a 404), the administrator all;
filters, paging and bad parameters (400 naming the field); the acknowledgement and clear reach the flow that
raised the alarm; alarms survive a restart of the runtime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from ports import free_port

from sofiaflow.runtime.http import create_app
from sofiaflow.runtime.runtime import Runtime
from sofiaflow.runtime.security.auth import AuthService
from sofiaflow.runtime.settings import Settings

PASSWORD = "alarm-admin-password"
DEVELOPERS = ("ana", "bob")


def tab(owner: str, device: str, severity: str = "major") -> list[dict[str, Any]]:
    """`owner`'s tab: inject (msg.device) -> alarm -> debug (every event, whole message)."""
    p = owner[0]
    return [
        {"id": f"t_{p}", "type": "tab", "label": f"{owner}'s"},
        {
            "id": f"{p}_inj",
            "type": "inject",
            "z": f"t_{p}",
            "props": [{"p": "payload"}, {"p": "device", "v": device, "vt": "str"}],
            "payload": '{"temp": 91}',
            "payloadType": "json",
            "repeat": "",
            "crontab": "",
            "once": False,
            "topic": "",
            "wires": [[f"{p}_alarm"]],
        },
        {
            "id": f"{p}_alarm",
            "type": "alarm",
            "z": f"t_{p}",
            "alarmType": "overheat",
            "severity": severity,
            "details": "payload",
            "wires": [[f"{p}_dbg"]],
        },
        {
            "id": f"{p}_dbg",
            "type": "debug",
            "z": f"t_{p}",
            "active": True,
            "tosidebar": True,
            "complete": "event",
            "targetType": "msg",
            "wires": [],
        },
    ]


class Server:
    def __init__(self, rt: Runtime, http: httpx.AsyncClient, headers: dict[str, dict[str, str]]) -> None:
        self.rt, self.http, self.headers = rt, http, headers
        self.events: list[tuple[str, str]] = []  # (debug node, msg.event)
        rt.events.subscribe("debug", lambda _t, d: self.events.append((d["id"], d["msg"])))
        self.published: list[tuple[str, str]] = []  # (event, originator) on the runtime's event bus
        rt.events.subscribe(
            "alarms", lambda _t, d: self.published.append((d["event"], d["alarm"]["originator"]))
        )

    async def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, path, headers=self.headers[who], **kwargs)

    async def press(self, who: str, node_id: str) -> None:
        answer = await self.call(who, "POST", f"/inject/{node_id}")
        assert answer.status_code == 200, answer.text
        await self.rt.engine.idle()

    async def events_of(self, node_id: str, count: int) -> list[str]:
        """The events debug node `node_id` showed, once there are `count` (bounded wait)."""
        for _ in range(500):
            await self.rt.engine.idle()
            found = [e for n, e in self.events if n == node_id]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)
        return [e for n, e in self.events if n == node_id]


@asynccontextmanager
async def serve(data_dir, deploy: bool = True, users_only: bool = False) -> AsyncIterator[Server]:
    """A runtime on `data_dir` and its admin app on a loopback port; admin, ana, bob (developers) and uma (a
    user) logged in. New: the users are made and ana's and bob's tabs deployed (`users_only`: not the tabs).
    `deploy=False`: a restart, the users and flows are the stored ones."""
    settings = Settings(
        data_dir=data_dir,
        admin_password=PASSWORD,
        history_interval=0,
        ontologies_dir=None,
        default_flows=None,
    )
    rt = Runtime(settings)
    await rt.start()
    auth = AuthService(rt.db, rt.settings)
    auth.ensure_admin()
    for name in (*DEVELOPERS, "uma"):
        if not deploy:  # a restart: the users are there
            break
        auth.add_user(name, f"{name}-password", "developer" if name in DEVELOPERS else "user")
    server = uvicorn.Server(
        uvicorn.Config(create_app(rt), host="127.0.0.1", port=free_port(), log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.02)
    port = server.config.port
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            headers = {}
            for name in ("admin", *DEVELOPERS, "uma"):
                password = PASSWORD if name == "admin" else f"{name}-password"
                form = {"client_id": "node-red-admin", "grant_type": "password", "scope": "*"}
                answer = await http.post("/auth/token", data={**form, "username": name, "password": password})
                assert answer.status_code == 200, answer.text
                headers[name] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
            world = Server(rt, http, headers)
            if deploy and not users_only:
                for who, device in (("ana", "boiler"), ("bob", "pump")):
                    answer = await world.call(who, "POST", "/flows", json=tab(who, device))
                    assert answer.status_code == 204, answer.text
            yield world
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        await rt.stop()


async def test_each_developer_sees_and_changes_only_their_own_alarms(tmp_path):
    async with serve(tmp_path) as w:
        await w.press("ana", "a_inj")
        await w.press("ana", "a_inj")
        await w.press("bob", "b_inj")
        ana = (await w.call("ana", "GET", "/alarms")).json()
        assert (ana["total"], len(ana["alarms"])) == (1, 1)
        mine = ana["alarms"][0]
        assert (mine["type"], mine["originator"], mine["owner"], mine["count"]) == (
            "overheat",
            "boiler",
            "ana",
            2,
        )
        assert (mine["severity"], mine["status"], mine["details"]) == ("major", "ACTIVE_UNACK", {"temp": 91})
        bob = (await w.call("bob", "GET", "/alarms")).json()
        assert [a["originator"] for a in bob["alarms"]] == ["pump"]
        everyone = (await w.call("admin", "GET", "/alarms")).json()
        assert sorted(a["originator"] for a in everyone["alarms"]) == ["boiler", "pump"]
        assert (await w.call("uma", "GET", "/alarms")).json()["total"] == 0
        ana_id = mine["id"]
        # bob: ana's alarm does not exist for him
        for method, path in (
            ("GET", f"/alarms/{ana_id}"),
            ("POST", f"/alarms/{ana_id}/ack"),
            ("POST", f"/alarms/{ana_id}/clear"),
            ("DELETE", f"/alarms/{ana_id}"),
        ):
            answer = await w.call("bob", method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert "boiler" not in answer.text
        assert (await w.call("uma", "POST", f"/alarms/{ana_id}/ack")).status_code == 403
        assert (await w.call("ana", "GET", f"/alarms/{ana_id}")).json()["status"] == "ACTIVE_UNACK"
        # ana acknowledges and clears: her flow hears it
        acked = await w.call("ana", "POST", f"/alarms/{ana_id}/ack")
        assert acked.status_code == 200 and acked.json()["status"] == "ACTIVE_ACK"
        assert acked.json()["ackBy"] == "ana" and acked.json()["ackTs"] is not None
        again = await w.call("ana", "POST", f"/alarms/{ana_id}/ack")
        assert again.json() == acked.json()
        cleared = await w.call("ana", "POST", f"/alarms/{ana_id}/clear")
        assert cleared.json()["status"] == "CLEARED_ACK" and cleared.json()["clearedBy"] == "ana"
        assert await w.events_of("a_dbg", 4) == ["created", "updated", "acknowledged", "cleared"]
        assert await w.events_of("b_dbg", 1) == ["created"]
        assert w.published[:2] == [("created", "boiler"), ("updated", "boiler")]
        assert ("acknowledged", "boiler") in w.published and ("cleared", "boiler") in w.published
        # the administrator acts on bob's; delete
        bob_id = bob["alarms"][0]["id"]
        assert (await w.call("admin", "POST", f"/alarms/{bob_id}/ack")).json()["ackBy"] == "admin"
        assert (await w.call("bob", "DELETE", f"/alarms/{bob_id}")).status_code == 204
        assert (await w.call("bob", "GET", f"/alarms/{bob_id}")).status_code == 404
        assert (await w.call("admin", "DELETE", f"/alarms/{ana_id}")).status_code == 204
        assert (await w.call("admin", "GET", "/alarms")).json()["total"] == 0
        assert any(e["action"] == "alarm.ack" for e in w.rt.audit.entries(user="ana"))


async def test_filters_paging_and_bad_parameters(tmp_path):
    async with serve(tmp_path, users_only=True) as w:
        store = w.rt.engine.services["alarms"]
        for i in range(7):
            store.raise_alarm("t", f"d{i}", ("critical", "minor")[i % 2], 1000 + i, owner="ana")
        store.clear_active("t", "d0", 2000, owner="ana")
        page = (await w.call("ana", "GET", "/alarms", params={"limit": "3", "offset": "2"})).json()
        assert (page["total"], page["offset"], page["limit"]) == (7, 2, 3)
        assert [a["originator"] for a in page["alarms"]] == ["d4", "d3", "d2"]  # the latest first
        crit = await w.call("ana", "GET", "/alarms", params={"severity": "critical", "status": "ACTIVE"})
        assert sorted(a["originator"] for a in crit.json()["alarms"]) == ["d2", "d4", "d6"]
        cleared = await w.call("ana", "GET", "/alarms", params={"status": "CLEARED_UNACK"})
        assert [a["originator"] for a in cleared.json()["alarms"]] == ["d0"]
        one = await w.call("ana", "GET", "/alarms", params={"originator": "d3", "type": "t"})
        assert [a["originator"] for a in one.json()["alarms"]] == ["d3"]
        for params, field in (
            ({"status": "OPEN"}, "status"),
            ({"severity": "loud"}, "severity"),
            ({"limit": "5000"}, "limit"),
            ({"offset": "-3"}, "offset"),
            ({"limit": "many"}, "limit"),
        ):
            answer = await w.call("ana", "GET", "/alarms", params=params)
            assert answer.status_code == 400, (params, answer.text)
            assert answer.json()["field"] == field and field in answer.json()["message"]
        assert (await w.call("ana", "GET", "/alarms/nope")).status_code == 404


async def test_alarms_survive_a_restart_and_the_restarted_flow_hears_the_acknowledgement(tmp_path):
    async with serve(tmp_path) as w:
        await w.press("ana", "a_inj")
        alarm_id = (await w.call("ana", "GET", "/alarms")).json()["alarms"][0]["id"]
    async with serve(tmp_path, deploy=False) as w:
        assert [n["id"] for n in w.rt.flows if n["type"] == "alarm"] == ["a_alarm", "b_alarm"]
        kept = (await w.call("ana", "GET", f"/alarms/{alarm_id}")).json()
        assert (kept["originator"], kept["status"], kept["count"]) == ("boiler", "ACTIVE_UNACK", 1)
        await w.press("ana", "a_inj")  # the same alarm, still active: updated
        assert (await w.call("ana", "GET", f"/alarms/{alarm_id}")).json()["count"] == 2
        assert (await w.call("ana", "POST", f"/alarms/{alarm_id}/ack")).status_code == 200
        assert await w.events_of("a_dbg", 2) == ["updated", "acknowledged"]
