"""`ApiSampler`: GET /flows of a real server every 50 ms on its own thread while a test does something heavy,
keeping every answer time (a refused or failed call counts as infinitely slow), to bound the admin API's latency."""

from __future__ import annotations

import threading
import time

import httpx

API_BOUND = 0.2
"""Seconds: the admin API must answer GET /flows within this while a sandbox worker allocates or spins."""


class ApiSampler:
    """Use as a context manager; `times` holds one entry per call (seconds)."""

    def __init__(self, base: str, headers: dict) -> None:
        self.client = httpx.Client(base_url=base, headers=headers, timeout=10)
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(2400):  # bounded: two minutes at most
            if self._stop.is_set():
                return
            started = time.monotonic()
            try:
                ok = self.client.get("/flows").status_code == 200
            except httpx.HTTPError:
                ok = False
            self.times.append(time.monotonic() - started if ok else float("inf"))
            time.sleep(0.05)

    def __enter__(self) -> ApiSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        self.client.close()

    def report(self) -> str:
        return f"GET /flows: {len(self.times)} samples, slowest {max(self.times) * 1000:.1f} ms"
