"""The editor's /comms websocket of each runtime (Node-RED's without login, sofiaflow's with a bearer token):
the debug sidebar's events and the nodes' latest status, collected on a thread."""

from __future__ import annotations

import json
import queue
import threading
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


class Comms:
    def __init__(self, base_url: str, token: str | None = None) -> None:
        self.events: queue.Queue = queue.Queue()
        self.statuses: dict[str, dict] = {}
        """node id -> its latest status."""
        self.ws = connect(base_url.replace("http://", "ws://") + "/comms", open_timeout=10)
        if token is not None:
            self.ws.send(json.dumps({"auth": token}))
            answer = json.loads(self.ws.recv(timeout=10))
            assert answer == [{"topic": "auth", "data": "ok"}], answer
        self.ws.send(json.dumps({"subscribe": "debug"}))
        self.ws.send(json.dumps({"subscribe": "status/#"}))
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                for event in json.loads(raw):
                    topic = str(event.get("topic", ""))
                    if topic == "debug":
                        self.events.put(event["data"])
                    elif topic.startswith("status/"):
                        self.statuses[topic[len("status/") :]] = event.get("data") or {}
        except (ConnectionClosed, OSError):
            pass

    def drain(self) -> None:
        while True:
            try:
                self.events.get_nowait()
            except queue.Empty:
                return

    def collect(self, count: int, seconds: float = 5.0, quiet: float = 0.5) -> list[dict]:
        """At least `count` events (fewer when they do not come in `seconds`), and any that follow within `quiet`."""
        out: list[dict] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            wait = quiet if len(out) >= count else max(deadline - time.monotonic(), 0.01)
            try:
                out.append(self.events.get(timeout=wait))
            except queue.Empty:
                if len(out) >= count:
                    break
        return out

    def status_text(self, node_id: str) -> str:
        """The latest status text of a node ("" before any); Node-RED's are i18n keys (node-red:...disconnected)."""
        return str(self.statuses.get(node_id, {}).get("text", ""))

    def close(self) -> None:
        self.ws.close()
        self._thread.join(5)
