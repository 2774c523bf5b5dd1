"""`/comms`: the websocket on which the editor receives debug output, node status and runtime events.

As Node-RED's: the client sends `{"auth": "<token>"}` first, then `{"subscribe": "debug"}`,
`{"subscribe": "status/#"}` (or `"#"` for everything) and `{"unsubscribe": ...}`; the server
sends JSON arrays of `{"topic", "data"}`, batched every 50 ms, and `hb` heartbeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from ..errors import AuthError
from .deps import get_auth

router = APIRouter()

BATCH_INTERVAL = 0.05
HEARTBEAT = 15.0
QUEUE_LIMIT = 10_000


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


class _Connection:
    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.user: str | None = None
        self.topics: set[str] = set()
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self.dropped = 0

    def offer(self, topic: str, data: Any) -> None:
        if self.user is None or topic == "log" and "log" not in self.topics:
            return
        if any(topic_matches(p, topic) for p in self.topics):
            try:
                self.queue.put_nowait({"topic": topic, "data": data})
            except asyncio.QueueFull:
                self.dropped += 1

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
    conn = _Connection(ws)
    unsubscribe = runtime.events.subscribe("#", conn.offer)
    sender = asyncio.get_running_loop().create_task(conn.sender())
    try:
        token = ws.query_params.get("access_token")
        if token:
            conn.user = _check(ws, token)
        while True:
            message = await ws.receive_json()
            if not isinstance(message, dict):
                continue
            if "auth" in message:
                conn.user = _check(ws, str(message["auth"]))
                await ws.send_json([{"topic": "auth", "data": "ok" if conn.user else "fail"}])
                if conn.user is None:
                    await ws.close(code=4401)
                    return
            elif conn.user is None:
                await ws.send_json([{"topic": "auth", "data": "fail"}])
                await ws.close(code=4401)
                return
            elif "subscribe" in message:
                conn.topics.add(str(message["subscribe"]))
            elif "unsubscribe" in message:
                conn.topics.discard(str(message["unsubscribe"]))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        unsubscribe()
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


def _check(ws: WebSocket, token: str) -> str | None:
    try:
        user, _scope = get_auth(ws).token_info(token)  # type: ignore[arg-type]
        return user
    except AuthError:
        return None
