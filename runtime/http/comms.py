"""`/comms`: the websocket on which the editor receives debug output, node status and runtime events.

As Node-RED's: the client sends `{"auth": "<token>"}` first, then `{"subscribe": "debug"}`,
`{"subscribe": "status/#"}` (or `"#"` for everything) and `{"unsubscribe": ...}`; the server
sends JSON arrays of `{"topic", "data"}`, batched every 50 ms, and `hb` heartbeats. Status is retained:
a subscription to status topics first gets the current status of each running node that shows one.

A socket that has not authenticated within `AUTH_DEADLINE` seconds, or sends anything else first, is
closed with 1008 (policy violation). Administrators receive everything; developers and users receive the
debug, status and log events of the nodes of tabs (subflows, config nodes) they may see, the `alarms` events
of their own alarms (the alarm's owner is the user, as `GET /alarms` shows them), and the runtime's notifications
(deploys, start/stop), nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from sofiaflow.runtime.errors import AuthError
from sofiaflow.runtime.http.deps import get_auth
from sofiaflow.runtime.security.ownership import unit_of_running

router = APIRouter()

BATCH_INTERVAL = 0.05
HEARTBEAT = 15.0
QUEUE_LIMIT = 10_000
AUTH_DEADLINE = 5.0
POLICY_VIOLATION = 1008


def topic_matches(pattern: str, topic: str) -> bool:
    """`debug`, `status/#`, `notification/+`, `#`: MQTT-style matching as Node-RED's comms."""
    if pattern in ("#", "*") or pattern == topic:
        return True
    pat, top = pattern.split("/"), topic.split("/")
    for i, part in enumerate(pat):
        if part == "#":
            return True
        if i >= len(top) or (part != "+" and part != top[i]):
            return False
    return len(pat) == len(top)


def event_node(topic: str, data: Any) -> str | None:
    """The id of the node an event is about (debug, log, status/<id>), or None."""
    if topic.startswith("status/"):
        return topic[len("status/") :]
    if topic in ("debug", "log") and isinstance(data, dict) and isinstance(data.get("id"), str):
        return data["id"]
    return None


class _Connection:
    def __init__(self, ws: WebSocket, runtime: Any = None) -> None:
        self.ws = ws
        self.runtime = runtime
        self.user: str | None = None
        self.role: str | None = None
        self.topics: set[str] = set()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.dropped = 0

    def offer(self, topic: str, data: Any, only: str | None = None) -> None:
        if self.user is None or topic == "log" and "log" not in self.topics:
            return
        patterns = [only] if only is not None else self.topics
        if any(topic_matches(p, topic) for p in patterns) and self.may_see(topic, data):
            try:
                self.queue.put_nowait({"topic": topic, "data": data})
            except asyncio.QueueFull:
                self.dropped += 1

    def offer_current_statuses(self, pattern: str) -> None:
        """Status is retained, as in Node-RED: a new subscriber gets each running node's current status."""
        deployer = getattr(self.runtime, "deployer", None)
        running = dict(getattr(deployer, "running", None) or {})
        for node_id, node in running.items():
            status = getattr(node, "last_status", None)
            topic = f"status/{node_id}"
            if isinstance(status, dict) and status and topic_matches(pattern, topic):
                self.offer(topic, dict(status), only=pattern)

    def may_see(self, topic: str, data: Any) -> bool:
        """Whether this connection's user may receive the event (see the module docstring)."""
        if self.role == "administrator" or self.runtime is None:
            return True
        if topic.startswith("notification/"):
            return True
        if topic == "alarms":
            alarm = data.get("alarm") if isinstance(data, dict) else None
            return isinstance(alarm, dict) and alarm.get("owner") is not None and alarm["owner"] == self.user
        node_id = event_node(topic, data)
        if node_id is None:
            return False
        unit = unit_of_running(self.runtime, node_id)
        return unit is not None and self.runtime.ownership.may_see(self.user, self.role, unit)

    async def sender(self) -> None:
        last_beat = time.monotonic()
        while True:
            try:
                first = await asyncio.wait_for(self.queue.get(), HEARTBEAT)
            except TimeoutError:
                first = None
            batch = [first] if first else []
            if first is not None:
                await asyncio.sleep(BATCH_INTERVAL)
                while not self.queue.empty() and len(batch) < 1000:
                    batch.append(self.queue.get_nowait())
            if time.monotonic() - last_beat >= HEARTBEAT:
                batch.append({"topic": "hb", "data": int(time.time() * 1000)})
                last_beat = time.monotonic()
            if batch:
                await self.ws.send_json(batch)


@router.websocket("/comms")
async def comms(ws: WebSocket) -> None:
    """Stream runtime events to an authenticated client."""
    await ws.accept()
    runtime = ws.app.state.runtime
    conn = _Connection(ws, runtime)
    unsubscribe = runtime.events.subscribe("#", conn.offer)
    sender = asyncio.get_running_loop().create_task(conn.sender())
    deadline = time.monotonic() + AUTH_DEADLINE
    try:
        token = ws.query_params.get("access_token")
        if token:
            conn.user, conn.role = _check(ws, token)
        while True:
            if conn.user is None:
                try:
                    message = await asyncio.wait_for(ws.receive_json(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    await ws.close(code=POLICY_VIOLATION, reason="no authentication")
                    return
            else:
                message = await ws.receive_json()
            if not isinstance(message, dict):
                continue
            if "auth" in message:
                conn.user, conn.role = _check(ws, str(message["auth"]))
                await ws.send_json([{"topic": "auth", "data": "ok" if conn.user else "fail"}])
                if conn.user is None:
                    await ws.close(code=POLICY_VIOLATION, reason="authentication failed")
                    return
            elif conn.user is None:
                await ws.send_json([{"topic": "auth", "data": "fail"}])
                await ws.close(code=POLICY_VIOLATION, reason="authenticate first")
                return
            elif "subscribe" in message:
                conn.topics.add(str(message["subscribe"]))
                conn.offer_current_statuses(str(message["subscribe"]))
            elif "unsubscribe" in message:
                conn.topics.discard(str(message["unsubscribe"]))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        unsubscribe()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


def _check(ws: WebSocket, token: str) -> tuple[str | None, str | None]:
    """(user, role) of a valid token, else (None, None)."""
    try:
        auth = get_auth(ws)  # type: ignore[arg-type]
        user, _scope = auth.token_info(token)
        return user, auth.role_of(user)
    except AuthError:
        return None, None
